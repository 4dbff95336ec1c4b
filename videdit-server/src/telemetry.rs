//! Logging: pretty in development, JSON lines in production.

use tracing_subscriber::EnvFilter;
use videdit_core::config::Environment;

/// Installs the global subscriber (`RUST_LOG` overrides the level).
pub fn init(environment: Environment) {
    init_with(environment, "info,sqlx=warn,aws=warn");
}

/// Installs the global subscriber with `default` as the filter unless
/// `RUST_LOG` is set (the local commands log warnings only: they have
/// their own progress output).
pub fn init_with(environment: Environment, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match environment {
        Environment::Production => builder.json().flatten_event(true).try_init(),
        Environment::Development => builder.compact().try_init(),
    };
}
