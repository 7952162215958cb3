//! `[catch_up]` and the checks of what catch-up watches (`[github]
//! repositories`, `[gitlab] projects`, `[jenkins] jobs`). The watch lists
//! live in their platform's section, next to the URL and token that reach
//! them; what is done with them is `daemon/catch_up.rs`.

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};
use crate::platform::{PlatformError, github, gitlab, jenkins};

/// `[catch_up]`: at start-up and then every `interval_secs`, the daemon
/// asks each platform for the failed jobs of what it watches, because
/// platforms do not send again the webhooks nobody received while guard
/// was down.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatchUp {
    /// Seconds between passes (the first runs at start-up); 0 disables
    /// catch-up entirely.
    pub interval_secs: u64,
    /// How far back the first pass for an item looks, in hours, when
    /// nothing was seen of it before.
    pub lookback_hours: u64,
    /// Failed jobs queued per pass at most, so a huge backlog cannot
    /// flood the queue (the newest first; the passes after list the rest).
    pub max_jobs: usize,
}

impl Default for CatchUp {
    fn default() -> Self {
        CatchUp {
            interval_secs: 300,
            lookback_hours: 24,
            max_jobs: 500,
        }
    }
}

/// Checks the watch lists with the adapters' own rules, so a name that
/// could never be listed stops the start rather than failing every pass,
/// and `[catch_up]`'s bounds.
pub(super) fn validate(
    config: &Config,
    invalid: &dyn Fn(String) -> ConfigError,
) -> Result<(), ConfigError> {
    // The adapters' errors say "unexpected response from …"; only their
    // message fits a configuration error.
    let why = |e: PlatformError| match e {
        PlatformError::Protocol { message, .. } => message,
        other => other.to_string(),
    };
    for repo in config.github.iter().flat_map(|g| &g.repositories) {
        github::repo_path(repo)
            .map_err(|e| invalid(format!("[github] repositories: {}", why(e))))?;
    }
    for project in config.gitlab.iter().flat_map(|g| &g.projects) {
        gitlab::project_ref(project)
            .map_err(|e| invalid(format!("[gitlab] projects: {}", why(e))))?;
    }
    for job in config.jenkins.iter().flat_map(|j| &j.jobs) {
        jenkins::JobPath::from_config(job).map_err(|e| invalid(format!("[jenkins] jobs: {e}")))?;
    }
    let c = &config.catch_up;
    if c.max_jobs == 0 {
        return Err(invalid(
            "[catch_up] max_jobs must be at least 1 (interval_secs = 0 disables catch-up)".into(),
        ));
    }
    // Facts are forgotten after dedupe_days: a first pass looking further
    // back could find jobs handled long ago and diagnose them again.
    if c.lookback_hours > config.server.dedupe_days.saturating_mul(24) {
        return Err(invalid(format!(
            "[catch_up] lookback_hours = {} reaches past [server] dedupe_days = {} \
             (jobs handled before then could be diagnosed again)",
            c.lookback_hours, config.server.dedupe_days
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::TEMPLATE;

    fn env(v: &str) -> Option<String> {
        Some(format!("value-of-{v}"))
    }

    #[test]
    fn catch_up_defaults_and_watch_lists() {
        let c = Config::parse(TEMPLATE, Path::new("t.toml"), &env).unwrap();
        assert_eq!(
            (
                c.catch_up.interval_secs,
                c.catch_up.lookback_hours,
                c.catch_up.max_jobs
            ),
            (300, 24, 500)
        );
        assert!(c.github.unwrap().repositories.is_empty());
        let text = "[github]\nrepositories = [\"o/r\"]\n\
                    [gitlab]\nprojects = [\"group/sub/app\", \"42\"]\n\
                    [jenkins]\nurl = \"https://j\"\njobs = [\"folder/app web\", \"job/p/job/feature%252Fx\"]\n\
                    [catch_up]\ninterval_secs = 0\n";
        let c = Config::parse(text, Path::new("c.toml"), &env).unwrap();
        assert_eq!(c.gitlab.unwrap().projects, ["group/sub/app", "42"]);
        assert_eq!(c.jenkins.unwrap().jobs.len(), 2);
        assert_eq!(c.catch_up.interval_secs, 0);
        for bad in [
            "[github]\nrepositories = [\"o/r/x\"]\n",
            "[github]\nrepositories = [\"../r\"]\n",
            "[gitlab]\nprojects = [\"g/../p\"]\n",
            "[jenkins]\nurl = \"https://j\"\njobs = [\"a/..\"]\n",
            "[catch_up]\nmax_jobs = 0\n",
            "[catch_up]\nlookback_hours = 1000\n",
            "[catch_up]\nevery = 5\n",
        ] {
            let e = Config::parse(bad, Path::new("c.toml"), &env);
            assert!(e.is_err(), "{bad} was accepted");
        }
    }
}
