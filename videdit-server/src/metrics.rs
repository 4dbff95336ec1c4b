//! Prometheus metrics: HTTP figures recorded by a middleware, plus whatever
//! gauges other parts register (queue depth and job counters).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use poem::{Endpoint, IntoResponse, Request, Response};

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// HTTP request metrics, by method and status class.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    // (method, status class) -> count; a handful of keys, so a Vec is enough.
    counts: Mutex<Vec<((String, u16), u64)>>,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
    total: AtomicU64,
    in_flight: AtomicU64,
}

impl HttpMetrics {
    fn record(&self, method: &str, status: u16, seconds: f64) {
        let class = status / 100 * 100;
        {
            let mut counts = self.counts.lock().expect("metrics lock");
            match counts.iter_mut().find(|((m, c), _)| m == method && *c == class) {
                Some((_, n)) => *n += 1,
                None => counts.push(((method.to_owned(), class), 1)),
            }
        }
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP videdit_http_requests_total HTTP requests by method and status class.");
        let _ = writeln!(out, "# TYPE videdit_http_requests_total counter");
        let mut counts = self.counts.lock().expect("metrics lock").clone();
        counts.sort();
        for ((method, class), n) in counts {
            let _ =
                writeln!(out, "videdit_http_requests_total{{method=\"{method}\",status=\"{}xx\"}} {n}", class / 100);
        }
        let _ = writeln!(out, "# HELP videdit_http_request_duration_seconds HTTP request latency.");
        let _ = writeln!(out, "# TYPE videdit_http_request_duration_seconds histogram");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "videdit_http_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "videdit_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "videdit_http_request_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "videdit_http_request_duration_seconds_count {total}");
        let _ = writeln!(out, "# HELP videdit_http_requests_in_flight Requests being served.");
        let _ = writeln!(out, "# TYPE videdit_http_requests_in_flight gauge");
        let _ = writeln!(out, "videdit_http_requests_in_flight {}", self.in_flight.load(Ordering::Relaxed));
    }
}

/// Records every request's method, status and latency.
pub async fn track<E: Endpoint>(next: E, req: Request, metrics: &HttpMetrics) -> poem::Result<Response> {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let result = next.call(req).await.map(IntoResponse::into_response);
    metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    let status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.status().as_u16(),
    };
    metrics.record(&method, status, start.elapsed().as_secs_f64());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_a_cumulative_histogram() {
        let m = HttpMetrics::default();
        m.record("GET", 200, 0.002);
        m.record("GET", 404, 0.02);
        m.record("POST", 201, 3.0);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("videdit_http_requests_total{method=\"GET\",status=\"2xx\"} 1"), "{out}");
        assert!(out.contains("videdit_http_requests_total{method=\"GET\",status=\"4xx\"} 1"));
        assert!(out.contains("videdit_http_requests_total{method=\"POST\",status=\"2xx\"} 1"));
        assert!(out.contains("videdit_http_request_duration_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(out.contains("videdit_http_request_duration_seconds_bucket{le=\"0.025\"} 2"));
        assert!(out.contains("videdit_http_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(out.contains("videdit_http_request_duration_seconds_count 3"));
    }
}
