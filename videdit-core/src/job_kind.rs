//! The kinds of jobs the video pipeline enqueues.

use serde::{Deserialize, Serialize};

/// A job kind, with a stable name used in the queue and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Probe and validate an uploaded source.
    Ingest,
    /// Speech to text.
    Transcribe,
    /// Find and rank the best moments.
    Analyze,
    /// Render one short.
    Render,
    /// Delete a video and its objects.
    Delete,
    /// Abort and remove uploads that were never completed.
    CleanupUploads,
    /// Publish a short to a social platform (reserved; not built yet).
    Publish,
    /// Deliver one event to one webhook endpoint.
    DeliverWebhook,
}

impl JobKind {
    /// Every kind.
    pub const ALL: &'static [JobKind] = &[
        Self::Ingest,
        Self::Transcribe,
        Self::Analyze,
        Self::Render,
        Self::Delete,
        Self::CleanupUploads,
        Self::Publish,
        Self::DeliverWebhook,
    ];

    /// The stable name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Transcribe => "transcribe",
            Self::Analyze => "analyze",
            Self::Render => "render",
            Self::Delete => "delete",
            Self::CleanupUploads => "cleanup_uploads",
            Self::Publish => "publish",
            Self::DeliverWebhook => "deliver_webhook",
        }
    }

    /// Parses the stable name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
