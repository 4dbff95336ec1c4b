//! Configuration, validated at start-up.
//!
//! [`Config::load`] looks up every setting a command needs by its variable
//! name, checks each one and reports *all* bad values at once, each naming
//! the variable and what it accepts. What a command needs differs:
//! `videdit process` runs with neither a database nor S3, so it never looks
//! at their variables.
//!
//! This crate does not read the process environment: the caller supplies
//! the values (the `videdit` binary from its command line and environment,
//! through clap; an embedder from wherever it keeps its settings).
//! [`VARIABLES`] names every variable [`Config::load`] may ask for.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// What the process is about to run; decides which settings are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The local pipeline (`videdit process`): no database, no S3.
    Process,
    /// The API server: database and storage.
    Serve,
    /// A queue worker: database and storage.
    Worker,
    /// Database migrations: database only.
    Migrate,
}

/// Log format and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    /// Pretty, human-readable logs.
    #[default]
    Development,
    /// JSON logs, one object per line.
    Production,
}

impl Environment {
    /// `development` (or `dev`, `test`) and `production` (or `prod`), in
    /// any case; `None` for anything else.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" | "test" => Some(Self::Development),
            "production" | "prod" => Some(Self::Production),
            _ => None,
        }
    }
}

/// A PostgreSQL connection URL, normalised. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(Secret<String>);

impl DatabaseUrl {
    /// Parses and normalises a URL: `postgresql+asyncpg://` and the other
    /// SQLAlchemy driver suffixes become `postgresql://`, and asyncpg's
    /// `ssl=` query parameter becomes libpq's `sslmode=`.
    ///
    /// # Errors
    /// A message saying what is wrong with the URL (never echoing it).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (scheme, rest) = raw.split_once("://").ok_or("must be a URL like postgresql://user@host:5432/db")?;
        let base = scheme.split('+').next().unwrap_or_default();
        if base != "postgresql" && base != "postgres" {
            return Err(format!("scheme {scheme:?} is not postgresql:// (or postgres://)"));
        }
        let mut url =
            url::Url::parse(&format!("postgresql://{rest}")).map_err(|e| format!("is not a valid URL: {e}"))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err("has no host".into());
        }
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                if k == "ssl" {
                    let mode = match &*v {
                        "true" | "require" => "require",
                        "false" | "disable" => "disable",
                        other => other,
                    };
                    ("sslmode".to_owned(), mode.to_owned())
                } else {
                    (k.into_owned(), v.into_owned())
                }
            })
            .collect();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        Ok(Self(Secret::new(url.to_string())))
    }

    /// The URL with its password, for the connection pool only.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with the password replaced by `***`, safe to log.
    #[must_use]
    pub fn redacted(&self) -> String {
        match url::Url::parse(self.0.expose()) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("***"));
                }
                u.to_string()
            }
            Err(_) => "[unparseable]".into(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// S3-compatible object storage settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Endpoint URL (`https://fly.storage.tigris.dev`); `None` means AWS.
    pub endpoint: Option<String>,
    /// Bucket name.
    pub bucket: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret<String>,
    /// Region; `auto` is accepted (Tigris, R2).
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`).
    pub force_path_style: bool,
}

/// Where objects are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// A local directory; presigned URLs are served by `videdit serve`.
    Local {
        /// Root directory.
        dir: PathBuf,
    },
    /// S3-compatible storage.
    S3(S3Config),
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Development or production.
    pub environment: Environment,
    /// Database, when the command needs one.
    pub database_url: Option<DatabaseUrl>,
    /// Storage, when the command needs it.
    pub storage: Option<StorageConfig>,
    /// Jobs a worker runs at once, 1..=20.
    pub job_concurrency: u8,
    /// Queue polling fallback interval, at least 100 ms.
    pub poll_interval: Duration,
    /// ffmpeg binary (ffprobe is looked up beside it).
    pub ffmpeg_binary: PathBuf,
    /// Whisper model name (`tiny.en`, `base`, …) or path to a ggml file.
    pub whisper_model: String,
    /// Where models are kept.
    pub model_dir: Option<PathBuf>,
    /// Key that signs local-storage URLs; `None` means generate and keep one
    /// in the storage directory.
    pub signing_key: Option<Secret<String>>,
    /// Public base URL of the server, used in local presigned URLs.
    pub public_url: Option<url::Url>,
}

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable (the canonical name even when an alias was set).
    pub var: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

/// Every bad setting found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line (a CLI prints one line per failure), every problem on it.
        write!(f, "invalid configuration: ")?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Default Whisper model when `WHISPER_MODEL` is unset.
pub const DEFAULT_WHISPER_MODEL: &str = "tiny.en";

/// Looks settings up by variable name and collects every bad value, so
/// that all of them are reported at once. [`Config::load`] checks with it;
/// a binary checks its own settings with it too, in the same words.
///
/// Each lookup takes a variable and its aliases (`&["S3_BUCKET",
/// "TIGRIS_BUCKET"]`): the first non-empty one wins, and a bad value is
/// reported under the first name.
pub struct Check<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl fmt::Debug for Check<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check").field("errors", &self.errors).finish_non_exhaustive()
    }
}

