//! A client for a remote videdit server, generated at compile time from the
//! checked-in OpenAPI spec (`openapi/videdit.json`) by progenitor: one
//! method per operation (`client.list_videos()…send()`), typed request and
//! response bodies, and the API's errors as [`types::ErrorBody`]. A change to
//! the spec changes this crate in the same build, so it cannot drift.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = videdit_client::with_token("http://127.0.0.1:8080/api/v1", "dev")?;
//! let page = client.list_videos().limit(10).send().await?;
//! for v in &page.items {
//!     println!("{} {:?}", v.title, v.status);
//! }
//! # Ok(())
//! # }
//! ```

#![allow(missing_docs, clippy::all, clippy::pedantic)]

progenitor::generate_api!(spec = "../../openapi/videdit.json", interface = Builder, tags = Merged);

/// A client for `base` (`https://…/api/v1`) that sends `token` as the bearer
/// (a Clerk session token, or anything with `AUTH_MODE=insecure-dev`), with
/// a 30 s timeout per request.
///
/// # Errors
/// A token that is not a valid header value, or a client that cannot be built.
pub fn with_token(base: &str, token: &str) -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    Ok(Client::new_with_client(base, http))
}
