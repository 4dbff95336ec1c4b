//! Server settings beyond the shared core configuration.

use std::net::SocketAddr;
use std::time::Duration;

use videdit_core::config::ConfigError;

use crate::auth::ClerkConfig;

/// Per-organisation limits (one set for now; per-plan limits come with billing).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest upload in bytes.
    pub max_upload_bytes: u64,
    /// Longest video in seconds (checked at ingest).
    pub max_duration_seconds: f64,
    /// Uploads above this size use multipart.
    pub multipart_threshold: u64,
    /// Sustained requests per second per user (0 disables).
    pub requests_per_second: f64,
    /// Burst of requests per user.
    pub request_burst: f64,
}

impl Limits {
    /// The limits from `LIMIT_*` variables (the worker reads them too).
    ///
    /// # Errors
    /// One [`ConfigError`] per bad value.
    pub fn from_env() -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let limits = Self::from_env_into(&mut errors);
        if errors.is_empty() { Ok(limits) } else { Err(errors) }
    }

    fn from_env_into(errors: &mut Vec<ConfigError>) -> Self {
        let mut limits = Limits::default();
        if let Some(v) = var("LIMIT_UPLOAD_BYTES") {
            match v.parse::<u64>() {
                Ok(n) if n > 0 => limits.max_upload_bytes = n,
                _ => errors.push(ConfigError {
                    var: "LIMIT_UPLOAD_BYTES",
                    message: format!("{v:?} is not a positive number"),
                }),
            }
        }
        if let Some(v) = var("LIMIT_DURATION_SECONDS") {
            match v.parse::<f64>() {
                Ok(n) if n > 0.0 => limits.max_duration_seconds = n,
                _ => errors.push(ConfigError {
                    var: "LIMIT_DURATION_SECONDS",
                    message: format!("{v:?} is not a positive number"),
                }),
            }
        }
        if let Some(v) = var("LIMIT_REQUESTS_PER_SECOND") {
            match v.parse::<f64>() {
                Ok(n) if n >= 0.0 => limits.requests_per_second = n,
                _ => errors.push(ConfigError {
                    var: "LIMIT_REQUESTS_PER_SECOND",
                    message: format!("{v:?} is not a number >= 0"),
                }),
            }
        }
        limits
    }

    /// What media the worker accepts.
    #[must_use]
    pub fn media(&self) -> videdit_media::probe::MediaLimits {
        videdit_media::probe::MediaLimits { max_duration: self.max_duration_seconds, max_bytes: self.max_upload_bytes }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 10 * 1024 * 1024 * 1024,
            max_duration_seconds: 4.0 * 3600.0,
            multipart_threshold: 100 * 1024 * 1024,
            requests_per_second: 20.0,
            request_burst: 100.0,
        }
    }
}

/// How the API authenticates.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// Clerk JWTs.
    Clerk(ClerkConfig),
    /// A fixed development user; only on loopback.
    InsecureDev,
}

/// Settings of `videdit serve`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where to listen.
    pub bind: SocketAddr,
    /// Authentication.
    pub auth: AuthSettings,
    /// Limits.
    pub limits: Limits,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl ServerSettings {
    /// Reads `BIND_ADDR`, `AUTH_MODE`, `CLERK_*` and `LIMIT_*` variables.
    ///
    /// # Errors
    /// Every bad value, each naming its variable.
    pub fn from_env() -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let bind = var("BIND_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind: SocketAddr = bind.parse().unwrap_or_else(|_| {
            errors.push(ConfigError { var: "BIND_ADDR", message: format!("{bind:?} is not host:port") });
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let auth = match var("AUTH_MODE").as_deref().unwrap_or("clerk") {
            "insecure-dev" => {
                if !bind.ip().is_loopback() {
                    errors.push(ConfigError {
                        var: "AUTH_MODE",
                        message: format!("insecure-dev refuses to start on {bind}: bind to 127.0.0.1 or ::1"),
                    });
                }
                AuthSettings::InsecureDev
            }
            "clerk" => {
                let issuer = var("CLERK_ISSUER");
                if issuer.is_none() {
                    errors.push(ConfigError {
                        var: "CLERK_ISSUER",
                        message: "is required (https://<your-app>.clerk.accounts.dev), or set AUTH_MODE=insecure-dev for local development".into(),
                    });
                }
                let issuer = issuer.unwrap_or_default();
                let jwks_url = var("CLERK_JWKS_URL")
                    .unwrap_or_else(|| format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')));
                AuthSettings::Clerk(ClerkConfig {
                    jwks_url,
                    issuer,
                    audience: var("CLERK_AUDIENCE"),
                    authorized_parties: var("CLERK_AUTHORIZED_PARTIES")
                        .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                        .unwrap_or_default(),
                    leeway: Duration::from_secs(5),
                    min_refresh_interval: Duration::from_secs(30),
                })
            }
            other => {
                errors.push(ConfigError {
                    var: "AUTH_MODE",
                    message: format!("{other:?} is not one of clerk, insecure-dev"),
                });
                AuthSettings::InsecureDev
            }
        };
        let limits = Limits::from_env_into(&mut errors);
        if errors.is_empty() { Ok(Self { bind, auth, limits }) } else { Err(errors) }
    }
}
