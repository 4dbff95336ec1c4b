//! The CTranslate2 importer on the real faster-whisper tiny.en, and (with
//! the `download` feature) downloading from a local HTTP server.

use videdit_media::models::ct2::Ct2Model;
use videdit_media::models::{WeightType, import_ct2};
use videdit_media::testing::{
    PLAIN_PARAGRAPHS, WORDS_PER_MINUTE, samples_of, speak, tiny_en_ct2_dir, tiny_en_model, wer,
};
use videdit_media::transcribe::{TranscribeOptions, Transcriber};

fn read_i32s(bytes: &[u8], n: usize) -> Vec<i32> {
    bytes[..n * 4].chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn the_imported_header_matches_tiny_en() {
    let path = tiny_en_model(WeightType::F16);
    let bytes = std::fs::read(&path).unwrap();
    let h = read_i32s(&bytes, 12);
    assert_eq!(h[0] as u32, 0x6767_6d6c, "magic");
    // n_vocab, audio ctx/state/head/layer, text ctx/state/head/layer, mels, ftype
    assert_eq!(&h[1..], [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]);
    assert_eq!(read_i32s(&bytes[48..], 2), [80, 201]);
    let vocab_at = 56 + 80 * 201 * 4;
    assert_eq!(read_i32s(&bytes[vocab_at..], 1), [50256], "text tokens of an English-only vocabulary");
    // The first tokens are single bytes: "!", "\"", "#".
    assert_eq!(&bytes[vocab_at + 4..vocab_at + 9], &[1, 0, 0, 0, b'!']);
    // f16 matrices: about the size of the CTranslate2 f16 model.
    let ct2 = std::fs::metadata(tiny_en_ct2_dir().join("model.bin")).unwrap().len();
    let ratio = bytes.len() as f64 / ct2 as f64;
    assert!((0.9..1.1).contains(&ratio), "{ratio}");
    let q8 = std::fs::metadata(tiny_en_model(WeightType::Q8_0)).unwrap().len();
    assert!((q8 as f64) < bytes.len() as f64 * 0.65, "q8_0 is smaller: {q8}");
}

#[test]
fn the_ctranslate2_model_resolves_its_projection_alias() {
    let m = Ct2Model::read(&tiny_en_ct2_dir().join("model.bin")).unwrap();
    assert_eq!((m.spec.as_str(), m.revision), ("WhisperSpec", 3));
    let emb = m.get("decoder/embeddings/weight").unwrap();
    let proj = m.get("decoder/projection/weight").unwrap();
    assert_eq!(emb.shape, [51864, 384]);
    assert_eq!(emb.data, proj.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q5_models_load_and_transcribe() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("a.wav");
    speak(PLAIN_PARAGRAPHS[2], "en-us", WORDS_PER_MINUTE, &wav).await.unwrap();
    let samples = samples_of(&wav, 30.0).await;
    for wtype in [WeightType::Q5_1] {
        let out = dir.path().join(format!("ggml-tiny.en{}.bin", wtype.suffix()));
        let report = import_ct2(&tiny_en_ct2_dir(), &out, wtype).unwrap();
        assert_eq!(report.vocab, 50256);
        assert_eq!(report.tensors, 7 + 4 * 15 + 4 + 4 * 24, "every tensor whisper.cpp expects");
        let t = Transcriber::load(&out, "tiny.en").unwrap();
        let opts = TranscribeOptions { threads: Some(2), ..Default::default() };
        let transcript = t.transcribe_samples(samples.clone(), &opts, &|_| {}, &Default::default()).await.unwrap();
        let wer = wer(PLAIN_PARAGRAPHS[2], &transcript.text());
        eprintln!("{wtype:?}: WER {:.1}%: {}", wer * 100.0, transcript.text());
        assert!(wer <= 0.2, "{wtype:?} WER {wer:.3}");
    }
}

#[test]
fn a_directory_that_is_not_a_model_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = import_ct2(dir.path(), &dir.path().join("out.bin"), WeightType::F16).unwrap_err();
    assert!(matches!(err, videdit_media::Error::ModelNotFound { .. }), "{err:?}");
    std::fs::write(dir.path().join("model.bin"), b"\x06\0\0\0garbage").unwrap();
    let err = import_ct2(dir.path(), &dir.path().join("out.bin"), WeightType::F16).unwrap_err();
    assert!(matches!(err, videdit_media::Error::InvalidModel { .. }), "{err:?}");
    assert!(!dir.path().join("out.bin").exists());
}

#[cfg(feature = "download")]
mod download {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use sha2::Digest;
    use videdit_media::Error;
    use videdit_media::models::{DownloadOptions, ModelStore, download};

    /// A tiny HTTP/1.1 server: `/ggml-{name}.bin` redirects to `/files/…`,
    /// which serves `body` (honouring `Range`) with Hugging Face's
    /// `X-Linked-Etag` checksum on the redirect. Records the Range headers.
    fn serve(body: Vec<u8>, etag: String) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let mut range_start = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        seen.lock().unwrap().push(v.trim().to_owned());
                        range_start = v.trim().trim_end_matches('-').parse::<usize>().ok();
                    }
                }
                let response = if path == "/ggml-tiny.en.bin" {
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: /files/tiny\r\nX-Linked-Etag: \"{etag}\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .into_bytes()
                } else if path == "/files/tiny" {
                    let from = range_start.unwrap_or(0).min(body.len());
                    let mut head = if range_start.is_some() {
                        format!(
                            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{}\r\n",
                            body.len() - 1,
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 200 OK\r\n".to_owned()
                    };
                    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len() - from));
                    let mut r = head.into_bytes();
                    r.extend_from_slice(&body[from..]);
                    r
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
                };
                let _ = stream.write_all(&response);
            }
        });
        (base, ranges)
    }

    fn body() -> Vec<u8> {
        (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn downloads_verify_and_resume() {
        let body = body();
        let sha = hex::encode(sha2::Sha256::digest(&body));
        let (base, ranges) = serve(body.clone(), sha);
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let opts = DownloadOptions { base_url: base.clone(), ..DownloadOptions::default() };

        let mut seen = Vec::new();
        let path = download(&store, "tiny.en", &opts, &mut |done, total| seen.push((done, total))).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), body);
        assert_eq!(seen.last(), Some(&(body.len() as u64, Some(body.len() as u64))));
        assert!(ranges.lock().unwrap().is_empty());

        // An interrupted download resumes where it stopped.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(path.with_extension("bin.part"), &body[..100_000]).unwrap();
        let mut first = None;
        let path = download(&store, "tiny.en", &opts, &mut |done, _| {
            first.get_or_insert(done);
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), body);
        assert_eq!(first, Some(100_000));
        assert!(ranges.lock().unwrap().iter().any(|r| r == "100000-"), "{:?}", ranges.lock().unwrap());
        assert_eq!(store.list().unwrap(), ["tiny.en"]);
    }

    #[test]
    fn a_wrong_checksum_an_unknown_model_and_no_network_are_typed_errors() {
        let (base, _) = serve(body(), "0".repeat(64));
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let opts = DownloadOptions { base_url: base, ..DownloadOptions::default() };
        let err = download(&store, "tiny.en", &opts, &mut |_, _| {}).unwrap_err();
        assert!(
            matches!(&err, Error::Download { reason, retryable: false, .. } if reason.contains("checksum")),
            "{err}"
        );
        assert!(!store.path_of("tiny.en").exists() && !store.path_of("tiny.en").with_extension("bin.part").exists());

        let err = download(&store, "base", &opts, &mut |_, _| {}).unwrap_err();
        assert!(matches!(&err, Error::Download { reason, retryable: false, .. } if reason.contains("404")), "{err}");

        // Nothing listens on a port we just closed: "offline".
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let offline = DownloadOptions { base_url: format!("http://127.0.0.1:{port}"), ..DownloadOptions::default() };
        let err = download(&store, "tiny.en", &offline, &mut |_, _| {}).unwrap_err();
        assert!(matches!(&err, Error::Download { reason, retryable: true, .. } if reason.contains("offline")), "{err}");
        assert!(err.is_retryable());
        assert!(matches!(download(&store, "../x", &offline, &mut |_, _| {}), Err(Error::ModelNotFound { .. })));
    }
}
