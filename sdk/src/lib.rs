//! `guard-sdk`: write [guard](https://github.com/guard-ci/guard) plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`. Implement
//! one trait and call one macro:
//!
//! | kind | trait | macro |
//! |---|---|---|
//! | detector: finds failures in a log | [`Detector`] | [`detector!`] |
//! | healer: acts on a diagnosed failure | [`Healer`] | [`healer!`] |
//! | pattern pack: rules for guard's native scanner | [`Pack`] | [`pack!`] |
//!
//! ```
//! use guard_sdk::{Category, Detector, Evidence, Finding, Job, PluginInfo};
//!
//! struct Oom {
//!     hits: Vec<Evidence>,
//! }
//!
//! impl Detector for Oom {
//!     fn info() -> PluginInfo {
//!         guard_sdk::info("oom", "0.1.0", "Finds out-of-memory kills")
//!     }
//!     fn new(_job: Job) -> Self {
//!         Oom { hits: Vec::new() }
//!     }
//!     fn feed(&mut self, chunk: &str, first_line: u32) {
//!         for (line, text) in guard_sdk::lines(chunk, first_line) {
//!             if text.contains("Killed") {
//!                 self.hits.push(Evidence { line, text: text.into() });
//!             }
//!         }
//!     }
//!     fn finish(&mut self) -> Vec<Finding> {
//!         if self.hits.is_empty() {
//!             return Vec::new();
//!         }
//!         vec![Finding {
//!             rule: "oom.killed".into(),
//!             category: Category::Resource,
//!             failure_type: "oom-killed".into(),
//!             confidence: 0.8,
//!             evidence: std::mem::take(&mut self.hits),
//!             remedies: vec!["reduce-pressure".into()],
//!             facts: Vec::new(),
//!         }]
//!     }
//! }
//! guard_sdk::detector!(Oom);
//!
//! // Natively (unit tests) the detector is a plain type:
//! let mut d = Oom::new(Job {
//!     platform: guard_sdk::Platform::Local,
//!     repository: "r".into(), run_id: "1".into(), job_id: "1".into(), job_name: "build".into(),
//!     attempt: 1, commit: None, branch: None, url: None,
//! });
//! d.feed("ok\nKilled", 10);
//! assert_eq!(d.finish()[0].evidence[0].line, 11);
//! ```
//!
//! Capabilities (`kv`, `ci`, `exec`, `http`, `fs`) are plain functions in the
//! modules of the same names; each returns [`Error`] when guard refuses,
//! notably [`Error::Denied`] when the plugin has not been granted it.

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Generated bindings for the host side of the contract. Prefer the
/// re-exports at the crate root.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "host-capabilities",
        generate_unused_types: true,
    });
}

include!(concat!(env!("OUT_DIR"), "/generate.rs"));

mod plugin;
#[cfg(feature = "toml")]
mod rules;

pub use bindings::guard::plugin::types::{
    Category, Error, Evidence, Finding, Job, Platform, PluginInfo, Rule,
};
pub use plugin::{Detector, Effect, Healer, Pack, Report, Strategy, info, lines};
#[cfg(feature = "toml")]
pub use rules::{PackMeta, RuleEntry, RulesFile, rules_from_toml};

/// Persistent key-value storage private to this plugin (always granted).
///
/// ```no_run
/// let seen = guard_sdk::kv::get("seen")?.map(|v| v.len()).unwrap_or(0);
/// guard_sdk::kv::set("seen", &vec![0; seen + 1])?;
/// # Ok::<(), guard_sdk::Error>(())
/// ```
pub mod kv {
    pub use crate::bindings::guard::plugin::kv::{delete, get, list_keys, set};
}

/// Actions on the CI platform, scoped to the job being healed. Each needs
/// its grant (`ci.rerun-job`, …); without it the call returns
/// [`Error::Denied`](crate::Error::Denied) naming the grant.
///
/// ```no_run
/// match guard_sdk::ci::rerun_job(false) {
///     Ok(()) => {}
///     Err(guard_sdk::Error::Denied(why)) => guard_sdk::log::warn(&why),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), guard_sdk::Error>(())
/// ```
pub mod ci {
    pub use crate::bindings::guard::plugin::ci::{
        annotate, cancel, clear_caches, rerun_failed_jobs, rerun_job, rerun_job_with_env,
        schedule_rerun,
    };
}

/// Allow-listed programs on the machine guard runs on (grant `exec:<program>`).
///
/// ```no_run
/// let out = guard_sdk::exec::run("npm", &["cache".to_string(), "verify".to_string()])?;
/// if out.status != 0 {
///     guard_sdk::log::warn(&out.stderr);
/// }
/// # Ok::<(), guard_sdk::Error>(())
/// ```
///
/// Under `guard exec`, the user's own test command can be re-run narrowed
/// to the failed tests without any grant (guard:plugin 0.1.2):
///
/// ```no_run
/// if guard_sdk::exec::wrapped_command().is_some() {
///     let rerun = guard_sdk::exec::rerun_tests(&["tests/test_api.py::test_login".to_string()])?;
///     let flaky = rerun.output.status == 0;
///     # let _ = flaky;
/// }
/// # Ok::<(), guard_sdk::Error>(())
/// ```
pub mod exec {
    pub use crate::bindings::guard::plugin::exec::{
        Output, TestRerun, rerun_tests, run, wrapped_command,
    };
}

/// HTTP requests to allow-listed hosts (grant `http:<host>`).
///
/// ```no_run
/// let req = guard_sdk::http::Request { method: "GET".into(), url: "https://status.example.com/api".into(), headers: vec![], body: None };
/// let status = guard_sdk::http::send(&req)?.status;
/// # let _ = status;
/// # Ok::<(), guard_sdk::Error>(())
/// ```
pub mod http {
    pub use crate::bindings::guard::plugin::http::{Request, Response, send};
}

/// Read-only files under granted roots (grant `fs:<root>`).
///
/// ```no_run
/// let lockfile = guard_sdk::fs::read("workspace", "package-lock.json", 1 << 20)?;
/// # let _ = lockfile;
/// # Ok::<(), guard_sdk::Error>(())
/// ```
pub mod fs {
    pub use crate::bindings::guard::plugin::fs::{list_dir, read};
}

/// guard's log (always granted).
///
/// ```no_run
/// if guard_sdk::log::debug_enabled() {
///     guard_sdk::log::debug("expensive details");
/// }
/// ```
pub mod log {
    use crate::bindings::guard::plugin::log::{Level, log};

    /// Whether debug messages would be recorded (guard:plugin 0.1.1).
    pub fn debug_enabled() -> bool {
        crate::bindings::guard::plugin::log::enabled(Level::Debug)
    }

    /// Log at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    /// Log at info level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    /// Log at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    /// Log at error level.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

impl Category {
    /// The lowercase name used in guard's config and output.
    pub fn name(self) -> &'static str {
        match self {
            Category::Dependency => "dependency",
            Category::Test => "test",
            Category::Build => "build",
            Category::Timeout => "timeout",
            Category::Resource => "resource",
            Category::Network => "network",
            Category::Permission => "permission",
            Category::Other => "other",
        }
    }

    /// Parses a lowercase category name.
    pub fn parse(name: &str) -> Option<Category> {
        Some(match name {
            "dependency" => Category::Dependency,
            "test" => Category::Test,
            "build" => Category::Build,
            "timeout" => Category::Timeout,
            "resource" => Category::Resource,
            "network" => Category::Network,
            "permission" => Category::Permission,
            "other" => Category::Other,
            _ => return None,
        })
    }
}
