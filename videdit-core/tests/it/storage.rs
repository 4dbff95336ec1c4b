//! The storage conformance suite, run against both backends.

use std::time::Duration;

use videdit_core::storage::{
    ByteRange, CompletedPart, KeyPrefix, MIN_PART_SIZE, ObjectKey, PresignGet, PresignPut, bytes_stream,
};
use videdit_core::{Error, ErrorCode, OrgId, ShortId, VideoId};

use crate::support::{Backend, Kind, collect, pattern};

fn source_key() -> ObjectKey {
    ObjectKey::video_source(OrgId::new(), VideoId::new(), "talk.mp4")
}

/// A new source object of `len` pattern bytes: its key and its bytes.
async fn stored_source(b: &Backend, len: usize, seed: u64) -> (ObjectKey, Vec<u8>) {
    let key = source_key();
    let data = pattern(len, seed);
    b.storage.put_stream(&key, bytes_stream(data.clone()), "video/mp4").await.unwrap();
    (key, data)
}

fn put_opts(len: Option<u64>, expires: Duration) -> PresignPut {
    PresignPut { expires_in: expires, content_type: "video/mp4".into(), content_length: len }
}

async fn round_trip(b: Backend) {
    let s = &b.storage;
    let key = source_key();
    assert_eq!(s.head(&key).await.unwrap(), None);
    let err = s.get(&key, None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ObjectNotFound, "{err}");

    let data = pattern(100_000, 1);
    let meta = s.put_stream(&key, bytes_stream(data.clone()), "video/mp4").await.unwrap();
    assert_eq!(meta.size, 100_000);
    let head = s.head(&key).await.unwrap().unwrap();
    assert_eq!(head.size, 100_000);
    assert_eq!(head.content_type.as_deref(), Some("video/mp4"));
    let got = s.get(&key, None).await.unwrap();
    assert_eq!(got.meta.size, 100_000);
    assert_eq!(collect(got.body).await, data);

    // Overwrite from a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    let data2 = pattern(1234, 2);
    std::fs::write(&path, &data2).unwrap();
    s.put_file(&key, &path, "application/octet-stream").await.unwrap();
    assert_eq!(collect(s.get(&key, None).await.unwrap().body).await, data2);
    assert_eq!(s.head(&key).await.unwrap().unwrap().content_type.as_deref(), Some("application/octet-stream"));

    // Empty objects are objects.
    let empty = ObjectKey::video_file(OrgId::new(), VideoId::new(), "empty.txt").unwrap();
    s.put_stream(&empty, bytes_stream(Vec::new()), "text/plain").await.unwrap();
    assert_eq!(s.head(&empty).await.unwrap().unwrap().size, 0);

    s.delete(&key).await.unwrap();
    assert_eq!(s.head(&key).await.unwrap(), None);
    s.delete(&key).await.unwrap(); // deleting twice is fine

    let err = s.put_stream(&key, bytes_stream(vec![1u8]), "").await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
}

async fn ranged_reads(b: Backend) {
    let s = &b.storage;
    let (key, data) = stored_source(&b, 10_000, 3).await;
    for (range, expected) in [
        (ByteRange::new(0, 0), &data[0..1]),
        (ByteRange::new(100, 199), &data[100..200]),
        (ByteRange::new(9_990, 20_000), &data[9_990..]),
        (ByteRange::from(5_000), &data[5_000..]),
    ] {
        let got = s.get(&key, Some(range)).await.unwrap();
        assert_eq!(got.meta.size, 10_000, "size is the whole object's ({range:?})");
        assert_eq!(collect(got.body).await, expected, "{range:?}");
    }
    let err = s.get(&key, Some(ByteRange::new(10, 5))).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    assert!(s.get(&key, Some(ByteRange::from(10_000))).await.is_err());
}

async fn delete_by_prefix(b: Backend) {
    let s = &b.storage;
    let org = OrgId::new();
    let (v1, v2) = (VideoId::new(), VideoId::new());
    let keys1 = [
        ObjectKey::video_source(org, v1, "a.mp4"),
        ObjectKey::short_video(org, v1, ShortId::new()),
        ObjectKey::short_thumbnail(org, v1, ShortId::new()),
    ];
    let other = ObjectKey::video_source(org, v2, "b.mp4");
    for k in keys1.iter().chain([&other]) {
        s.put_stream(k, bytes_stream(b"x".to_vec()), "video/mp4").await.unwrap();
    }
    assert_eq!(s.delete_prefix(&KeyPrefix::video(org, v1)).await.unwrap(), 3);
    for k in &keys1 {
        assert_eq!(s.head(k).await.unwrap(), None, "{k}");
    }
    assert!(s.head(&other).await.unwrap().is_some(), "another video's objects stay");
    assert_eq!(s.delete_prefix(&KeyPrefix::video(org, v1)).await.unwrap(), 0);
}