impl<'a> Check<'a> {
    /// Looks values up through `get`.
    #[must_use]
    pub fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { get, errors: Vec::new() }
    }

    /// The first non-empty value among a variable and its aliases, trimmed.
    #[must_use]
    pub fn var(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| (self.get)(n).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
    }

    /// Records that `var` is bad and why (what it accepts).
    pub fn err(&mut self, var: &'static str, message: impl Into<String>) {
        self.errors.push(ConfigError { var, message: message.into() });
    }

    /// A number that `ok` accepts, `default` when unset; anything else is
    /// reported as "is not `what`" and gives `default`.
    pub fn number<T: std::str::FromStr>(
        &mut self,
        names: &[&'static str],
        ok: impl FnOnce(&T) -> bool,
        what: &str,
        default: T,
    ) -> T {
        let Some(raw) = self.var(names) else { return default };
        match raw.parse::<T>() {
            Ok(n) if ok(&n) => n,
            _ => {
                self.err(names[0], format!("{raw:?} is not {what}"));
                default
            }
        }
    }

    /// `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off` in any case,
    /// `default` when unset; anything else is reported and gives `default`.
    pub fn bool(&mut self, names: &[&'static str], default: bool) -> bool {
        let Some(raw) = self.var(names) else { return default };
        match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                self.err(names[0], format!("{raw:?} is not a boolean (true/false/1/0)"));
                default
            }
        }
    }

    /// `value` when every setting was good.
    ///
    /// # Errors
    /// [`ConfigErrors`] with every bad setting, in the order found.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() { Ok(value) } else { Err(ConfigErrors(self.errors)) }
    }
}

/// `VIDEDIT_ENV` and its alias.
const ENVIRONMENT: &[&str] = &["VIDEDIT_ENV", "NODE_ENV"];
/// `S3_ENDPOINT` and its aliases, in order of precedence.
const S3_ENDPOINT: &[&str] = &["S3_ENDPOINT", "TIGRIS_ENDPOINT", "TIGRIS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"];
/// `S3_BUCKET` and its aliases, in order of precedence.
const S3_BUCKET: &[&str] = &["S3_BUCKET", "TIGRIS_BUCKET", "TIGRIS_BUCKET_NAME", "BUCKET_NAME"];
/// `S3_ACCESS_KEY_ID` and its aliases, in order of precedence.
const S3_ACCESS_KEY_ID: &[&str] = &["S3_ACCESS_KEY_ID", "TIGRIS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"];
/// `S3_SECRET_ACCESS_KEY` and its aliases, in order of precedence.
const S3_SECRET_ACCESS_KEY: &[&str] = &["S3_SECRET_ACCESS_KEY", "TIGRIS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"];
/// `S3_REGION` and its aliases, in order of precedence.
const S3_REGION: &[&str] = &["S3_REGION", "TIGRIS_REGION", "AWS_REGION"];
/// `S3_FORCE_PATH_STYLE` and its alias, in order of precedence.
const S3_FORCE_PATH_STYLE: &[&str] = &["S3_FORCE_PATH_STYLE", "TIGRIS_FORCE_PATH_STYLE"];

/// Every variable [`Config::load`] may look up, aliases included.
pub const VARIABLES: &[&str] = &[
    "VIDEDIT_ENV",
    "NODE_ENV",
    "DATABASE_URL",
    "STORAGE",
    "STORAGE_DIR",
    "S3_ENDPOINT",
    "TIGRIS_ENDPOINT",
    "TIGRIS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "S3_BUCKET",
    "TIGRIS_BUCKET",
    "TIGRIS_BUCKET_NAME",
    "BUCKET_NAME",
    "S3_ACCESS_KEY_ID",
    "TIGRIS_ACCESS_KEY_ID",
    "AWS_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
    "TIGRIS_SECRET_ACCESS_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "S3_REGION",
    "TIGRIS_REGION",
    "AWS_REGION",
    "S3_FORCE_PATH_STYLE",
    "TIGRIS_FORCE_PATH_STYLE",
    "STORAGE_SIGNING_KEY",
    "PUBLIC_URL",
    "JOB_CONCURRENCY",
    "POLL_INTERVAL_MS",
    "FFMPEG_BINARY",
    "WHISPER_MODEL",
    "VIDEDIT_MODEL_DIR",
];

