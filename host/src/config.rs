//! guard.toml: platforms (and what catch-up watches on them), per-plugin
//! grants, healing budgets and limits.
//!
//! String values may reference environment variables as `${NAME}` so tokens
//! and secrets stay out of the file; a reference to an unset variable is an
//! error naming it (a silently empty token is worse than a clear stop).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod catch_up;
mod template;

pub use catch_up::CatchUp;
pub use template::TEMPLATE;

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// `${NAME}` names an unset variable.
    #[error("{path}: `{key}` uses ${{{var}}}, but the environment variable {var} is not set")]
    MissingEnv {
        /// The file.
        path: PathBuf,
        /// The key holding the reference.
        key: String,
        /// The variable.
        var: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration. Every section is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// GitHub Actions.
    pub github: Option<GitHub>,
    /// GitLab CI.
    pub gitlab: Option<GitLab>,
    /// Jenkins.
    pub jenkins: Option<Jenkins>,
    /// Per-plugin settings, keyed by plugin id.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Healing budgets.
    pub heal: Heal,
    /// Sandbox limits for every plugin call.
    pub limits: Limits,
    /// Pattern-pack signatures.
    pub packs: Packs,
    /// The daemon (`guard run`).
    pub server: Server,
    /// Looking for failed jobs the daemon missed while it was down.
    pub catch_up: CatchUp,
    /// Where guard keeps its state.
    pub store: StoreConfig,
}

/// `[store]`: embedded sled at `--data` (the default), or PostgreSQL,
/// which several replicas share.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user:password@host:5432/db`; absent: sled. The
    /// environment variable `GUARD_STORE_URL` overrides it.
    pub url: Option<String>,
    /// A certificate authority (PEM) to trust for the server's TLS
    /// certificate besides the public ones; setting it turns TLS on (as
    /// `sslmode=require` in the URL does).
    pub ca_file: Option<PathBuf>,
}

impl StoreConfig {
    /// The environment variable that overrides `[store] url`.
    pub const ENV: &'static str = "GUARD_STORE_URL";

    /// The PostgreSQL URL in effect: `GUARD_STORE_URL` when set and not
    /// empty, else `[store] url`.
    pub fn url(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        env(Self::ENV)
            .filter(|u| !u.trim().is_empty())
            .or_else(|| self.url.clone().filter(|u| !u.trim().is_empty()))
    }
}

/// `[server]`: the daemon's listener, intake and workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address to listen on.
    pub listen: String,
    /// Events processed at once.
    pub workers: usize,
    /// Largest request body accepted, in bytes (webhooks and /api/detect).
    pub max_body_bytes: usize,
    /// Requests per minute per (endpoint, client address); bursts up to a tenth of it.
    pub rate_limit_per_minute: u32,
    /// Time allowed for a whole request (headers and body), in seconds.
    pub request_timeout_secs: u64,
    /// Attempts at processing an event before it goes to the dead letters.
    pub max_event_attempts: u32,
    /// Largest job log fetched from a platform, in bytes (the rest is cut).
    pub max_log_bytes: u64,
    /// When set, `/api/*` requires `Authorization: Bearer <token>`.
    pub api_token: Option<String>,
    /// Days a webhook delivery id is remembered for de-duplication.
    pub dedupe_days: u64,
    /// Days job records (what guard concluded and did) are kept; heals
    /// whose verdict never came and the retry budgets of jobs on old
    /// commits are forgotten after as long.
    pub retention_days: u64,
    /// Days the audit trail and the security events are kept.
    pub audit_days: u64,
    /// Seconds a worker's claim on an event lasts unless renewed (it is
    /// renewed while the worker lives); then another replica may take it.
    pub lease_secs: u64,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "127.0.0.1:8700".into(),
            workers: 16,
            max_body_bytes: 10 * 1024 * 1024,
            rate_limit_per_minute: 1200,
            request_timeout_secs: 30,
            max_event_attempts: 5,
            max_log_bytes: 256 * 1024 * 1024,
            api_token: None,
            dedupe_days: 7,
            retention_days: 30,
            audit_days: 365,
            lease_secs: 30,
        }
    }
}

