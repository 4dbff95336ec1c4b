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
    let err = one_line_error(&videdit(
        &["process", text, "--out", out, "--audiogram-background", "/nonexistent.png"],
        &models,
    ));
    assert!(err.contains("--audiogram-background /nonexistent.png is not a file"), "{err}");

    // With the model: not media.
    let model = videdit_media::testing::tiny_en_test_model();
    let err = one_line_error(&videdit(&["process", text, "--out", out, "--model", model.to_str().unwrap()], &models));
    assert!(err.contains("invalid_media"), "{err}");
    assert!(!out_dir.exists() || std::fs::read_dir(&out_dir).unwrap().next().is_none(), "nothing written");
}

/// The test model in CTranslate2 form (`scripts/fetch-test-model.sh`).
fn ct2() -> String {
    std::env::var("VIDEDIT_TEST_CT2_TINY_EN").expect("run: eval \"$(scripts/fetch-test-model.sh --print-env)\"")
}

/// `videdit models import` of the test model as `tiny.en`, q8_0 weights,
/// into `models`; returns the imported file's path as printed.
fn import_tiny_en_q8(models: &std::path::Path) -> String {
    let out = videdit(&["models", "import", &ct2(), "--name", "tiny.en", "--weights", "q8_0"], models);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn models_import_lists_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let path = import_tiny_en_q8(&models);
    assert!(path.ends_with("ggml-tiny.en-q8_0.bin"), "{path}");
    let list = videdit(&["models", "list"], &models);
    assert!(String::from_utf8_lossy(&list.stdout).contains("tiny.en-q8_0"), "{list:?}");
    let resolved = videdit(&["models", "path", "tiny.en-q8_0"], &models);
    assert_eq!(String::from_utf8_lossy(&resolved.stdout).trim(), path);
    let err = one_line_error(&videdit(&["models", "import", "/nonexistent", "--name", "x"], &models));
    assert!(err.contains("model"), "{err}");
    let err = one_line_error(&videdit(&["models", "import", &ct2(), "--name", "../evil"], &models));
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

/// `videdit serve` with exactly these variables (nothing inherited), so a
/// developer's own settings cannot change the outcome.
fn serve_with(vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_videdit")).arg("serve").env_clear().envs(vars.iter().copied()).output().unwrap()
}

#[test]
fn serve_help_lists_every_setting_with_its_variable_and_default() {
    let secrets = [
        ("METRICS_TOKEN", "metrics-hunter2"),
        ("S3_SECRET_ACCESS_KEY", "s3-hunter2"),
        ("TIGRIS_SECRET_ACCESS_KEY", "tigris-hunter2"),
        ("STORAGE_SIGNING_KEY", "signing-hunter2-signing-hunter2-signing"),
        ("DATABASE_URL", "postgresql://u:db-hunter2@db/app"),
        ("ENCRYPTION_KEYS", "k1:keys-hunter2"),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_videdit"))
        .args(["serve", "--help"])
        .env_clear()
        .envs(secrets)
        .env("BIND_ADDR", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    // Aliases are named in the help of the setting they stand for.
    let aliases = [
        "NODE_ENV",
        "TIGRIS_ENDPOINT",
        "TIGRIS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "TIGRIS_BUCKET",
        "TIGRIS_BUCKET_NAME",
        "BUCKET_NAME",
        "TIGRIS_ACCESS_KEY_ID",
        "AWS_ACCESS_KEY_ID",
        "TIGRIS_SECRET_ACCESS_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "TIGRIS_REGION",
        "AWS_REGION",
        "TIGRIS_FORCE_PATH_STYLE",
    ];
    for alias in aliases {
        assert!(help.contains(alias), "{alias} is missing:\n{help}");
    }
    // Every other setting with its variable (`[env: NAME=value]`, or
    // `[env: NAME]` for secrets): the core's and the server's.
    let server = [
        "BIND_ADDR",
        "AUTH_MODE",
        "CLERK_ISSUER",
        "CLERK_JWKS_URL",
        "CLERK_AUDIENCE",
        "CLERK_AUTHORIZED_PARTIES",
        "METRICS_TOKEN",
        "HEALTH_ADDR",
        "LIMIT_UPLOAD_BYTES",
        "LIMIT_DURATION_SECONDS",
        "LIMIT_REQUESTS_PER_SECOND",
        "LIMIT_REQUESTS_PER_SECOND_PER_IP",
        "CLIENT_IP_HEADER",
        "LIMIT_MAX_PIXELS",
        "LIMIT_MAX_FPS",
        "LIMIT_MAX_STREAMS",
        "LIMIT_CHILD_MEMORY_BYTES",
        "VIDEDIT_WORK_DIR",
        "WEBHOOKS_ALLOW_LOOPBACK",
        "ENCRYPTION_KEYS",
        "VIDEDIT_WHISPER_STDERR",
    ];
    for var in videdit_core::config::VARIABLES.iter().chain(&server).filter(|v| !aliases.contains(v)) {
        assert!(
            help.contains(&format!("[env: {var}=")) || help.contains(&format!("[env: {var}]")),
            "{var} is missing:\n{help}"
        );
    }
    for default in ["[default: 127.0.0.1:8080]", "[default: 0.0.0.0:8081]", "[default: tiny.en]", "[default: 1]"] {
        assert!(help.contains(default), "{default} is missing:\n{help}");
    }
    // Values of ordinary settings are shown, secrets never.
    assert!(help.contains("[env: BIND_ADDR=127.0.0.1:9999]"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

#[test]
fn insecure_dev_auth_is_refused_in_production() {
    for production in [("VIDEDIT_ENV", "production"), ("NODE_ENV", "production")] {
        let out = serve_with(&[
            ("AUTH_MODE", "insecure-dev"),
            ("BIND_ADDR", "127.0.0.1:18080"),
            ("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none"),
            ("STORAGE", "local"),
            ("ENCRYPTION_KEYS", "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="),
            production,
        ]);
        assert_eq!(
            one_line_error(&out),
            "videdit: invalid configuration: AUTH_MODE: insecure-dev is refused when VIDEDIT_ENV=production"
        );
    }
}

#[test]
fn every_bad_setting_is_reported_at_once_in_one_line() {
    let out = serve_with(&[
        ("JOB_CONCURRENCY", "0"),
        ("BIND_ADDR", "everywhere"),
        ("LIMIT_UPLOAD_BYTES", "lots"),
        ("WEBHOOKS_ALLOW_LOOPBACK", "maybe"),
    ]);
    let err = one_line_error(&out);
    let vars: Vec<&str> = err
        .strip_prefix("videdit: invalid configuration: ")
        .unwrap_or_else(|| panic!("{err}"))
        .split("; ")
        .map(|e| e.split(':').next().unwrap())
        .collect();
    assert_eq!(
        vars,
        [
            "DATABASE_URL",
            "JOB_CONCURRENCY",
            "BIND_ADDR",
            "CLERK_ISSUER",
            "LIMIT_UPLOAD_BYTES",
            "WEBHOOKS_ALLOW_LOOPBACK"
        ],
        "{err}"
    );
    assert!(err.contains(r#"BIND_ADDR: "everywhere" is not host:port"#), "{err}");
}

#[test]
fn the_default_model_name_finds_the_imported_q8_0_weights() {
    // What scripts/demo does: import tiny.en as q8_0; the README then says `--model tiny.en`.
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let q8 = import_tiny_en_q8(&models);
    for args in [&["models", "path"][..], &["models", "path", "tiny.en"]] {
        let out = videdit(args, &models);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), q8, "{args:?}");
    }

    // `process` with the default model and with `--model tiny.en` loads it
    // and gets as far as the input, which is not media.
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "not a video\n".repeat(100)).unwrap();
    let (text, out_dir) = (text.to_str().unwrap(), dir.path().join("out"));
    for extra in [&[][..], &["--model", "tiny.en"]] {
        let mut args = vec!["process", text, "--out", out_dir.to_str().unwrap()];
        args.extend(extra);
        let err = one_line_error(&videdit(&args, &models));
        assert!(err.contains("invalid_media"), "{extra:?}: {err}");
    }

    // A plain f16 import is preferred when both are installed: it is the name asked for.
    let out = videdit(&["models", "import", &ct2(), "--name", "tiny.en"], &models);
    assert!(out.status.success(), "{out:?}");
    let f16 = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(f16.ends_with("ggml-tiny.en.bin"), "{f16}");
    assert_eq!(String::from_utf8_lossy(&videdit(&["models", "path"], &models).stdout).trim(), f16);
}
