//! Serves the local storage backend's signed URLs (`PUT`/`GET /storage/…`),
//! so uploads and downloads work without S3.

use std::sync::Arc;

use futures_util::TryStreamExt;
use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Body, Endpoint, EndpointExt, Request, Response, Route, handler};
use time::OffsetDateTime;
use videdit_core::ErrorCode;
use videdit_core::storage::{ByteRange, SignedOperation, Storage, attachment_disposition};

use crate::api::error::error_response;
use crate::app::AppState;

/// `/storage/*` routes.
pub fn routes(state: Arc<AppState>) -> impl Endpoint {
    Route::new().at("/*key", poem::put(put).get(get).head(get)).data(state)
}

fn fail(e: &videdit_core::Error) -> Response {
    error_response(e.code(), &e.to_string())
}

fn verify(
    state: &AppState,
    req: &Request,
) -> Result<(videdit_core::storage::LocalStorage, videdit_core::storage::VerifiedUrl), Box<Response>> {
    let Some(local) = state.local.clone() else {
        return Err(Box::new(error_response(ErrorCode::NotFound, "this server does not serve storage URLs")));
    };
    let signer = local.signer().ok_or_else(|| Box::new(error_response(ErrorCode::NotFound, "no URL signer")))?;
    let content_type = req.header(header::CONTENT_TYPE);
    let verified = signer
        .verify(
            req.method().as_str(),
            // Nesting strips `/storage` from `uri()`; the signature covers the full path.
            req.original_uri().path(),
            req.original_uri().query().unwrap_or(""),
            content_type,
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| Box::new(fail(&e)))?;
    Ok((local, verified))
}

#[handler]
async fn put(req: &Request, body: Body, Data(state): Data<&Arc<AppState>>) -> Response {
    let (local, verified) = match verify(state, req) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    // A declared length over the signed limit is refused before reading.
    if let (SignedOperation::Put { max_size: Some(max), .. }, Some(len)) =
        (&verified.operation, req.header(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()))
        && len > *max
    {
        return error_response(ErrorCode::UploadTooLarge, &format!("{len} bytes exceeds the signed limit of {max}"));
    }
    let stream = body.into_bytes_stream().map_err(std::io::Error::other);
    match local.accept_signed_put(&verified, Box::pin(stream)).await {
        Ok(meta) => {
            let mut resp = Response::builder().status(StatusCode::OK);
            if let Some(etag) = meta.etag {
                resp = resp.header(header::ETAG, etag);
            }
            resp.finish()
        }
        Err(e) => fail(&e),
    }
}

#[handler]
async fn get(req: &Request, Data(state): Data<&Arc<AppState>>) -> Response {
    let (local, verified) = match verify(state, req) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let SignedOperation::Get { download_name } = &verified.operation else {
        return error_response(ErrorCode::InvalidSignature, "this URL is not for downloading");
    };
    let range = req.header(header::RANGE).and_then(parse_range);
    let obj = match local.get(&verified.key, range).await {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let mut resp = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .content_type(obj.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()));
    if let Some(name) = download_name {
        resp = resp.header(header::CONTENT_DISPOSITION, attachment_disposition(name));
    }
    if let Some(r) = range {
        let end = r.end.map_or(obj.meta.size - 1, |e| e.min(obj.meta.size - 1));
        resp = resp
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {}-{end}/{}", r.start, obj.meta.size));
    }
    if req.method() == poem::http::Method::HEAD {
        return resp.header(header::CONTENT_LENGTH, obj.meta.size).finish();
    }
    resp.body(Body::from_bytes_stream(obj.body))
}

/// `bytes=a-b` or `bytes=a-`; anything else is served whole.
fn parse_range(v: &str) -> Option<ByteRange> {
    let spec = v.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start = a.trim().parse().ok()?;
    match b.trim() {
        "" => Some(ByteRange::from(start)),
        end => Some(ByteRange::new(start, end.parse().ok()?)),
    }
}