/// `[packs]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Packs {
    /// Refuse pattern packs from `--plugins` without a valid `.sig` by a trusted key.
    pub require_signatures: bool,
    /// Ed25519 public keys (hex) whose pack signatures are trusted.
    pub trusted_keys: Vec<String>,
}

/// `[github]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHub {
    /// API base URL (GitHub Enterprise: `https://HOST/api/v3`).
    #[serde(default = "default_github_api")]
    pub api_url: String,
    /// Token used for the REST API.
    pub token: Option<String>,
    /// Secret for `X-Hub-Signature-256`.
    pub webhook_secret: Option<String>,
    /// How `ci.annotate` reaches people: `commit-comment` (works with a
    /// personal access token) or `check-run` (needs a GitHub App token).
    #[serde(default)]
    pub annotate: GitHubAnnotate,
    /// Repositories (`owner/repo`) whose failed jobs catch-up looks for:
    /// webhooks sent while the daemon was down are not sent again.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// guard as a GitHub App: catch-up then also asks GitHub to redeliver
    /// the App's webhook deliveries guard missed.
    #[serde(default)]
    pub app: Option<GitHubApp>,
}

/// `[github.app]`: the App guard's webhooks come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubApp {
    /// The App's id (its settings page, "App ID").
    pub id: u64,
    /// Its private key (PEM), e.g. `"${GITHUB_APP_KEY}"`; or
    pub private_key: Option<String>,
    /// a file holding it (a mounted Secret).
    pub private_key_file: Option<PathBuf>,
}

impl GitHubApp {
    /// The private key's PEM text, from whichever of the two is set.
    pub fn private_key_pem(&self) -> Result<String, String> {
        match (&self.private_key, &self.private_key_file) {
            (Some(k), None) => Ok(k.clone()),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("[github.app] private_key_file {}: {e}", path.display())),
            _ => Err("[github.app] needs exactly one of private_key and private_key_file".into()),
        }
    }
}

/// Where GitHub annotations go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GitHubAnnotate {
    /// A comment on the job's commit.
    #[default]
    CommitComment,
    /// A completed check run on the job's commit, the diagnosis as its summary.
    CheckRun,
}

fn default_github_api() -> String {
    "https://api.github.com".into()
}

/// `[gitlab]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitLab {
    /// Instance URL.
    #[serde(default = "default_gitlab_url")]
    pub url: String,
    /// Token used for the REST API.
    pub token: Option<String>,
    /// Value expected in `X-Gitlab-Token`.
    pub webhook_secret: Option<String>,
    /// Projects (`group/project` path or numeric id) whose failed jobs
    /// catch-up looks for.
    #[serde(default)]
    pub projects: Vec<String>,
}

fn default_gitlab_url() -> String {
    "https://gitlab.com".into()
}

/// `[jenkins]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jenkins {
    /// Jenkins URL.
    pub url: String,
    /// User for API-token basic auth.
    pub user: Option<String>,
    /// API token.
    pub token: Option<String>,
    /// Shared token expected on webhook calls.
    pub webhook_secret: Option<String>,
    /// Jobs whose failed builds catch-up looks for: full names
    /// (`folder/job`) or URL paths as Jenkins spells them
    /// (`job/folder/job/job%20name`).
    #[serde(default)]
    pub jobs: Vec<String>,
}

/// `[plugins.<id>]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    /// Capabilities granted beyond the defaults (`log`, own `kv`), e.g.
    /// `ci.rerun-job`, `exec:npm`, `http:status.example.com`, `fs:workspace`.
    pub grants: Vec<String>,
    /// When set, the plugin file must have this sha256 or it is refused.
    pub sha256: Option<String>,
    /// Roots for the `fs` capability: name → directory.
    pub fs_roots: BTreeMap<String, PathBuf>,
    /// Argument patterns per granted program: when a program has an entry,
    /// its arguments (joined by spaces) must fully match one of the regexes.
    pub exec_args: BTreeMap<String, Vec<String>>,
    /// Set to false to skip the plugin entirely.
    pub enabled: Option<bool>,
}

