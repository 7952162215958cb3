//! The traits plugin authors implement and the macros that export them.
//!
//! The macros generate the component's export bindings in the plugin crate
//! (so only the world the plugin implements ends up in its component) and
//! adapt them to these traits.

use crate::{Category, Error, Finding, Job, PluginInfo, Rule};

/// Builds a [`PluginInfo`].
///
/// ```
/// let i = guard_sdk::info("my-plugin", "1.2.0", "What it does");
/// assert_eq!(i.id, "my-plugin");
/// ```
pub fn info(id: &str, version: &str, description: &str) -> PluginInfo {
    PluginInfo {
        id: id.to_string(),
        version: version.to_string(),
        description: description.to_string(),
    }
}

/// Iterates over the lines of a chunk passed to [`Detector::feed`], with
/// their 1-based line numbers in the original log.
///
/// ```
/// let v: Vec<_> = guard_sdk::lines("a\nb", 41).collect();
/// assert_eq!(v, [(41, "a"), (42, "b")]);
/// ```
pub fn lines(chunk: &str, first_line: u32) -> impl Iterator<Item = (u32, &str)> {
    chunk
        .split('\n')
        .enumerate()
        .map(move |(i, text)| (first_line.saturating_add(i as u32), text))
}

/// A detector: reads a log as a stream of chunks and reports findings.
///
/// One value is created per log ([`Detector::new`]), fed every chunk in
/// order, then asked for its findings once.
pub trait Detector: 'static {
    /// Who this detector is.
    fn info() -> PluginInfo;
    /// Starts scanning the log of `job`.
    fn new(job: Job) -> Self;
    /// The next chunk: whole lines joined by `\n`, the first being line
    /// `first_line` of the original log. Use [`lines`] to walk it.
    fn feed(&mut self, chunk: &str, first_line: u32);
    /// The log has ended; return the findings (possibly none).
    fn finish(&mut self) -> Vec<Finding>;
}

/// A strategy a [`Healer`] offers.
#[derive(Debug, Clone)]
pub struct Strategy {
    /// Name used in rule remedies, e.g. `retry-with-backoff`.
    pub name: String,
    /// Categories it is meant for.
    pub categories: Vec<Category>,
    /// True when it re-runs the job (guard's budgets and breakers apply).
    pub retries: bool,
    /// One sentence for people.
    pub description: String,
}

/// What a heal achieved (the WIT `healer.effect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Effect {
    /// The job was re-run, or a re-run is scheduled.
    Rerun,
    /// The failed tests passed when re-run in isolation: flaky.
    PassedInIsolation,
    /// The failed tests failed again in isolation: genuine.
    FailedInIsolation,
    /// Nothing was re-run; the failure was reported.
    #[default]
    Reported,
}

/// What a heal did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One line for people.
    pub summary: String,
    /// Each action taken.
    pub actions: Vec<String>,
    /// What it achieved.
    pub effect: Effect,
    /// Facts for the report, e.g. `("flaky-test", name)`.
    pub facts: Vec<(String, String)>,
}

/// A healer: strategies that act on a diagnosed failure through the
/// capability modules ([`crate::ci`], [`crate::exec`], …).
///
/// ```
/// use guard_sdk::{Category, Effect, Error, Finding, Healer, Job, PluginInfo, Report, Strategy};
///
/// struct Retry;
///
/// impl Healer for Retry {
///     fn info() -> PluginInfo {
///         guard_sdk::info("retry", "0.1.0", "Re-runs network failures")
///     }
///     fn strategies() -> Vec<Strategy> {
///         vec![Strategy { name: "retry".into(), categories: vec![Category::Network], retries: true, description: "Re-run".into() }]
///     }
///     fn heal(_strategy: &str, _job: &Job, finding: &Finding) -> Result<Report, Error> {
///         guard_sdk::ci::rerun_job(false)?;
///         Ok(Report { summary: format!("re-ran after {}", finding.failure_type), actions: vec![], effect: Effect::Rerun, facts: vec![] })
///     }
/// }
/// guard_sdk::healer!(Retry);
/// assert_eq!(Retry::strategies()[0].name, "retry");
/// ```
pub trait Healer: 'static {
    /// Who this healer is.
    fn info() -> PluginInfo;
    /// The strategies it offers.
    fn strategies() -> Vec<Strategy>;
    /// Applies `strategy` to `job`, whose failure is `finding`.
    fn heal(strategy: &str, job: &Job, finding: &Finding) -> Result<Report, Error>;
}

/// A pattern pack: rules for guard's native scanner.
///
/// ```
/// use guard_sdk::{Category, Pack, PluginInfo, Rule};
///
/// struct Registry;
///
/// impl Pack for Registry {
///     fn info() -> PluginInfo {
///         guard_sdk::info("registry", "0.1.0", "Our registry's failures")
///     }
///     fn rules() -> Vec<Rule> {
///         vec![Rule {
///             id: "registry.503".into(),
///             category: Category::Network,
///             failure_type: "registry-unavailable".into(),
///             pattern: r"registry\.internal .*503".into(),
///             unless: None,
///             confidence: 0.9,
///             remedies: vec!["retry-with-backoff".into()],
///             description: "The registry's gateway failed".into(),
///         }]
///     }
/// }
/// guard_sdk::pack!(Registry);
/// assert_eq!(Registry::rules().len(), 1);
/// ```
pub trait Pack: 'static {
    /// Who this pack is.
    fn info() -> PluginInfo;
    /// Every rule of the pack.
    fn rules() -> Vec<Rule>;
}

