//! Grants: what a plugin may do beyond `log` and its own `kv`, parsed from
//! `[plugins.<id>] grants` and checked in one place ([`Grants::allows`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::config::PluginConfig;

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// `ci.<action>`: rerun-job, rerun-failed-jobs, clear-caches, cancel, annotate.
    Ci(CiAction),
    /// `exec:<program>`: run that program (bare name).
    Exec(String),
    /// `http:<host>`: HTTP(S) to that host.
    Http(String),
    /// `fs:<root>`: read files under the named root.
    Fs(String),
}

/// The `ci` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CiAction {
    /// `ci.rerun-job` (also covers `schedule-rerun`).
    RerunJob,
    /// `ci.rerun-failed-jobs`.
    RerunFailedJobs,
    /// `ci.clear-caches`.
    ClearCaches,
    /// `ci.cancel`.
    Cancel,
    /// `ci.annotate`.
    Annotate,
}

impl CiAction {
    /// The grant / function name.
    pub fn name(self) -> &'static str {
        match self {
            CiAction::RerunJob => "rerun-job",
            CiAction::RerunFailedJobs => "rerun-failed-jobs",
            CiAction::ClearCaches => "clear-caches",
            CiAction::Cancel => "cancel",
            CiAction::Annotate => "annotate",
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::Ci(a) => write!(f, "ci.{}", a.name()),
            Grant::Exec(p) => write!(f, "exec:{p}"),
            Grant::Http(h) => write!(f, "http:{h}"),
            Grant::Fs(r) => write!(f, "fs:{r}"),
        }
    }
}

impl Grant {
    /// Parses a grant string from guard.toml.
    pub fn parse(s: &str) -> Result<Grant, String> {
        let bad = || {
            format!(
                "unknown grant `{s}` (expected ci.<action>, exec:<program>, http:<host> or fs:<root>)"
            )
        };
        if let Some(action) = s.strip_prefix("ci.") {
            let a = match action {
                "rerun-job" => CiAction::RerunJob,
                "rerun-failed-jobs" => CiAction::RerunFailedJobs,
                "clear-caches" => CiAction::ClearCaches,
                "cancel" => CiAction::Cancel,
                "annotate" => CiAction::Annotate,
                _ => return Err(bad()),
            };
            return Ok(Grant::Ci(a));
        }
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        let valid = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(format!(
                "grant `{s}`: `{value}` must be a bare name (letters, digits, '-', '_', '.')"
            ));
        }
        match kind {
            "exec" => Ok(Grant::Exec(value.to_string())),
            "http" => Ok(Grant::Http(value.to_ascii_lowercase())),
            "fs" => Ok(Grant::Fs(value.to_string())),
            _ => Err(bad()),
        }
    }
}

/// The grants of one plugin.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    granted: Vec<Grant>,
    fs_roots: BTreeMap<String, PathBuf>,
    /// Per program: the argument lines allowed (anchored regexes).
    exec_args: BTreeMap<String, Vec<regex::Regex>>,
}

impl Grants {
    /// Nothing beyond the defaults.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// From a plugin's config section; grants that do not parse were
    /// already refused when the config was loaded, so they are skipped here.
    pub fn from_config(pc: &PluginConfig) -> Grants {
        let mut granted: Vec<Grant> = pc
            .grants
            .iter()
            .filter_map(|g| Grant::parse(g).ok())
            .collect();
        granted.sort();
        granted.dedup();
        // Patterns were validated with the config; anchoring makes each one
        // describe the whole argument line, not a substring of it.
        let exec_args = pc
            .exec_args
            .iter()
            .map(|(prog, pats)| {
                (
                    prog.clone(),
                    pats.iter()
                        .filter_map(|p| regex::Regex::new(&format!("^(?:{p})$")).ok())
                        .collect(),
                )
            })
            .collect();
        Grants {
            granted,
            fs_roots: pc.fs_roots.clone(),
            exec_args,
        }
    }

