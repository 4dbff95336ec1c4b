//! The kinds of jobs the video pipeline enqueues.

use serde::{Deserialize, Serialize};

use crate::error_code::stable_names;

stable_names! {
    /// A job kind, with a stable name used in the queue and the API.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum JobKind {
        /// Probe and validate an uploaded source.
        Ingest => "ingest",
        /// Speech to text.
        Transcribe => "transcribe",
        /// Find and rank the best moments.
        Analyze => "analyze",
        /// Render one short.
        Render => "render",
        /// Delete a video and its objects.
        Delete => "delete",
        /// Abort and remove uploads that were never completed.
        CleanupUploads => "cleanup_uploads",
        /// Publish a short to a connected platform account (one job per publication).
        Publish => "publish",
        /// Deliver one event to one webhook endpoint.
        DeliverWebhook => "deliver_webhook",
        /// Report a ready video's processed seconds to the Stripe meter.
        ReportUsage => "report_usage",
        /// Look at an organisation whose payment grace period has ended.
        BillingGraceEnded => "billing_grace_ended",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_match_serde() {
        for k in JobKind::ALL {
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{}\"", k.as_str()));
            assert_eq!(JobKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(JobKind::Ingest.as_str(), "ingest");
        assert_eq!(JobKind::parse("transcode"), None);
    }
}
