//! Counters and gauges of a worker, readable by a metrics endpoint.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::worker::Processed;

/// Live figures of one worker process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Jobs started.
    pub started: AtomicU64,
    /// Jobs completed.
    pub completed: AtomicU64,
    /// Attempts that failed and will be retried.
    pub retried: AtomicU64,
    /// Jobs that failed for good.
    pub failed: AtomicU64,
    /// Jobs running now.
    pub running: AtomicU64,
    /// Sum over started jobs of (start time - due time), in µs.
    pub start_latency_micros: AtomicU64,
}

impl Metrics {
    /// Counts a recorded end of an attempt.
    pub(crate) fn count(&self, processed: &Processed) {
        let counter = match processed {
            Processed::Completed(_) => &self.completed,
            Processed::Retried(_) => &self.retried,
            Processed::Dead(_) => &self.failed,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text lines.
    pub fn render(&self, out: &mut String) {
        for (name, help, kind, v) in [
            ("videdit_jobs_started_total", "Jobs started.", "counter", &self.started),
            ("videdit_jobs_completed_total", "Jobs completed.", "counter", &self.completed),
            ("videdit_jobs_retried_total", "Attempts failed and retried.", "counter", &self.retried),
            ("videdit_jobs_failed_total", "Jobs failed for good.", "counter", &self.failed),
            ("videdit_jobs_running", "Jobs running now.", "gauge", &self.running),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP videdit_job_start_latency_seconds_sum Time from due to start, summed.\n# TYPE videdit_job_start_latency_seconds_sum counter\nvidedit_job_start_latency_seconds_sum {}",
            self.start_latency_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
}
