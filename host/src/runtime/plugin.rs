//! A loaded plugin: its world, where it came from, its grants, what a
//! pack ships (rules, model), the `InstancePre` each call instantiates, and
//! the quarantine count of consecutive failed uses.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::RuntimeError;
use super::bindings::{detector::DetectorPluginPre, healer::HealerPluginPre, pack::PatternPackPre};
use super::cache::CacheOutcome;
use super::convert::PluginInfo;
use super::inspect::Inspection;
use super::state::PluginState;
use crate::caps::grants::Grants;
use crate::detect::classifier::Model;
use crate::model::Rule;

/// Consecutive failed calls after which a plugin is quarantined.
pub const QUARANTINE_AFTER: u32 = 3;

/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// Exports `detector`.
    Detector,
    /// Exports `healer`.
    Healer,
    /// Exports `pack`.
    Pack,
}

impl PluginKind {
    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Detector => "detector-plugin",
            PluginKind::Healer => "healer-plugin",
            PluginKind::Pack => "pattern-pack",
        }
    }
}

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum PluginSource {
    /// Built into the `guard` binary.
    Embedded,
    /// A file from `--plugins`.
    File(PathBuf),
}

impl PluginSource {
    pub(crate) fn origin(&self, name: &str) -> String {
        match self {
            PluginSource::Embedded => format!("embedded plugin {name}"),
            PluginSource::File(p) => p.display().to_string(),
        }
    }
}

pub(crate) enum Pre {
    Detector(DetectorPluginPre<PluginState>),
    Healer(HealerPluginPre<PluginState>),
    Pack(PatternPackPre<PluginState>),
}

/// A loaded plugin.
pub struct Plugin {
    /// Self-reported id, version and description.
    pub info: PluginInfo,
    /// Its world.
    pub kind: PluginKind,
    /// Where it came from.
    pub source: PluginSource,
    /// sha256 of the component file.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// What its type says.
    pub inspection: Inspection,
    /// Whether its code came from the compile cache.
    pub cache: CacheOutcome,
    /// Time to compile or load it.
    pub load_time: Duration,
    /// Its grants.
    pub grants: Arc<Grants>,
    /// Rules, for packs (as shipped; compiled by the scanner).
    pub rules: Vec<Rule>,
    /// The classifier model a pack ships in its `guard-model` section.
    pub model: ModelSlot,
    pub(crate) pre: Pre,
    pub(crate) failures: AtomicU32,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.info.id)
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish()
    }
}

impl Plugin {
    /// The plugin's id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Whether it failed too often to be called again.
    pub fn is_quarantined(&self) -> bool {
        self.failures.load(Ordering::Relaxed) >= QUARANTINE_AFTER
    }

    /// Consecutive failed calls so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn check_quarantine(&self) -> Result<(), RuntimeError> {
        let failures = self.failures.load(Ordering::Relaxed);
        if failures >= QUARANTINE_AFTER {
            return Err(RuntimeError::Quarantined {
                plugin: self.info.id.clone(),
                failures,
            });
        }
        Ok(())
    }

    pub(crate) fn record_outcome(&self, ok: bool) {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A pack's classifier model, parsed on a thread of its own: its JSON is a
/// few hundred KB (about 1.5 ms to parse, a tenth of a one-shot command's
/// start-up), and nothing needs it before the analyzer is built, so the
/// parse overlaps loading the other plugins and compiling the rules.
#[derive(Default)]
pub struct ModelSlot {
    parsed: OnceLock<Option<Arc<Model>>>,
    parsing: Mutex<Option<std::thread::JoinHandle<Option<Arc<Model>>>>>,
}

impl ModelSlot {
    /// A slot holding `model`.
    pub fn ready(model: Option<Arc<Model>>) -> ModelSlot {
        let slot = ModelSlot::default();
        let _ = slot.parsed.set(model);
        slot
    }

    /// Parses `json` in the background.
    pub fn parse(plugin: String, json: Vec<u8>) -> ModelSlot {
        let input = Arc::new((plugin, json));
        let theirs = Arc::clone(&input);
        let spawned = std::thread::Builder::new()
            .name("guard-model".into())
            .spawn(move || parse_model(&theirs.0, &theirs.1));
        match spawned {
            Ok(handle) => ModelSlot {
                parsed: OnceLock::new(),
                parsing: Mutex::new(Some(handle)),
            },
            // No thread to be had: parse here.
            Err(_) => ModelSlot::ready(parse_model(&input.0, &input.1)),
        }
    }

    /// The model, waiting for its parse if it is still under way.
    pub fn get(&self) -> Option<Arc<Model>> {
        self.parsed
            .get_or_init(|| {
                let handle = self.parsing.lock().ok().and_then(|mut h| h.take());
                handle.and_then(|h| h.join().ok().flatten())
            })
            .clone()
    }
}

/// A broken model costs the pack its model, not its rules: it is reported
/// and read as none.
fn parse_model(plugin: &str, json: &[u8]) -> Option<Arc<Model>> {
    match Model::from_json(json) {
        Ok(m) => Some(Arc::new(m)),
        Err(e) => {
            tracing::warn!(plugin = %plugin, "classifier model ignored: {e}");
            None
        }
    }
}