async fn large_stream_reads_back_identical(b: Backend) {
    let s = &b.storage;
    let key = source_key();
    // Larger than the S3 backend's stream part size, so it goes multipart.
    let data = pattern(20 * 1024 * 1024 + 17, 4);
    let chunks: Vec<std::io::Result<bytes::Bytes>> =
        data.chunks(1024 * 1024).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    let meta = s.put_stream(&key, Box::pin(futures_util::stream::iter(chunks)), "video/mp4").await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(s.head(&key).await.unwrap().unwrap().size, data.len() as u64);
    assert!(collect(s.get(&key, None).await.unwrap().body).await == data);

    // A stream that fails midway leaves nothing behind.
    let failing = ObjectKey::video_file(OrgId::new(), VideoId::new(), "broken.bin").unwrap();
    let mut chunks: Vec<std::io::Result<bytes::Bytes>> =
        (0..10).map(|_| Ok(bytes::Bytes::from(vec![0u8; 1024 * 1024]))).collect();
    chunks.push(Err(std::io::Error::other("client went away")));
    assert!(s.put_stream(&failing, Box::pin(futures_util::stream::iter(chunks)), "video/mp4").await.is_err());
    assert_eq!(s.head(&failing).await.unwrap(), None);
}

async fn presigned_put(b: Backend) {
    let s = &b.storage;
    let key = source_key();
    let data = pattern(50_000, 5);
    let req = s.presign_put(&key, &put_opts(Some(50_000), Duration::from_secs(300))).await.unwrap();
    assert_eq!(req.method, "PUT");
    let ok = b.send(&req, data.clone(), None).await;
    assert_eq!(ok.status, 200, "{:?}", String::from_utf8_lossy(&ok.body));
    assert_eq!(collect(s.get(&key, None).await.unwrap().body).await, data);
    assert_eq!(s.head(&key).await.unwrap().unwrap().content_type.as_deref(), Some("video/mp4"));

    // Another content type than the signed one.
    let key2 = source_key();
    let req = s.presign_put(&key2, &put_opts(Some(10), Duration::from_secs(300))).await.unwrap();
    let bad = b.send(&req, vec![0u8; 10], Some(vec![("content-type".into(), "text/html".into())])).await;
    assert!(matches!(bad.status, 400 | 403), "wrong content type: {}", bad.status);
    assert_eq!(s.head(&key2).await.unwrap(), None);

    // A tampered URL (pointing at another key).
    let mut tampered = req.clone();
    let other = source_key();
    tampered.url = tampered.url.replace(key2.as_str(), other.as_str());
    let bad = b.send(&tampered, vec![0u8; 10], None).await;
    assert_eq!(bad.status, 403, "tampered key");
    assert_eq!(s.head(&other).await.unwrap(), None);

    // A tampered signature.
    let mut tampered = req.clone();
    let sig_at = ["X-Amz-Signature=", "sig="]
        .iter()
        .find_map(|p| tampered.url.rfind(p).map(|i| i + p.len()))
        .expect("a signature parameter");
    let flipped = if &tampered.url[sig_at..=sig_at] == "0" { "1" } else { "0" };
    tampered.url.replace_range(sig_at..=sig_at, flipped);
    assert_eq!(b.send(&tampered, vec![0u8; 10], None).await.status, 403, "tampered signature");

    // More bytes than signed.
    let key3 = source_key();
    let req = s.presign_put(&key3, &put_opts(Some(10), Duration::from_secs(300))).await.unwrap();
    // The client sends its real length (11), with the signed content type.
    let bad = b.send(&req, vec![0u8; 11], Some(vec![("content-type".into(), "video/mp4".into())])).await;
    assert!(bad.status >= 400, "oversize upload accepted: {}", bad.status);
    assert_eq!(s.head(&key3).await.unwrap(), None);

    // Expired.
    let key4 = source_key();
    let req = s.presign_put(&key4, &put_opts(Some(3), Duration::from_secs(1))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let bad = b.send(&req, vec![1, 2, 3], None).await;
    assert_eq!(bad.status, 403, "expired URL");
    assert_eq!(s.head(&key4).await.unwrap(), None);

    // Bad options.
    for expires in [Duration::ZERO, Duration::from_secs(8 * 24 * 3600)] {
        let err = s.presign_put(&key4, &put_opts(None, expires)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    }
    let err = s
        .presign_put(
            &key4,
            &PresignPut { expires_in: Duration::from_secs(60), content_type: "nope".into(), content_length: None },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
}

async fn presigned_get(b: Backend) {
    let s = &b.storage;
    let (key, data) = stored_source(&b, 4096, 6).await;
    let req = s
        .presign_get(
            &key,
            &PresignGet { expires_in: Duration::from_secs(60), download_name: Some("My talk.mp4".into()) },
        )
        .await
        .unwrap();
    let ok = b.send(&req, vec![], None).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, data);
    assert_eq!(ok.header("content-disposition"), Some("attachment; filename=\"My talk.mp4\""));

    let mut tampered = req.clone();
    tampered.url = tampered.url.replace("My%20talk", "Your%20talk");
    assert_eq!(b.send(&tampered, vec![], None).await.status, 403);

    let req =
        s.presign_get(&key, &PresignGet { expires_in: Duration::from_secs(1), download_name: None }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(b.send(&req, vec![], None).await.status, 403, "expired GET");
}

async fn multipart_upload(b: Backend) {
    let s = &b.storage;
    let key = source_key();
    // 20 MB in parts of 5 MiB: four full parts and a short last one.
    let data = pattern(20_000_000, 7);
    let part = MIN_PART_SIZE as usize;
    let upload = s.create_multipart(&key, "video/mp4").await.unwrap();
    let mut parts = Vec::new();
    for (i, chunk) in data.chunks(part).enumerate() {
        let n = i as i32 + 1;
        let req = s.presign_part(&upload, n, chunk.len() as u64, Duration::from_secs(300)).await.unwrap();
        if n == 1 {
            // The URL binds the part's exact size: one byte less or more is refused.
            // (A client sends its body's true length: the signed one is not sent.)
            let honest: Vec<_> =
                req.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-length")).cloned().collect();
            for wrong in [chunk.len() - 1, chunk.len() + 1] {
                let refused = match b.kind {
                    // S3 may answer 403 or cut the connection while the body is sent.
                    Kind::S3 => {
                        let mut r = reqwest::Client::new().put(&req.url).body(pattern(wrong, 3));
                        for (k, v) in &honest {
                            r = r.header(k, v);
                        }
                        r.send().await.map_or(true, |resp| resp.status().is_client_error())
                    }
                    Kind::Local(_) => {
                        let status = b.send(&req, pattern(wrong, 3), Some(honest.clone())).await.status;
                        matches!(status, 400 | 403 | 413)
                    }
                };
                assert!(refused, "a {wrong}-byte part was accepted");
            }
        }
        let ans = b.send(&req, chunk.to_vec(), None).await;
        assert_eq!(ans.status, 200, "part {n}: {}", String::from_utf8_lossy(&ans.body));
        let etag = ans.header("etag").expect("an ETag per part").to_owned();
        parts.push(CompletedPart { part_number: n, etag });
    }
    assert_eq!(parts.len(), 4);
    assert_eq!(s.head(&key).await.unwrap(), None, "nothing visible before completion");

    // Out of order, unknown ETag: refused, and the upload survives.
    let mut reversed = parts.clone();
    reversed.reverse();
    assert!(s.complete_multipart(&upload, &reversed).await.is_err());
    let mut missing = parts.clone();
    missing[3].part_number = 9;
    let err = s.complete_multipart(&upload, &missing).await.unwrap_err();
    assert!(err.to_string().contains("part 9 was not uploaded"), "{err}");
    if matches!(b.kind, Kind::Local(_)) {
        // s3s-fs reports no part ETags to check against (AWS S3 refuses a
        // wrong ETag itself); the local backend checks them.
        let mut wrong = parts.clone();
        wrong[1].etag = "\"0123456789abcdef0123456789abcdef\"".into();
        assert!(s.complete_multipart(&upload, &wrong).await.is_err());
    }
    assert!(s.complete_multipart(&upload, &[]).await.is_err());

    let meta = s.complete_multipart(&upload, &parts).await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    let back = collect(s.get(&key, None).await.unwrap().body).await;
    assert!(back == data, "multipart object differs from what was sent");
    assert_eq!(s.head(&key).await.unwrap().unwrap().content_type.as_deref(), Some("video/mp4"));
    // Ranged read across a part boundary.
    let r = ByteRange::new(part as u64 - 10, part as u64 + 9);
    assert_eq!(collect(s.get(&key, Some(r)).await.unwrap().body).await, &data[part - 10..part + 10]);

    // Abort: parts are dropped, completion fails, aborting again succeeds.
    let key2 = source_key();
    let upload2 = s.create_multipart(&key2, "video/mp4").await.unwrap();
    let req = s.presign_part(&upload2, 1, 1000, Duration::from_secs(300)).await.unwrap();
    let ans = b.send(&req, vec![9u8; 1000], None).await;
    assert_eq!(ans.status, 200);
    let etag = ans.header("etag").unwrap().to_owned();
    s.abort_multipart(&upload2).await.unwrap();
    if matches!(b.kind, Kind::Local(_)) {
        // AWS answers NoSuchUpload to a second abort, which we treat as done;
        // s3s-fs answers AccessDenied, which we must not swallow.
        s.abort_multipart(&upload2).await.unwrap();
    }
    assert!(s.complete_multipart(&upload2, &[CompletedPart { part_number: 1, etag }]).await.is_err());
    assert_eq!(s.head(&key2).await.unwrap(), None);

    for n in [0, 10_001] {
        assert!(matches!(s.presign_part(&upload, n, 1, Duration::from_secs(60)).await, Err(Error::InvalidRequest(_))));
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test] async fn $name() { super::$name(crate::support::Backend::local().await).await })*
        }
        mod s3 {
            $(#[tokio::test] async fn $name() { super::$name(crate::support::Backend::s3().await).await })*
        }
    };
}

conformance!(
    round_trip,
    ranged_reads,
    delete_by_prefix,
    large_stream_reads_back_identical,
    presigned_put,
    presigned_get,
    multipart_upload,
);
