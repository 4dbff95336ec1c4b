//! A TypeScript client generated from the checked-in spec (openapi-typescript,
//! type-checked by tsc in `scripts/test`) runs against the live server.

use sqlx::PgPool;

use crate::support::{Options, spawn_app, token};

#[sqlx::test(migrations = false)]
async fn the_generated_typescript_client_runs_against_the_server(pool: PgPool) {
    let client = std::env::var("VIDEDIT_TS_CLIENT")
        .unwrap_or_else(|_| panic!("VIDEDIT_TS_CLIENT is not set: scripts/test builds clients/typescript and sets it"));
    let app = spawn_app(pool, Options::default()).await;
    let t = token("user_ts", Some(("org_ts", "org:admin")));
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new("node").arg(&client).arg(&app.base).arg(&t).output(),
    )
    .await
    .expect("the client finishes within 60 s")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("ok "), "{stdout}");
    assert!(stdout.trim_end().ends_with(" uploaded"), "{stdout}");
}
