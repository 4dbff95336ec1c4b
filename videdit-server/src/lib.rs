//! # videdit-server
//!
//! The reference server of videdit: a REST API (poem + poem-openapi) over
//! the core repository, storage and queue, with Clerk authentication, and
//! the `videdit` binary (`serve`, `worker`, `process`, `migrate`,
//! `openapi`, `models`). The life cycle lives in `videdit-service` (the
//! application layer); this crate only adapts it to HTTP ([`api`]) and to
//! the queue ([`handlers`]).

pub mod admission;
pub mod api;
pub mod app;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod handlers;
pub mod health;
pub mod metrics;
pub mod rate_limit;
pub mod settings;
pub mod storage_routes;
pub mod telemetry;
pub mod web;

/// The OpenAPI spec as pretty JSON (what `videdit openapi` writes), with
/// the links between operations that poem-openapi cannot declare: upload
/// → complete → video → shorts → recipe, job → cancel, and the like, so
/// clients and stateful fuzzers can follow the API from one call to the
/// next.
#[must_use]
pub fn openapi_spec() -> String {
    let generated = app::api_service("/api/v1").spec();
    let mut spec: serde_json::Value = serde_json::from_str(&generated).expect("poem-openapi writes JSON");
    add_links(&mut spec);
    add_constraints(&mut spec);
    plain_union_refs(&mut spec);
    let mut out = serde_json::to_string_pretty(&spec).expect("JSON");
    out.push('\n');
    out
}

/// `(from operation, link name, to operation, {parameter: runtime expression})`.
type Link = (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)]);

const LINKS: &[Link] = &[
    ("createUpload", "CompleteUpload", "completeUpload", &[("id", "$response.body#/uploadId")]),
    ("createUpload", "AbortUpload", "abortUpload", &[("id", "$response.body#/uploadId")]),
    ("createUpload", "GetVideo", "getVideo", &[("id", "$response.body#/videoId")]),
    ("completeUpload", "GetVideo", "getVideo", &[("id", "$response.body#/id")]),
    ("completeUpload", "ListShorts", "listShorts", &[("id", "$response.body#/id")]),
    ("listVideos", "GetVideo", "getVideo", &[("id", "$response.body#/items/0/id")]),
    ("listVideos", "ListShorts", "listShorts", &[("id", "$response.body#/items/0/id")]),
    ("getVideo", "ListShorts", "listShorts", &[("id", "$response.body#/id")]),
    ("getVideo", "GetTranscript", "getTranscript", &[("id", "$response.body#/id")]),
    ("getVideo", "ListJobs", "listJobs", &[("id", "$response.body#/id")]),
    ("getVideo", "RenameVideo", "renameVideo", &[("id", "$response.body#/id")]),
    ("getVideo", "CreateJob", "createJob", &[("id", "$response.body#/id")]),
    ("listShorts", "GetShort", "getShort", &[("id", "$response.body#/0/id")]),
    ("listShorts", "GetRecipe", "getRecipe", &[("id", "$response.body#/0/id")]),
    ("listShorts", "CreatePublication", "createPublication", &[("id", "$response.body#/0/id")]),
    ("getShort", "GetRecipe", "getRecipe", &[("id", "$response.body#/id")]),
    ("getRecipe", "PutRecipe", "putRecipe", &[("id", "$request.path.id")]),
    ("createJob", "GetJob", "getJob", &[("id", "$response.body#/id")]),
    ("createJob", "CancelJob", "cancelJob", &[("id", "$response.body#/id")]),
    ("listJobs", "GetJob", "getJob", &[("id", "$response.body#/0/id")]),
    ("getJob", "CancelJob", "cancelJob", &[("id", "$response.body#/id")]),
    ("createWebhook", "GetWebhook", "getWebhook", &[("id", "$response.body#/id")]),
    ("createWebhook", "UpdateWebhook", "updateWebhook", &[("id", "$response.body#/id")]),
    ("createWebhook", "TestWebhook", "testWebhook", &[("id", "$response.body#/id")]),
    ("createWebhook", "ListWebhookDeliveries", "listWebhookDeliveries", &[("id", "$response.body#/id")]),
    ("createWebhook", "RotateWebhookSecret", "rotateWebhookSecret", &[("id", "$response.body#/id")]),
    ("createWebhook", "DeleteWebhook", "deleteWebhook", &[("id", "$response.body#/id")]),
    ("createPublication", "GetPublication", "getPublication", &[("id", "$response.body#/id")]),
    ("createPublication", "CancelPublication", "cancelPublication", &[("id", "$response.body#/id")]),
    ("createPublication", "ReschedulePublication", "reschedulePublication", &[("id", "$response.body#/id")]),
    ("listConnections", "GetConnection", "getConnection", &[("id", "$response.body#/items/0/id")]),
];

/// Text people type: no control or bidirectional-override characters (see `videdit_core::text`).
const PRINTABLE: &str = r"^[^\x00-\x1F\x7F-\x9F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]*$";
/// The same, and not blank (one character at least that is not white space).
const PRINTABLE_NOT_BLANK: &str = concat!(
    r"^[^\x00-\x1F\x7F-\x9F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]*",
    r"[^\s\x00-\x1F\x7F-\x9F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]",
    r"[^\x00-\x1F\x7F-\x9F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]*$"
);

