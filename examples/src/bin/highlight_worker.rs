//! An application that embeds `videdit-queue` and `videdit-media` with a job
//! kind of its own: `find_highlights` takes a transcript and stores the best
//! moments in the application's own table, in the same transaction that
//! completes the job.
//!
//! ```sh
//! DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
//!   cargo run -p videdit-examples --bin highlight_worker
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use videdit_core::{Segment, Transcript, Word};
use videdit_media::analyze::{AnalyzeOptions, analyze};
use videdit_queue::{JobError, JobSpec, Outcome, Processed, RetryPolicy, Worker, WorkerConfig};

#[derive(Serialize, Deserialize)]
struct FindHighlights {
    episode: String,
    transcript: Transcript,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await?;
    videdit_queue::migrate(&pool).await?; // beside the app's own tables
    sqlx::query("CREATE TABLE IF NOT EXISTS highlights (episode text, rank int, score real, title text, start_s float8, end_s float8)")
        .execute(&pool)
        .await?;

    // The app enqueues work in its own transaction.
    let mut tx = pool.begin().await?;
    let job = FindHighlights { episode: "ep-1".into(), transcript: sample_transcript() };
    videdit_queue::enqueue(&mut tx, &JobSpec::new("find_highlights", &job)?.queue("example")).await?;
    tx.commit().await?;

    let worker = Worker::new(pool.clone(), WorkerConfig { queues: vec!["example".into()], ..Default::default() })?
        .register("find_highlights", Some(Duration::from_secs(60)), RetryPolicy::default(), |ctx| async move {
            let input: FindHighlights = ctx.job.payload().map_err(|e| JobError::fatal(e.to_string()))?;
            let options = AnalyzeOptions { max_shorts: 2, min_duration: 5.0, max_duration: 30.0, ..Default::default() };
            let found = analyze(&input.transcript, None, &options).map_err(|e| JobError::fatal(e.to_string()))?;
            let mut tx = ctx.pool().begin().await.map_err(|e| JobError::retryable(e.to_string()))?;
            for (i, h) in found.iter().enumerate() {
                sqlx::query("INSERT INTO highlights VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&input.episode)
                    .bind(i as i32 + 1)
                    .bind(h.score)
                    .bind(&h.title)
                    .bind(h.range.start())
                    .bind(h.range.end())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| JobError::retryable(e.to_string()))?;
            }
            ctx.complete_in(&mut tx).await?;
            tx.commit().await.map_err(|e| JobError::retryable(e.to_string()))?;
            Ok(Outcome::CompletedInTransaction)
        });
    // Step by step here; a long-running app calls `worker.run(shutdown, grace)`.
    while let Processed::Completed(id) = worker.process_next().await? {
        println!("job {id} done");
    }
    let rows: Vec<(i32, f32, String, f64, f64)> = sqlx::query_as(
        "SELECT rank, score, title, start_s, end_s FROM highlights WHERE episode = 'ep-1' ORDER BY rank",
    )
    .fetch_all(&pool)
    .await?;
    for (rank, score, title, start, end) in rows {
        println!("#{rank} {score:5.1} {start:6.1}-{end:6.1}s  {title}");
    }
    Ok(())
}

/// A small transcript with a clear hook among small talk.
fn sample_transcript() -> Transcript {
    let sentences = [
        "Hi everyone and welcome back to the show.",
        "So yeah, um, the weather was nice today, you know.",
        "Why do most startups fail in their first year?",
        "We studied four hundred companies over ten years.",
        "Ninety percent ran out of money before they found customers.",
        "The fix is simple: talk to ten customers before you write any code.",
        "Anyway, uh, let's see what else we have here.",
        "Okay, that's all for today, thanks for listening.",
    ];
    let mut t = 0.0;
    let mut segments = Vec::new();
    for s in sentences {
        let start = t;
        let words: Vec<Word> = s
            .split_whitespace()
            .map(|w| {
                let word = Word { text: w.into(), start: t, end: t + 0.32, probability: 0.95 };
                t += 0.4;
                word
            })
            .collect();
        t += 0.8; // a pause between sentences
        segments.push(Segment { start, end: words.last().map_or(start, |w| w.end), text: s.into(), words });
    }
    Transcript { language: "en".into(), model: "example".into(), duration: t, segments }
}