impl Config {
    /// Loads from a map (tests, embedders).
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every bad or missing value.
    pub fn from_map(command: Command, map: &HashMap<String, String>) -> Result<Self, ConfigErrors> {
        Self::load(command, &|k| map.get(k).cloned())
    }

    /// Loads through a lookup function.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every bad or missing value.
    pub fn load(command: Command, get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut check = Check::new(get);

        let environment = match check.var(ENVIRONMENT) {
            None => Environment::Development,
            Some(v) => Environment::parse(&v).unwrap_or_else(|| {
                check.err("VIDEDIT_ENV", format!("{:?} is not one of development, production", v.to_ascii_lowercase()));
                Environment::Development
            }),
        };

        let needs_db = matches!(command, Command::Serve | Command::Worker | Command::Migrate);
        let needs_storage = matches!(command, Command::Serve | Command::Worker);

        let database_url = if needs_db {
            match check.var(&["DATABASE_URL"]) {
                None => {
                    check.err("DATABASE_URL", "is required (postgresql://user:password@host:5432/db)");
                    None
                }
                Some(raw) => match DatabaseUrl::parse(&raw) {
                    Ok(u) => Some(u),
                    Err(m) => {
                        check.err("DATABASE_URL", m);
                        None
                    }
                },
            }
        } else {
            None
        };

        let storage = if needs_storage { Self::storage(&mut check) } else { None };

        let job_concurrency =
            check.number(&["JOB_CONCURRENCY"], |n| (1..=20).contains(n), "a whole number in 1..=20", 1);
        let poll_interval =
            Duration::from_millis(check.number(&["POLL_INTERVAL_MS"], |n| *n >= 100, "a whole number >= 100", 1000));
        let ffmpeg_binary = check.var(&["FFMPEG_BINARY"]).map_or_else(|| PathBuf::from("ffmpeg"), PathBuf::from);
        let whisper_model = check.var(&["WHISPER_MODEL"]).unwrap_or_else(|| DEFAULT_WHISPER_MODEL.to_owned());
        let model_dir = check.var(&["VIDEDIT_MODEL_DIR"]).map(PathBuf::from);
        let signing_key = check.var(&["STORAGE_SIGNING_KEY"]).map(Secret::new);
        if let Some(k) = &signing_key
            && k.expose().len() < 32
        {
            check.err("STORAGE_SIGNING_KEY", "must be at least 32 characters");
        }
        let public_url = match check.var(&["PUBLIC_URL"]) {
            None => None,
            Some(raw) => match url::Url::parse(&raw) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                _ => {
                    check.err("PUBLIC_URL", format!("{raw:?} is not an http(s) URL"));
                    None
                }
            },
        };

