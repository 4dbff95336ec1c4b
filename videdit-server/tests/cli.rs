//! The `videdit` binary's local commands on bad input: a one-line reason
//! on stderr and a non-zero exit, and nothing written.

use std::path::Path;
use std::process::{Command, Output};

fn videdit(args: &[&str], model_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_videdit"))
        .args(args)
        .env("VIDEDIT_MODEL_DIR", model_dir)
        .env_remove("WHISPER_MODEL")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure: {out:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Progress lines may come first (stderr is not a terminal here); the
    // reason is the last line, and the only one.
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let err = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(err.starts_with("videdit: "), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("videdit: ")).count(), 1, "{stderr}");
    err
}

#[test]
fn process_reports_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let out_dir = dir.path().join("out");
    let out = out_dir.to_str().unwrap();

    let err = one_line_error(&videdit(&["process", "/nonexistent/talk.mp4", "--out", out], &models));
    assert!(err.contains("no such file"), "{err}");

    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "not a video\n".repeat(100)).unwrap();
    let text = text.to_str().unwrap();
    // No model yet: says how to get one.
    let err = one_line_error(&videdit(&["process", text, "--out", out], &models));
    assert!(err.contains("tiny.en") && err.contains("models download"), "{err}");

    let err = one_line_error(&videdit(&["process", text, "--out", out, "--crop-x", "0.5"], &models));
    assert!(err.contains("--reframe crop"), "{err}");
    let err = one_line_error(&videdit(&["process", text, "--out", out, "--reframe", "crop", "--crop-x", "2"], &models));
    assert!(err.contains("between 0 and 1"), "{err}");
    let err = one_line_error(&videdit(
        &["process", text, "--out", out, "--min-duration", "90", "--max-duration", "30"],
        &models,
    ));
    assert!(err.contains("duration"), "{err}");

    // With the model: not media.
    let model = videdit_media::testing::tiny_en_test_model();
    let err = one_line_error(&videdit(&["process", text, "--out", out, "--model", model.to_str().unwrap()], &models));
    assert!(err.contains("invalid_media"), "{err}");
    assert!(!out_dir.exists() || std::fs::read_dir(&out_dir).unwrap().next().is_none(), "nothing written");
}

#[test]
fn models_import_lists_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let ct2 =
        std::env::var("VIDEDIT_TEST_CT2_TINY_EN").expect("run: eval \"$(scripts/fetch-test-model.sh --print-env)\"");
    let out = videdit(&["models", "import", &ct2, "--name", "tiny.en", "--weights", "q8_0"], &models);
    assert!(out.status.success(), "{out:?}");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(path.ends_with("ggml-tiny.en-q8_0.bin"), "{path}");
    let list = videdit(&["models", "list"], &models);
    assert!(String::from_utf8_lossy(&list.stdout).contains("tiny.en-q8_0"), "{list:?}");
    let resolved = videdit(&["models", "path", "tiny.en-q8_0"], &models);
    assert_eq!(String::from_utf8_lossy(&resolved.stdout).trim(), path);
    let err = one_line_error(&videdit(&["models", "import", "/nonexistent", "--name", "x"], &models));
    assert!(err.contains("model"), "{err}");
    let err = one_line_error(&videdit(&["models", "import", &ct2, "--name", "../evil"], &models));
    assert!(err.contains("invalid model name"), "{err}");
}

#[test]
fn insecure_dev_auth_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    for bind in ["0.0.0.0:18080", "[::]:18080", "192.0.2.10:18080"] {
        let out = Command::new(env!("CARGO_BIN_EXE_videdit"))
            .arg("serve")
            .env("AUTH_MODE", "insecure-dev")
            .env("BIND_ADDR", bind)
            // Settings are checked before anything is opened: no database is needed.
            .env("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
            .env("STORAGE", "local")
            .env("STORAGE_DIR", dir.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(
            err.contains("AUTH_MODE") && err.contains(&format!("insecure-dev refuses to start on {bind}")),
            "{bind}: {err}"
        );
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing was created");
}