/// `[heal]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Heal {
    /// Heals per job per commit.
    pub max_retries_per_job: u32,
    /// Heals per repository per hour.
    pub max_retries_per_repo_hour: u32,
    /// Base of the exponential backoff between re-runs, in seconds.
    pub backoff_base_secs: u64,
    /// Never heal a job past this attempt number.
    pub max_attempt: u32,
}

impl Default for Heal {
    fn default() -> Self {
        Heal {
            max_retries_per_job: 2,
            max_retries_per_repo_hour: 20,
            backoff_base_secs: 30,
            max_attempt: 5,
        }
    }
}

/// Hard upper bound on `max_retries_per_job`, whatever the config says:
/// retry loops are the failure mode users of auto-retry tools fear most.
pub const HARD_MAX_RETRIES_PER_JOB: u32 = 5;

/// `[limits]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory per plugin instance, in MiB.
    pub memory_mib: u64,
    /// CPU time per plugin call, in milliseconds (epoch-based).
    pub cpu_ms: u64,
    /// Wall-clock time per plugin call, in milliseconds, host calls included.
    pub call_timeout_ms: u64,
    /// Wall-clock time a detector plugin may spend on one log in all
    /// (every `feed` and `finish`); past it its answer is dropped.
    pub scan_deadline_ms: u64,
    /// Wall-clock time one heal may take in all (instantiate and `heal`).
    pub heal_deadline_ms: u64,
    /// Wall-clock cap on one narrowed re-run of the user's own tests
    /// (`exec.rerun-tests` under `guard exec`); a heal that makes one gets
    /// this much more time.
    pub test_rerun_ms: u64,
    /// Findings kept per detector per log.
    pub max_findings: usize,
    /// Bytes kept per log line (longer lines are cut).
    pub max_line_bytes: usize,
    /// Bytes per chunk streamed to detector plugins.
    pub chunk_bytes: usize,
    /// Bytes of a plugin's stdout/stderr kept for its log.
    pub plugin_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 64,
            cpu_ms: 2_000,
            call_timeout_ms: 10_000,
            scan_deadline_ms: 30_000,
            heal_deadline_ms: 60_000,
            test_rerun_ms: 600_000,
            max_findings: 200,
            max_line_bytes: 8 * 1024,
            chunk_bytes: 256 * 1024,
            plugin_output_bytes: 64 * 1024,
        }
    }
}

impl Config {
    /// Loads `path`, interpolating `${ENV}` references.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, &|v| std::env::var(v).ok())
    }

    /// Parses configuration text; `env` resolves `${NAME}` references.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let mut value: toml::Value = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        interpolate(&mut value, "", path, env)?;
        let config: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.heal.max_retries_per_job > HARD_MAX_RETRIES_PER_JOB {
            return Err(invalid(format!(
                "[heal] max_retries_per_job = {} exceeds the hard cap of {HARD_MAX_RETRIES_PER_JOB}",
                self.heal.max_retries_per_job
            )));
        }
        let l = &self.limits;
        if l.memory_mib == 0
            || l.cpu_ms == 0
            || l.call_timeout_ms == 0
            || l.scan_deadline_ms == 0
            || l.heal_deadline_ms == 0
            || l.test_rerun_ms == 0
            || l.chunk_bytes < 1024
            || l.max_line_bytes < 80
        {
            return Err(invalid(
                "[limits] values must be positive (chunk_bytes ≥ 1024, max_line_bytes ≥ 80)".into(),
            ));
        }
        let srv = &self.server;
        if srv.workers == 0 || srv.workers > 256 {
            return Err(invalid("[server] workers must be between 1 and 256".into()));
        }
        if srv.max_body_bytes < 1024
            || srv.rate_limit_per_minute == 0
            || srv.max_event_attempts == 0
        {
            return Err(invalid(
                "[server] max_body_bytes ≥ 1024, rate_limit_per_minute and max_event_attempts ≥ 1"
                    .into(),
            ));
        }
        if srv.lease_secs < 2 || srv.lease_secs > 86_400 {
            return Err(invalid(
                "[server] lease_secs must be between 2 and 86400".into(),
            ));
        }
        if let Some(url) = &self.store.url
            && !url.trim().is_empty()
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.contains('='))
        {
            return Err(invalid(
                "[store] url must be a postgres:// URL (or a key=value connection string)".into(),
            ));
        }
        if srv.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(format!(
                "[server] listen = {:?} is not an address like 127.0.0.1:8700",
                srv.listen
            )));
        }
        for (section, url) in [
            ("github", self.github.as_ref().map(|g| &g.api_url)),
            ("gitlab", self.gitlab.as_ref().map(|g| &g.url)),
            ("jenkins", self.jenkins.as_ref().map(|j| &j.url)),
        ] {
            if let Some(u) = url
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                return Err(invalid(format!(
                    "[{section}] URL {u:?} must start with https:// or http://"
                )));
            }
        }
        catch_up::validate(self, &invalid)?;
        for (id, p) in &self.plugins {
            for g in &p.grants {
                crate::caps::grants::Grant::parse(g)
                    .map_err(|e| invalid(format!("[plugins.{id}] grants: {e}")))?;
            }
            for (program, patterns) in &p.exec_args {
                for pat in patterns {
                    regex::Regex::new(pat)
                        .map_err(|e| invalid(format!("[plugins.{id}] exec_args.{program}: {e}")))?;
                }
            }
            if let Some(h) = &p.sha256
                && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(invalid(format!(
                    "[plugins.{id}] sha256 must be 64 hex digits"
                )));
            }
        }
        Ok(())
    }

    /// The settings of plugin `id` (defaults when it has none).
    pub fn plugin(&self, id: &str) -> PluginConfig {
        self.plugins.get(id).cloned().unwrap_or_default()
    }
}

