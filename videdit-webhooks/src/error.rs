//! The crate's one error type.

use std::net::IpAddr;

use crate::address::AddressCategory;

/// Everything that can go wrong before a webhook request is made.
///
/// Failures of the request itself (timeouts, refused connections, non-2xx
/// answers) are not errors: they are an [`Attempt`](crate::Attempt) with an
/// [`Outcome`](crate::Outcome). No variant ever carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint URL is malformed or not acceptable (scheme, userinfo,
    /// missing host, too long).
    #[error("invalid webhook URL: {reason}")]
    InvalidUrl {
        /// What is wrong, in a few words.
        reason: &'static str,
        /// The parser's error, when the URL did not parse at all.
        #[source]
        source: Option<url::ParseError>,
    },

    /// The endpoint's host is, or resolves to, an address the
    /// [`UrlPolicy`](crate::UrlPolicy) forbids.
    ///
    /// The message names the category only, not the address: the address
    /// of an internal name is itself information worth keeping.
    #[error("webhook URL points to a forbidden address ({category})")]
    Forbidden {
        /// Why the address is forbidden.
        category: AddressCategory,
        /// The offending address, for logs.
        addr: IpAddr,
    },

    /// The host name could not be resolved, or resolved to nothing.
    #[error("could not resolve webhook host {host:?}")]
    DnsFailed {
        /// The host name looked up.
        host: String,
        /// The resolver's error; `None` when it answered with no address.
        #[source]
        source: Option<std::io::Error>,
    },

    /// The host name lookup took longer than its time limit.
    #[error("resolving webhook host {host:?} timed out")]
    DnsTimeout {
        /// The host name looked up.
        host: String,
    },

    /// A signing secret is not `whsec_` followed by padded standard base64
    /// of 24 to 64 bytes, or no secret was given.
    #[error("invalid webhook secret: {reason}")]
    InvalidSecret {
        /// What is wrong, in a few words (never the secret itself).
        reason: &'static str,
        /// The base64 decoder's error, when decoding failed.
        #[source]
        source: Option<base64::DecodeError>,
    },

    /// The message body is over [`MAX_BODY`](crate::MAX_BODY).
    #[error("webhook body is {len} bytes, over the limit of {max} bytes")]
    BodyTooLarge {
        /// The body's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// The message id is empty, too long, or has a character other than
    /// visible ASCII without `.` (the spec forbids `.` since it delimits
    /// the signed content).
    #[error("invalid webhook message id: {reason}")]
    InvalidMessageId {
        /// What is wrong, in a few words.
        reason: &'static str,
    },
}

impl Error {
    /// A short, stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidUrl { .. } => "webhook_url_invalid",
            Error::Forbidden { .. } => "webhook_url_forbidden",
            Error::DnsFailed { .. } => "webhook_dns_failed",
            Error::DnsTimeout { .. } => "webhook_dns_timeout",
            Error::InvalidSecret { .. } => "webhook_secret_invalid",
            Error::BodyTooLarge { .. } => "webhook_body_too_large",
            Error::InvalidMessageId { .. } => "webhook_message_id_invalid",
        }
    }

    /// Whether trying again later may succeed (name resolution can recover;
    /// a bad URL, a forbidden address or a bad message cannot).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::DnsFailed { .. } | Error::DnsTimeout { .. })
    }

    /// Whether the error is the fault of what the caller (or the caller's
    /// user) supplied: the URL, the secret or the message.
    pub fn is_client_error(&self) -> bool {
        !self.is_retryable()
    }

    pub(crate) fn invalid_url(reason: &'static str) -> Self {
        Error::InvalidUrl { reason, source: None }
    }

    pub(crate) fn invalid_secret(reason: &'static str) -> Self {
        Error::InvalidSecret { reason, source: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let errors = [
            Error::invalid_url("x"),
            Error::Forbidden { category: AddressCategory::Private, addr: [10, 0, 0, 1].into() },
            Error::DnsFailed { host: "h".into(), source: None },
            Error::DnsTimeout { host: "h".into() },
            Error::invalid_secret("x"),
            Error::BodyTooLarge { len: 2, max: 1 },
            Error::InvalidMessageId { reason: "x" },
        ];
        let codes: Vec<_> = errors.iter().map(Error::code).collect();
        assert_eq!(
            codes,
            [
                "webhook_url_invalid",
                "webhook_url_forbidden",
                "webhook_dns_failed",
                "webhook_dns_timeout",
                "webhook_secret_invalid",
                "webhook_body_too_large",
                "webhook_message_id_invalid",
            ]
        );
        let retryable: Vec<_> = errors.iter().map(Error::is_retryable).collect();
        assert_eq!(retryable, [false, false, true, true, false, false, false]);
    }

    #[test]
    fn forbidden_message_names_the_category_not_the_address() {
        let err = Error::Forbidden { category: AddressCategory::Private, addr: [10, 1, 2, 3].into() };
        let text = err.to_string();
        assert_eq!(text, "webhook URL points to a forbidden address (private network)");
        assert!(!text.contains("10.1.2.3"));
    }
}
