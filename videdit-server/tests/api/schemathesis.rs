//! Schemathesis (pip) over the checked-in spec against a live server with
//! every integration configured (fake Stripe, YouTube, TikTok, Instagram)
//! and a ready video with shorts: its coverage, fuzzing and stateful
//! phases find no 5xx, no response outside the spec, and no schema-valid
//! request refused (but for the rules `schemathesis.toml` names), and the
//! stateful phase follows the spec's links to the shorts and recipes.

use std::time::Duration;

use sqlx::PgPool;

use crate::support::{Options, spawn_app, token};

#[sqlx::test(migrations = false)]
async fn schemathesis_finds_nothing_and_its_stateful_phase_reaches_the_recipes(pool: PgPool) {
    let st = std::env::var("VIDEDIT_SCHEMATHESIS")
        .unwrap_or_else(|_| panic!("VIDEDIT_SCHEMATHESIS is not set: scripts/test installs schemathesis and sets it"));
    let stripe = crate::billing::fake_stripe().await;
    let youtube = videdit_publish::fake::FakeYouTube::start().await;
    let tiktok = videdit_publish::fake::FakeTikTok::start().await;
    let instagram = videdit_publish::fake::FakeInstagram::start().await;
    let options = Options {
        billing: crate::billing::billing(24),
        stripe: Some(crate::billing::stripe_settings(&stripe)),
        youtube: Some(youtube.config()),
        tiktok: Some(tiktok.config()),
        instagram: Some(instagram.config()),
        ..Options::default()
    };
    let app = spawn_app(pool.clone(), options).await;
    let t = token("user_fuzz", Some(("org_fuzz", "org:admin")));
    crate::seed::ready_video(&app, &pool, &t).await;
    // The chain run uses an organisation of its own, whose one video is the seeded one.
    let chain_token = token("user_fuzz_chain", Some(("org_fuzz_chain", "org:admin")));
    crate::seed::ready_video(&app, &pool, &chain_token).await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    // Every operation in every phase; then the stateful phase alone over the
    // chain video → shorts → recipe, where nothing creates other videos, so
    // its links lead to the seeded short.
    let chain = ["listVideos", "getVideo", "listShorts", "getShort", "getRecipe", "putRecipe", "getTranscript"];
    let runs: [(&str, Vec<String>); 2] = [
        (&t, ["--phases", "coverage,fuzzing,stateful", "--max-examples", "30"].map(String::from).to_vec()),
        (
            &chain_token,
            ["--phases", "stateful", "--max-examples", "100"]
                .into_iter()
                .map(String::from)
                .chain(chain.iter().flat_map(|op| ["--include-operation-id".to_owned(), (*op).to_owned()]))
                .collect(),
        ),
    ];
    let mut stdout = String::new();
    for (t, args) in runs {
        let out = tokio::time::timeout(
            Duration::from_secs(600),
            tokio::process::Command::new(&st)
                .current_dir(root)
                .args(["--config-file", "schemathesis.toml", "run", "openapi/videdit.json"])
                .args(["--url", &format!("{}/api/v1", app.base)])
                .args(["--header", &format!("Authorization: Bearer {t}")])
                .args(&args)
                .args(["--seed", "1", "--request-timeout", "20", "--no-color"])
                // Lenient parsing (a number where a string is declared) is not a refusal.
                .args(["--exclude-checks", "negative_data_rejection"])
                .output(),
        )
        .await
        .expect("schemathesis ends within 10 minutes")
        .expect("schemathesis runs");
        stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "schemathesis {args:?} found failures:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The stateful phase followed the links (videos → shorts → recipe) to
    // the seeded short, whose id nothing else gives: a recipe it put there
    // queued a render.
    let renders: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit_queue.jobs WHERE kind = 'render'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(renders > 0, "the stateful phase never put a recipe:\n{stdout}");
}