/// Exports a [`Detector`] implementation as this component's `detector`
/// (see the crate example). Call it once per plugin crate.
#[macro_export]
macro_rules! detector {
    ($ty:ty) => {
        // Natively, reference the implementation so it is not reported as
        // dead code (the exports below exist only in the component).
        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        pub fn __guard_plugin_entry_points() {
            {
                let _ = (
                    <$ty as $crate::Detector>::info,
                    <$ty as $crate::Detector>::new,
                    <$ty as $crate::Detector>::feed,
                    <$ty as $crate::Detector>::finish,
                );
            }
        }
        // Exports exist only in the component: a native build of a plugin
        // crate (unit tests, clippy) is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __guard_detector {
            #![allow(clippy::all, unused)]
            use super::*;
            $crate::__guard_generate_detector!();

            struct Component;
            struct Scan(::core::cell::RefCell<$ty>);

            impl exports::guard::plugin::detector::Guest for Component {
                type Scan = Scan;
                fn info() -> $crate::PluginInfo {
                    <$ty as $crate::Detector>::info()
                }
            }

            impl exports::guard::plugin::detector::GuestScan for Scan {
                fn new(job: $crate::Job) -> Self {
                    Scan(::core::cell::RefCell::new(<$ty as $crate::Detector>::new(
                        job,
                    )))
                }
                fn feed(&self, chunk: String, first_line: u32) {
                    $crate::Detector::feed(&mut *self.0.borrow_mut(), &chunk, first_line)
                }
                fn finish(&self) -> Vec<$crate::Finding> {
                    $crate::Detector::finish(&mut *self.0.borrow_mut())
                }
            }

            export!(Component);
        }
    };
}

/// Exports a [`Healer`] implementation as this component's `healer` (see
/// [`Healer`]). Call it once per plugin crate.
#[macro_export]
macro_rules! healer {
    ($ty:ty) => {
        // Natively, reference the implementation so it is not reported as
        // dead code (the exports below exist only in the component).
        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        pub fn __guard_plugin_entry_points() {
            {
                let _ = (
                    <$ty as $crate::Healer>::info,
                    <$ty as $crate::Healer>::strategies,
                    <$ty as $crate::Healer>::heal,
                );
            }
        }
        // Exports exist only in the component: a native build of a plugin
        // crate (unit tests, clippy) is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __guard_healer {
            #![allow(clippy::all, unused)]
            use super::*;
            $crate::__guard_generate_healer!();

            use exports::guard::plugin::healer as wit;

            struct Component;

            impl wit::Guest for Component {
                fn info() -> $crate::PluginInfo {
                    <$ty as $crate::Healer>::info()
                }
                fn strategies() -> Vec<wit::Strategy> {
                    <$ty as $crate::Healer>::strategies()
                        .into_iter()
                        .map(|s| wit::Strategy {
                            name: s.name,
                            categories: s.categories,
                            retries: s.retries,
                            description: s.description,
                        })
                        .collect()
                }
                fn heal(
                    strategy: String,
                    job: $crate::Job,
                    finding: $crate::Finding,
                ) -> Result<wit::Report, $crate::Error> {
                    <$ty as $crate::Healer>::heal(&strategy, &job, &finding).map(|r| wit::Report {
                        summary: r.summary,
                        actions: r.actions,
                        effect: match r.effect {
                            $crate::Effect::Rerun => wit::Effect::Rerun,
                            $crate::Effect::PassedInIsolation => wit::Effect::PassedInIsolation,
                            $crate::Effect::FailedInIsolation => wit::Effect::FailedInIsolation,
                            $crate::Effect::Reported => wit::Effect::Reported,
                        },
                        facts: r.facts,
                    })
                }
            }

            export!(Component);
        }
    };
}

/// Exports a [`Pack`] implementation as this component's `pack` (see
/// [`Pack`]). Call it once per plugin crate.
#[macro_export]
macro_rules! pack {
    ($ty:ty) => {
        // Natively, reference the implementation so it is not reported as
        // dead code (the exports below exist only in the component).
        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        pub fn __guard_plugin_entry_points() {
            {
                let _ = (<$ty as $crate::Pack>::info, <$ty as $crate::Pack>::rules);
            }
        }
        // Exports exist only in the component: a native build of a plugin
        // crate (unit tests, clippy) is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __guard_pack {
            #![allow(clippy::all, unused)]
            use super::*;
            $crate::__guard_generate_pack!();

            struct Component;

            impl exports::guard::plugin::pack::Guest for Component {
                fn info() -> $crate::PluginInfo {
                    <$ty as $crate::Pack>::info()
                }
                fn rules() -> Vec<$crate::Rule> {
                    <$ty as $crate::Pack>::rules()
                }
            }

            export!(Component);
        }
    };
}