    /// Built from a list (tests, `guard exec` defaults).
    pub fn from_list(list: &[&str]) -> Result<Grants, String> {
        let granted = list
            .iter()
            .map(|g| Grant::parse(g))
            .collect::<Result<_, _>>()?;
        Ok(Grants {
            granted,
            fs_roots: BTreeMap::new(),
            exec_args: BTreeMap::new(),
        })
    }

    /// Adds an fs root (tests, `guard exec`).
    pub fn with_fs_root(mut self, name: &str, dir: PathBuf) -> Grants {
        self.fs_roots.insert(name.to_string(), dir);
        self
    }

    /// The single grant check.
    pub fn allows(&self, grant: &Grant) -> bool {
        self.granted.contains(grant)
    }

    /// Whether `args` are allowed for `program` (always, when it has no patterns).
    pub fn exec_args_allowed(&self, program: &str, args: &[String]) -> Result<(), String> {
        match self.exec_args.get(program) {
            None => Ok(()),
            Some(patterns) => {
                // Quoted as a shell would show them, so that one argument
                // holding a space can never pass for two (`["a b"]` is
                // `'a b'`, `["a", "b"]` is `a b`).
                let line = quote_args(args);
                if patterns.iter().any(|p| p.is_match(&line)) {
                    Ok(())
                } else {
                    let allowed = patterns
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(" | ");
                    Err(format!(
                        "arguments {line:?} for {program} match none of the allowed patterns ({allowed}) in exec_args"
                    ))
                }
            }
        }
    }

    /// Directory of fs root `name`, when configured.
    pub fn fs_root(&self, name: &str) -> Option<&PathBuf> {
        self.fs_roots.get(name)
    }

    /// Every grant, as strings.
    pub fn list(&self) -> Vec<String> {
        self.granted.iter().map(|g| g.to_string()).collect()
    }

    /// Whether any grant serves capability interface `iface` (`ci`, `exec`…);
    /// `log` and `kv` are always available.
    pub fn covers_interface(&self, iface: &str) -> bool {
        match iface {
            "log" | "kv" => true,
            "ci" => self.granted.iter().any(|g| matches!(g, Grant::Ci(_))),
            "exec" => self.granted.iter().any(|g| matches!(g, Grant::Exec(_))),
            "http" => self.granted.iter().any(|g| matches!(g, Grant::Http(_))),
            "fs" => self.granted.iter().any(|g| matches!(g, Grant::Fs(_))),
            _ => false,
        }
    }
}

/// Arguments joined into one line, each quoted POSIX-style when it holds
/// anything but plain word characters.
pub fn quote_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::quote_args;

    #[test]
    fn one_argument_with_a_space_never_passes_for_two() {
        let one = quote_args(&["hello abc".to_string()]);
        let two = quote_args(&["hello".to_string(), "abc".to_string()]);
        assert_ne!(one, two);
        assert_eq!(two, "hello abc");
        assert_eq!(one, "'hello abc'");
        assert_eq!(quote_args(&["it's".to_string()]), "'it'\\''s'");
    }

    use super::*;

    #[test]
    fn parse_and_check() {
        let g = Grants::from_list(&["ci.rerun-job", "exec:npm", "http:Status.NPMJS.org"]).unwrap();
        assert!(g.allows(&Grant::Ci(CiAction::RerunJob)));
        assert!(!g.allows(&Grant::Ci(CiAction::Cancel)));
        assert!(g.allows(&Grant::Exec("npm".into())));
        assert!(!g.allows(&Grant::Exec("sh".into())));
        assert!(g.allows(&Grant::Http("status.npmjs.org".into())));
        assert!(Grant::parse("exec:/bin/sh").is_err());
        assert!(Grant::parse("ci.everything").is_err());
        assert_eq!(
            Grant::parse("fs:workspace").unwrap().to_string(),
            "fs:workspace"
        );
    }
}
