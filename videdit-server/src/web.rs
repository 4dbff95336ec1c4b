//! The web app, served at `/` beside the API: one page (`index.html`)
//! for every app path (the app routes in the browser), its script and
//! style under `/assets/`, and `/app-config.json`, which tells the app how
//! people sign in. The assets are embedded in the binary at build time
//! (`web/dist`, see `build.rs`), so serving needs no node.

use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{IntoResponse, Response, Route, get, handler};

use crate::app::AppState;

#[cfg(web_built)]
mod assets {
    pub const INDEX: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/dist/index.html"));
    pub const JS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/dist/app.js"));
    pub const CSS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/dist/app.css"));
}

#[cfg(not(web_built))]
mod assets {
    pub const INDEX: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>videdit</title>\
        <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\"><h1>videdit</h1>\
        <p>The API is at <a href=\"/api/v1/openapi.json\">/api/v1</a>. This binary was built without the web app: \
        run <code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code>, then build the server again.</p>";
    pub const JS: &str = "";
    pub const CSS: &str = "";
}

/// Whether this binary carries the built web app.
#[must_use]
pub fn built() -> bool {
    cfg!(web_built)
}

fn asset(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, cache)
        .header("X-Content-Type-Options", "nosniff")
        .body(body)
}

#[handler]
fn index() -> Response {
    // The page names its assets with a build hash, so it is never cached.
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "same-origin")
        .body(assets::INDEX)
}

#[handler]
fn script() -> Response {
    asset(assets::JS, "text/javascript; charset=utf-8", "public, max-age=300")
}

#[handler]
fn style() -> Response {
    asset(assets::CSS, "text/css; charset=utf-8", "public, max-age=300")
}

/// How the app signs people in: `insecure-dev` (no sign-in: the dev user)
/// or `clerk` with the publishable key for Clerk's frontend SDK.
#[handler]
fn config(state: Data<&Arc<AppState>>) -> impl IntoResponse {
    let body = serde_json::json!({
        "authMode": if state.auth.is_insecure_dev() { "insecure-dev" } else { "clerk" },
        "clerkPublishableKey": state.clerk_publishable_key,
        "stripePublishableKey": state.stripe_publishable_key,
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body.to_string())
}

/// The app's routes: its page at every path the app knows.
pub fn routes() -> Route {
    Route::new()
        .at("/", get(index))
        .at("/videos/*rest", get(index))
        .at("/shorts/*rest", get(index))
        .at("/connections", get(index))
        .at("/connections/*rest", get(index))
        .at("/publications", get(index))
        .at("/billing", get(index))
        .at("/brand", get(index))
        .at("/assets/app.js", get(script))
        .at("/assets/app.css", get(style))
        .at("/app-config.json", get(config))
}