        check.finish(Self {
            environment,
            database_url,
            storage,
            job_concurrency,
            poll_interval,
            ffmpeg_binary,
            whisper_model,
            model_dir,
            signing_key,
            public_url,
        })
    }

    fn storage(check: &mut Check<'_>) -> Option<StorageConfig> {
        let kind = check.var(&["STORAGE"]).map(|s| s.to_ascii_lowercase());
        let kind = match kind.as_deref() {
            Some("local") => "local",
            Some("s3") => "s3",
            None if check.var(S3_BUCKET).is_some() => "s3",
            None => "local",
            Some(other) => {
                check.err("STORAGE", format!("{other:?} is not one of local, s3"));
                return None;
            }
        };
        if kind == "local" {
            let dir = check.var(&["STORAGE_DIR"]).unwrap_or_else(|| ".videdit/storage".into());
            return Some(StorageConfig::Local { dir: PathBuf::from(dir) });
        }
        let endpoint = check.var(S3_ENDPOINT);
        if let Some(e) = &endpoint
            && !matches!(url::Url::parse(e), Ok(u) if matches!(u.scheme(), "http" | "https"))
        {
            check.err("S3_ENDPOINT", format!("{e:?} is not an http(s) URL"));
        }
        let bucket = check.var(S3_BUCKET);
        match &bucket {
            None => check.err("S3_BUCKET", "is required when STORAGE=s3"),
            Some(b) if !valid_bucket(b) => {
                check.err("S3_BUCKET", format!("{b:?} is not a valid bucket name (3-63 of a-z 0-9 . -)"));
            }
            Some(_) => {}
        }
        let access_key_id = check.var(S3_ACCESS_KEY_ID);
        if access_key_id.is_none() {
            check.err("S3_ACCESS_KEY_ID", "is required when STORAGE=s3");
        }
        let secret = check.var(S3_SECRET_ACCESS_KEY);
        if secret.is_none() {
            check.err("S3_SECRET_ACCESS_KEY", "is required when STORAGE=s3");
        }
        let region = check.var(S3_REGION).unwrap_or_else(|| "auto".into());
        // Loopback and IP endpoints cannot use virtual-hosted buckets.
        let default_path_style = endpoint.as_deref().and_then(|e| url::Url::parse(e).ok()).is_some_and(|u| {
            matches!(u.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) || u.host_str() == Some("localhost")
        });
        let force_path_style = check.bool(S3_FORCE_PATH_STYLE, default_path_style);
        Some(StorageConfig::S3(S3Config {
            endpoint,
            bucket: bucket?,
            access_key_id: access_key_id?,
            secret_access_key: Secret::new(secret?),
            region,
            force_path_style,
        }))
    }
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(command: Command, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Config::from_map(command, &map)
    }

    fn single_error(command: Command, vars: &[(&str, &str)]) -> ConfigError {
        let errs = load(command, vars).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs.into_iter().next().unwrap()
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres");

    #[test]
    fn process_needs_nothing() {
        let c = load(Command::Process, &[]).unwrap();
        assert_eq!(c.job_concurrency, 1);
        assert_eq!(c.poll_interval, Duration::from_millis(1000));
        assert_eq!(c.whisper_model, "tiny.en");
        assert!(c.database_url.is_none() && c.storage.is_none());
        // A broken DATABASE_URL does not matter to a command that does not use it.
        assert!(load(Command::Process, &[("DATABASE_URL", "mysql://x")]).is_ok());
    }

    #[test]
    fn job_concurrency_is_bounded() {
        for bad in ["0", "21", "abc", "-1", "1.5"] {
            let e = single_error(Command::Process, &[("JOB_CONCURRENCY", bad)]);
            assert_eq!(e.var, "JOB_CONCURRENCY");
            assert!(e.message.contains("1..=20"), "{e}");
            assert!(e.message.contains(bad), "{e}");
        }
        assert_eq!(load(Command::Process, &[("JOB_CONCURRENCY", "20")]).unwrap().job_concurrency, 20);
        assert_eq!(load(Command::Process, &[("JOB_CONCURRENCY", " 7 ")]).unwrap().job_concurrency, 7);
    }

    #[test]
    fn poll_interval_has_a_floor() {
        for bad in ["99", "0", "fast"] {
            let e = single_error(Command::Process, &[("POLL_INTERVAL_MS", bad)]);
            assert_eq!(e.var, "POLL_INTERVAL_MS");
            assert!(e.message.contains(">= 100"), "{e}");
        }
        let c = load(Command::Process, &[("POLL_INTERVAL_MS", "100")]).unwrap();
        assert_eq!(c.poll_interval, Duration::from_millis(100));
    }

    #[test]
    fn environment_and_its_alias() {
        assert_eq!(load(Command::Process, &[("NODE_ENV", "production")]).unwrap().environment, Environment::Production);
        assert_eq!(
            load(Command::Process, &[("VIDEDIT_ENV", "development"), ("NODE_ENV", "production")]).unwrap().environment,
            Environment::Development
        );
        let e = single_error(Command::Process, &[("VIDEDIT_ENV", "staging")]);
        assert_eq!(e.var, "VIDEDIT_ENV");
    }

    #[test]
    fn database_url_is_required_validated_and_normalised() {
        let e = single_error(Command::Migrate, &[]);
        assert_eq!(e.var, "DATABASE_URL");
        assert!(e.message.contains("required"));
        let e = single_error(Command::Migrate, &[("DATABASE_URL", "mysql://root@localhost/db")]);
        assert!(e.message.contains("not postgresql"), "{e}");
        let e = single_error(Command::Migrate, &[("DATABASE_URL", "not a url")]);
        assert_eq!(e.var, "DATABASE_URL");

        let c = load(Command::Migrate, &[("DATABASE_URL", "postgresql+asyncpg://u:hunter2@db:5432/app?ssl=require")])
            .unwrap();
        let url = c.database_url.unwrap();
        assert_eq!(url.expose(), "postgresql://u:hunter2@db:5432/app?sslmode=require");
        assert_eq!(url.redacted(), "postgresql://u:***@db:5432/app?sslmode=require");
        assert!(!format!("{url:?}").contains("hunter2"));
        let c = load(Command::Migrate, &[("DATABASE_URL", "postgres://u@db/app")]).unwrap();
        assert_eq!(c.database_url.unwrap().expose(), "postgresql://u@db/app");
    }

    #[test]
    fn server_defaults_to_local_storage() {
        let c = load(Command::Serve, &[DB]).unwrap();
        assert_eq!(c.storage, Some(StorageConfig::Local { dir: ".videdit/storage".into() }));
    }

    #[test]
    fn s3_settings_with_tigris_aliases_and_no_secret_in_debug() {
        let c = load(
            Command::Worker,
            &[
                DB,
                ("TIGRIS_ENDPOINT", "https://fly.storage.tigris.dev"),
                ("TIGRIS_BUCKET", "videdit-prod"),
                ("TIGRIS_ACCESS_KEY_ID", "tid_abc"),
                ("TIGRIS_SECRET_ACCESS_KEY", "tsec_supersecret"),
            ],
        )
        .unwrap();
        let Some(StorageConfig::S3(s3)) = &c.storage else { panic!("{:?}", c.storage) };
        assert_eq!(s3.bucket, "videdit-prod");
        assert_eq!(s3.region, "auto");
        assert!(!s3.force_path_style);
        assert_eq!(s3.secret_access_key.expose(), "tsec_supersecret");
        assert!(!format!("{c:?}").contains("tsec_supersecret"));

        let c = load(
            Command::Worker,
            &[
                DB,
                ("STORAGE", "s3"),
                ("S3_ENDPOINT", "http://127.0.0.1:9000"),
                ("S3_BUCKET", "b-1"),
                ("S3_ACCESS_KEY_ID", "a"),
                ("S3_SECRET_ACCESS_KEY", "s"),
            ],
        )
        .unwrap();
        let Some(StorageConfig::S3(s3)) = c.storage else { panic!() };
        assert!(s3.force_path_style, "loopback endpoints need path style");
    }

    #[test]
    fn s3_reports_every_missing_value_at_once() {
        let errs = load(Command::Serve, &[DB, ("STORAGE", "s3"), ("S3_FORCE_PATH_STYLE", "maybe")]).unwrap_err();
        let vars: Vec<_> = errs.0.iter().map(|e| e.var).collect();
        assert_eq!(vars, ["S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_FORCE_PATH_STYLE"]);
        let text = errs.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        assert!(text.starts_with("invalid configuration: S3_BUCKET: "), "{text}");
        assert_eq!(text.matches("; ").count(), 3, "{text}");
        let e = single_error(Command::Serve, &[DB, ("STORAGE", "ftp")]);
        assert_eq!(e.var, "STORAGE");
        let e = single_error(
            Command::Serve,
            &[DB, ("S3_BUCKET", "Bad_Bucket"), ("S3_ACCESS_KEY_ID", "a"), ("S3_SECRET_ACCESS_KEY", "s")],
        );
        assert_eq!(e.var, "S3_BUCKET");
    }

    #[test]
    fn every_variable_looked_up_is_listed() {
        let asked = std::cell::RefCell::new(Vec::<String>::new());
        // Nothing set, so every alias is asked for; once with local storage, once with S3.
        for storage in [None, Some("s3")] {
            let record = |k: &str| {
                asked.borrow_mut().push(k.to_owned());
                if k == "STORAGE" { storage.map(str::to_owned) } else { None }
            };
            let _ = Config::load(Command::Serve, &record);
        }
        let asked = asked.into_inner();
        for name in &asked {
            assert!(VARIABLES.contains(&name.as_str()), "{name} is looked up but not in VARIABLES");
        }
        for name in VARIABLES {
            assert!(asked.iter().any(|a| a == name), "{name} is in VARIABLES but never looked up");
        }
    }

    #[test]
    fn short_signing_key_is_refused() {
        let e = single_error(Command::Process, &[("STORAGE_SIGNING_KEY", "short")]);
        assert_eq!(e.var, "STORAGE_SIGNING_KEY");
    }
}