/// Constraints the server checks itself, with messages that name what is
/// wrong (a character as `U+202E`, the versions it knows), stated in the
/// spec too: `(schema, property, constraint)`.
fn constraints() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        ("CreateUpload", "fileName", json!({"pattern": PRINTABLE_NOT_BLANK})),
        ("RenameVideo", "title", json!({"pattern": PRINTABLE_NOT_BLANK})),
        ("RecipeBody", "title", json!({"pattern": PRINTABLE, "maxLength": videdit_core::recipe::MAX_TITLE_CHARS})),
        ("RecipeBody", "version", json!({"minimum": 1, "maximum": videdit_core::recipe::RECIPE_VERSION})),
        ("RecipeBody", "startSeconds", json!({"minimum": 0})),
        ("RecipeBody", "endSeconds", json!({"minimum": 0})),
        ("RecipeBody", "aspect", json!({"enum": ["9:16", "1:1", "4:5", "16:9"]})),
        ("RecipeBody", "captionStyle", json!({"enum": ["bold", "highlight", "boxed", "none"]})),
        ("RecipeBody", "words", json!({"maxItems": videdit_core::recipe::MAX_RECIPE_WORDS})),
        ("ReframeSplit", "zoom", json!({"minimum": 0.25, "maximum": 1})),
        ("ReframeTrack", "keyframes", json!({"maxItems": videdit_core::recipe::MAX_KEYFRAMES})),
        ("ReframeSplit", "top", json!({"maxItems": videdit_core::recipe::MAX_KEYFRAMES})),
        ("ReframeSplit", "bottom", json!({"maxItems": videdit_core::recipe::MAX_KEYFRAMES})),
        ("RecipeKeyframe", "t", json!({"minimum": 0})),
        ("RecipeKeyframe", "x", json!({"minimum": 0, "maximum": 1})),
        ("RecipeKeyframe", "y", json!({"minimum": 0, "maximum": 1})),
        ("ReframeCrop", "x", json!({"minimum": 0, "maximum": 1})),
        ("RecipeWord", "text", json!({"pattern": PRINTABLE, "maxLength": videdit_core::recipe::MAX_WORD_CHARS})),
        ("RecipeWord", "start", json!({"minimum": 0})),
        ("RecipeWord", "end", json!({"minimum": 0})),
    ]
}

/// A property documented in Rust is an `allOf` of its type's `$ref` and
/// its description; for a `oneOf` with a discriminator, generators read
/// that `allOf` as inheritance and drop the discriminator (TypeScript's
/// `Omit<RecipeReframe, "mode">`). Such properties become a plain `$ref`.
fn plain_union_refs(spec: &mut serde_json::Value) {
    let Some(schemas) = spec["components"]["schemas"].as_object_mut() else { return };
    let unions: Vec<String> = schemas
        .iter()
        .filter(|(_, s)| s.get("discriminator").is_some())
        .map(|(name, _)| format!("#/components/schemas/{name}"))
        .collect();
    for schema in schemas.values_mut() {
        for prop in
            schema.get_mut("properties").and_then(|p| p.as_object_mut()).into_iter().flat_map(|p| p.values_mut())
        {
            let target = prop["allOf"][0]["$ref"].as_str().filter(|r| unions.iter().any(|u| u == r)).map(str::to_owned);
            if let Some(target) = target {
                *prop = serde_json::json!({"$ref": target});
            }
        }
    }
}

fn add_constraints(spec: &mut serde_json::Value) {
    for (schema, property, c) in constraints() {
        if let (Some(target), Some(add)) =
            (spec["components"]["schemas"][schema]["properties"][property].as_object_mut(), c.as_object())
        {
            target.extend(add.clone());
        }
    }
    // Idempotency keys: 1 to 255 characters.
    if let Some(paths) = spec.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for op in paths.values_mut().filter_map(|i| i.as_object_mut()).flat_map(|i| i.values_mut()) {
            for p in op.get_mut("parameters").and_then(|p| p.as_array_mut()).into_iter().flatten() {
                if p["name"] == "Idempotency-Key"
                    && let Some(s) = p["schema"].as_object_mut()
                {
                    s.insert("minLength".into(), 1.into());
                    s.insert("maxLength".into(), 255.into());
                }
            }
        }
    }
}

fn add_links(spec: &mut serde_json::Value) {
    let Some(paths) = spec.get_mut("paths").and_then(|p| p.as_object_mut()) else { return };
    for (from, name, to, params) in LINKS {
        let op = paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|item| item.values_mut())
            .find(|op| op.get("operationId").and_then(|o| o.as_str()) == Some(from));
        let Some(responses) = op.and_then(|op| op.get_mut("responses")).and_then(|r| r.as_object_mut()) else {
            continue;
        };
        let Some((_, ok)) = responses.iter_mut().find(|(code, _)| code.starts_with('2')) else { continue };
        let parameters: serde_json::Map<String, serde_json::Value> =
            params.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
        ok["links"][*name] = serde_json::json!({"operationId": to, "parameters": parameters});
    }
}

/// Applies every migration the server needs (core, then queue).
///
/// # Errors
/// Database failures.
pub async fn migrate_all(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    videdit_core::db::migrate(pool).await?;
    videdit_queue::migrate(pool).await?;
    Ok(())
}

/// How long a starting process keeps trying to reach the database.
pub const STARTUP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Connects to the database and applies the migrations, trying again with
/// backoff for up to [`STARTUP_PATIENCE`]: a process started while
/// PostgreSQL restarts (a deploy, a failover) waits for it rather than
/// exiting.
///
/// # Errors
/// The last failure once the patience is spent.
pub async fn connect_and_migrate(
    url: &videdit_core::config::DatabaseUrl,
    max_connections: u32,
) -> anyhow::Result<sqlx::PgPool> {
    let started = std::time::Instant::now();
    let mut wait = std::time::Duration::from_millis(250);
    loop {
        let attempt = async {
            let pool = videdit_core::db::connect(url, max_connections).await?;
            migrate_all(&pool).await?;
            anyhow::Ok(pool)
        };
        match attempt.await {
            Ok(pool) => return Ok(pool),
            Err(e) if started.elapsed() + wait < STARTUP_PATIENCE => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis(), "the database is not reachable yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