fn interpolate(
    value: &mut toml::Value,
    key: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) if s.contains("${") => {
            *s = expand(s, &|var| {
                env(var).ok_or_else(|| ConfigError::MissingEnv {
                    path: path.to_path_buf(),
                    key: key.to_string(),
                    var: var.to_string(),
                })
            })?;
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                interpolate(v, &format!("{key}[{i}]"), path, env)?;
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let sub = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                interpolate(v, &sub, path, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands `${NAME}` references; `$${` is a literal `${`.
fn expand(
    s: &str,
    lookup: &dyn Fn(&str) -> Result<String, ConfigError>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&lookup(&after[..end])?);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Option<String> {
        match v {
            "GITHUB_TOKEN" => Some("ghs_x".into()),
            "GUARD_GITHUB_WEBHOOK_SECRET"
            | "GITLAB_TOKEN"
            | "GUARD_GITLAB_WEBHOOK_SECRET"
            | "JENKINS_TOKEN"
            | "GUARD_JENKINS_WEBHOOK_SECRET" => Some("s".into()),
            _ => None,
        }
    }

    #[test]
    fn template_parses_to_defaults() {
        let c = Config::parse(TEMPLATE, Path::new("t.toml"), &env).unwrap();
        assert_eq!(c.github.unwrap().token.as_deref(), Some("ghs_x"));
        assert_eq!(c.heal.max_retries_per_job, 2);
        assert_eq!(c.limits.memory_mib, Limits::default().memory_mib);
    }

    #[test]
    fn missing_env_names_the_variable_and_key() {
        let e = Config::parse("[github]\ntoken = \"${NOPE}\"\n", Path::new("g.toml"), &env)
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("NOPE") && msg.contains("github.token"),
            "{msg}"
        );
    }

    #[test]
    fn literal_dollar_brace_and_unknown_keys() {
        let c = Config::parse("[github]\ntoken = \"a$${b}\"\n", Path::new("g.toml"), &env).unwrap();
        assert_eq!(c.github.unwrap().token.as_deref(), Some("a${b}"));
        let e = Config::parse("[heal]\nretries = 3\n", Path::new("g.toml"), &env).unwrap_err();
        assert!(e.to_string().contains("retries"), "{e}");
    }

    #[test]
    fn hard_cap_and_bad_grants_are_refused() {
        assert!(Config::parse("[heal]\nmax_retries_per_job = 50\n", Path::new("g"), &env).is_err());
        let e = Config::parse(
            "[plugins.x]\ngrants = [\"root-shell\"]\n",
            Path::new("g"),
            &env,
        )
        .unwrap_err();
        assert!(e.to_string().contains("root-shell"), "{e}");
    }
}
