//! Plugin discovery and loading: embedded standard plugins first, then every
//! `*.wasm` of `--plugins DIR`, a later plugin replacing an earlier one with
//! the same id. Each component is compiled (or fetched from the compile
//! cache), its world is found from its exports, its WIT version checked, and
//! an `InstancePre` kept for cheap per-call instantiation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

use super::bindings::{detector::DetectorPluginPre, healer::HealerPluginPre, pack::PatternPackPre};
use super::cache::{CacheOutcome, CompileCache, sha256_hex};
use super::convert::{self, PluginInfo};
use super::limits::classify;
use super::state::{CallContext, PluginState, begin_call, new_store};
use super::{RuntimeError, WIT_VERSION, bindings, engine};
use crate::caps::grants::Grants;
use crate::config::Config;
use crate::model::Rule;
use crate::store::{SecurityEvent, Store as Db, now_ms};

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
    fn origin(&self, name: &str) -> String {
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

/// What a component is, read from its type alone (no instantiation).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    /// The world it implements.
    pub kind: PluginKind,
    /// The guard:plugin version it was built against.
    pub wit_version: String,
    /// Every export name.
    pub exports: Vec<String>,
    /// Every import name.
    pub imports: Vec<String>,
    /// The guard capability interfaces it imports (its request), e.g. `ci`.
    pub capabilities: Vec<String>,
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
    pub model: Option<Arc<crate::detect::classifier::Model>>,
    pub(crate) pre: Pre,
    failures: AtomicU32,
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

/// The runtime: engine, linker, compile cache and loaded plugins.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: CompileCache,
    config: Arc<Config>,
    db: Db,
    plugins: Vec<Arc<Plugin>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("plugins", &self.plugins)
            .finish()
    }
}

/// A plugin that could not be loaded, with the reason.
#[derive(Debug)]
pub struct LoadFailure {
    /// File or embedded name.
    pub origin: String,
    /// Why.
    pub error: RuntimeError,
}

impl Runtime {
    /// A runtime with no plugins. `cache_dir` holds compiled components
    /// (`None` disables the on-disk cache).
    pub fn new(
        config: Arc<Config>,
        db: Db,
        cache_dir: Option<PathBuf>,
    ) -> Result<Runtime, RuntimeError> {
        let engine = engine::new_engine()?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Setup(e.to_string()))?;
        bindings::detector::DetectorPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| RuntimeError::Setup(e.to_string()))?;
        let cache = CompileCache::new(&engine, cache_dir);
        Ok(Runtime {
            engine,
            linker,
            cache,
            config,
            db,
            plugins: Vec::new(),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Loaded plugins, in load order.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// Loaded plugins of one kind.
    pub fn plugins_of(&self, kind: PluginKind) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.iter().filter(move |p| p.kind == kind)
    }

    /// Loads the standard plugins built into the binary.
    pub async fn load_embedded(&mut self) -> Vec<LoadFailure> {
        let mut failures = Vec::new();
        for (name, bytes) in crate::embedded::EMBEDDED {
            if let Err(error) = self.add(bytes, PluginSource::Embedded, name).await {
                failures.push(LoadFailure {
                    origin: PluginSource::Embedded.origin(name),
                    error,
                });
            }
        }
        failures
    }

    /// Loads every `*.wasm` in `dir` (sorted by name). A plugin that fails
    /// to load is reported and skipped; the others still load.
    pub async fn load_dir(&mut self, dir: &Path) -> Result<Vec<LoadFailure>, RuntimeError> {
        let read = |source| RuntimeError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
            .collect();
        files.sort();
        let mut failures = Vec::new();
        for path in files {
            if let Err(error) = self.load_file(&path).await {
                failures.push(LoadFailure {
                    origin: path.display().to_string(),
                    error,
                });
            }
        }
        Ok(failures)
    }

    /// Loads one component file.
    pub async fn load_file(&mut self, path: &Path) -> Result<Arc<Plugin>, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let plugin = self
            .prepare(&bytes, PluginSource::File(path.to_path_buf()), &name)
            .await?;
        if plugin.kind == PluginKind::Pack && self.config.packs.require_signatures {
            let signer =
                crate::pack::verify(path, &self.config.packs.trusted_keys).map_err(|e| {
                    self.security(&plugin.info.id, "unsigned-pack", "pack", &e.to_string());
                    RuntimeError::Signature(e.to_string())
                })?;
            tracing::info!(pack = %plugin.info.id, "signature verified (key {signer})");
        }
        Ok(self.register(plugin))
    }

    /// Compiles, inspects and registers a component; replaces a loaded
    /// plugin with the same id.
    pub async fn add(
        &mut self,
        bytes: &[u8],
        source: PluginSource,
        name: &str,
    ) -> Result<Arc<Plugin>, RuntimeError> {
        let plugin = self.prepare(bytes, source, name).await?;
        Ok(self.register(plugin))
    }

    /// Registers a prepared plugin, replacing one with the same id.
    fn register(&mut self, plugin: Plugin) -> Arc<Plugin> {
        let plugin = Arc::new(plugin);
        match self
            .plugins
            .iter()
            .position(|p| p.info.id == plugin.info.id)
        {
            Some(i) => {
                tracing::info!(id = %plugin.info.id, "plugin from {:?} overrides {:?}", plugin.source, self.plugins[i].source);
                self.plugins[i] = plugin.clone();
            }
            None => self.plugins.push(plugin.clone()),
        }
        plugin
    }

    /// Compiles and inspects a component without registering it (used by
    /// `guard plugins check`).
    pub async fn prepare(
        &self,
        bytes: &[u8],
        source: PluginSource,
        name: &str,
    ) -> Result<Plugin, RuntimeError> {
        let origin = source.origin(name);
        let started = Instant::now();
        let sha256 = sha256_hex(bytes);
        let (component, cache) =
            self.cache
                .load(&self.engine, bytes, &sha256)
                .map_err(|e| RuntimeError::Compile {
                    origin: origin.clone(),
                    message: first_line(&e),
                })?;
        let load_time = started.elapsed();
        let inspection = inspect(&self.engine, &component, &origin)?;
        let instantiate_err = |e: wasmtime::Error| RuntimeError::Instantiate {
            plugin: origin.clone(),
            message: first_line(&e),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(instantiate_err)?;
        let pre = match inspection.kind {
            PluginKind::Detector => {
                Pre::Detector(DetectorPluginPre::new(instance_pre).map_err(instantiate_err)?)
            }
            PluginKind::Healer => {
                Pre::Healer(HealerPluginPre::new(instance_pre).map_err(instantiate_err)?)
            }
            PluginKind::Pack => {
                Pre::Pack(PatternPackPre::new(instance_pre).map_err(instantiate_err)?)
            }
        };
        // Until `info` answers, the plugin is known by its file name and has
        // no grants.
        let provisional = self.context_for(name, Arc::new(Grants::none()), None, false);
        let mut store = new_store(&self.engine, provisional);
        let info = self.call_info(&pre, &mut store, &origin).await?;
        if info.id.is_empty()
            || !info
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(RuntimeError::Instantiate {
                plugin: origin,
                message: format!(
                    "invalid plugin id {:?}: use lowercase letters, digits and '-'",
                    info.id
                ),
            });
        }
        let pc = self.config.plugin(&info.id);
        if let Some(expected) = &pc.sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            self.security(
                &info.id,
                "hash-mismatch",
                "sha256",
                &format!("{origin} has sha256 {sha256}, pinned {expected}"),
            );
            return Err(RuntimeError::HashMismatch {
                origin,
                id: info.id,
                expected: expected.clone(),
                actual: sha256,
            });
        }
        // The embedded standard healer may act on the job it heals (re-run,
        // clear its caches, annotate) unless guard.toml says otherwise;
        // programs, hosts and files stay denied until granted.
        let grants =
            if source == PluginSource::Embedded && !self.config.plugins.contains_key(&info.id) {
                Arc::new(Grants::from_list(default_grants(&info.id)).unwrap_or_default())
            } else {
                Arc::new(Grants::from_config(&pc))
            };
        let mut plugin = Plugin {
            info,
            kind: inspection.kind,
            source,
            sha256,
            size: bytes.len(),
            inspection,
            cache,
            load_time,
            grants,
            rules: Vec::new(),
            model: None,
            pre,
            failures: AtomicU32::new(0),
        };
        if plugin.kind == PluginKind::Pack {
            plugin.rules = self.pack_rules(&plugin).await?;
            // A broken model costs the pack its model, not its rules.
            plugin.model = match crate::pack::model_section(bytes) {
                Ok(Some(json)) => match crate::detect::classifier::Model::from_json(&json) {
                    Ok(m) => Some(Arc::new(m)),
                    Err(e) => {
                        tracing::warn!(plugin = %plugin.info.id, "classifier model ignored: {e}");
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(plugin = %plugin.info.id, "classifier model ignored: {e}");
                    None
                }
            };
        }
        Ok(plugin)
    }

    async fn call_info(
        &self,
        pre: &Pre,
        store: &mut Store<PluginState>,
        origin: &str,
    ) -> Result<PluginInfo, RuntimeError> {
        let timeout = Duration::from_millis(self.config.limits.call_timeout_ms);
        let ie = |e: wasmtime::Error| RuntimeError::Instantiate {
            plugin: origin.to_string(),
            message: first_line(&e),
        };
        begin_call(store);
        let result = match pre {
            Pre::Detector(p) => {
                let b = tokio::time::timeout(timeout, p.instantiate_async(&mut *store))
                    .await
                    .map_err(|_| self.timeout_err(origin, "instantiate"))?
                    .map_err(ie)?;
                tokio::time::timeout(timeout, b.guard_plugin_detector().call_info(&mut *store))
                    .await
            }
            Pre::Healer(p) => {
                let b = tokio::time::timeout(timeout, p.instantiate_async(&mut *store))
                    .await
                    .map_err(|_| self.timeout_err(origin, "instantiate"))?
                    .map_err(ie)?;
                tokio::time::timeout(timeout, b.guard_plugin_healer().call_info(&mut *store)).await
            }
            Pre::Pack(p) => {
                let b = tokio::time::timeout(timeout, p.instantiate_async(&mut *store))
                    .await
                    .map_err(|_| self.timeout_err(origin, "instantiate"))?
                    .map_err(ie)?;
                tokio::time::timeout(timeout, b.guard_plugin_pack().call_info(&mut *store)).await
            }
        };
        let info = finish_call(store, origin, "info", result)?;
        Ok(convert::info_from_wit(info))
    }

    fn timeout_err(&self, plugin: &str, call: &str) -> RuntimeError {
        RuntimeError::Call {
            plugin: plugin.to_string(),
            call: call.to_string(),
            reason: super::limits::Failure::Timeout {
                ms: self.config.limits.call_timeout_ms,
            },
        }
    }

    /// A call context for plugin `id`.
    pub fn context_for(
        &self,
        id: &str,
        grants: Arc<Grants>,
        job: Option<crate::model::Job>,
        dry_run: bool,
    ) -> Arc<CallContext> {
        Arc::new(CallContext {
            plugin: id.to_string(),
            grants,
            db: self.db.clone(),
            job,
            dry_run,
            limits: self.config.limits.clone(),
            workdir: None,
            backend: None,
            wrapped: None,
            rerun_refused: None,
            reruns_left: Arc::new(std::sync::atomic::AtomicU32::new(1)),
            test_reruns_left: Arc::new(std::sync::atomic::AtomicU32::new(
                crate::caps::exec::TEST_RERUNS_PER_HEAL,
            )),
        })
    }

    /// A call context for a loaded plugin.
    pub fn context(
        &self,
        plugin: &Plugin,
        job: Option<crate::model::Job>,
        dry_run: bool,
    ) -> Arc<CallContext> {
        self.context_for(&plugin.info.id, plugin.grants.clone(), job, dry_run)
    }

    pub(crate) fn new_store(&self, ctx: Arc<CallContext>) -> Store<PluginState> {
        new_store(&self.engine, ctx)
    }

    /// Records a security event (and logs it).
    pub fn security(&self, plugin: &str, kind: &str, subject: &str, message: &str) {
        tracing::warn!(plugin, kind, subject, "{message}");
        let event = SecurityEvent {
            at_ms: now_ms(),
            plugin: plugin.into(),
            kind: kind.into(),
            subject: subject.into(),
            message: message.into(),
        };
        if let Err(e) = self.db.record_security(&event) {
            tracing::error!("cannot record security event: {e}");
        }
    }

    /// Marks a call's outcome on `plugin` (quarantine bookkeeping) and
    /// records contained failures as security events. `ends_use` is true for
    /// the call that completes one use of the plugin (the last call of a
    /// scan, a heal, loading a pack's rules): only a whole successful use
    /// clears the failure count, so a plugin whose constructor works but
    /// whose `feed` always traps still ends up quarantined.
    pub(crate) fn outcome<T>(
        &self,
        plugin: &Plugin,
        result: Result<T, RuntimeError>,
        ends_use: bool,
    ) -> Result<T, RuntimeError> {
        match &result {
            Ok(_) if ends_use => plugin.record_outcome(true),
            Ok(_) => {}
            Err(RuntimeError::Quarantined { .. }) => {}
            Err(e) => {
                plugin.record_outcome(false);
                self.security(&plugin.info.id, "contained-failure", "call", &e.to_string());
                if plugin.consecutive_failures() == QUARANTINE_AFTER {
                    self.security(
                        &plugin.info.id,
                        "quarantined",
                        "plugin",
                        &format!("quarantined after {QUARANTINE_AFTER} consecutive failures"),
                    );
                }
            }
        }
        result
    }
}

/// Turns a call's raw result into guard's error, classifying limit hits.
pub(crate) fn finish_call<T>(
    store: &Store<PluginState>,
    plugin: &str,
    call: &str,
    result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
) -> Result<T, RuntimeError> {
    let data = store.data();
    let limits = &data.context().limits;
    crate::metrics::get().plugin_call(
        plugin,
        call,
        data.call_started.elapsed().as_secs_f64(),
        matches!(result, Ok(Ok(_))),
    );
    let reason = match result {
        Ok(Ok(v)) => return Ok(v),
        Ok(Err(e)) => classify(
            &e,
            &data.cpu,
            &data.limiter,
            limits.cpu_ms,
            limits.memory_mib,
        ),
        Err(_) => super::limits::Failure::Timeout {
            ms: limits.call_timeout_ms,
        },
    };
    for (name, pipe) in [("stdout", &data.stdout), ("stderr", &data.stderr)] {
        let text = pipe.contents();
        if !text.is_empty() {
            tracing::debug!(plugin, "plugin {name}: {}", text.trim_end());
        }
    }
    // A Rust (or other) panic prints its message to stderr before the trap:
    // that message is the clearest reason there is.
    let reason = match reason {
        super::limits::Failure::Trap(t) => {
            let stderr = data.stderr.contents();
            match stderr.lines().rev().find(|l| l.contains("panicked")) {
                Some(p) => super::limits::Failure::Trap(format!(
                    "{t} — {}",
                    crate::intake::clip(p.trim(), 300)
                )),
                None => super::limits::Failure::Trap(t),
            }
        }
        other => other,
    };
    Err(RuntimeError::Call {
        plugin: plugin.to_string(),
        call: call.to_string(),
        reason,
    })
}

fn first_line(e: &wasmtime::Error) -> String {
    let s = format!("{e:#}");
    s.lines().next().unwrap_or_default().to_string()
}

/// Reads a component's world, WIT version and imports from its type.
pub fn inspect(
    engine: &Engine,
    component: &Component,
    origin: &str,
) -> Result<Inspection, RuntimeError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let mut found = None;
    for name in &exports {
        let Some((iface, version)) = guard_interface(name) else {
            continue;
        };
        let kind = match iface {
            "detector" => PluginKind::Detector,
            "healer" => PluginKind::Healer,
            "pack" => PluginKind::Pack,
            _ => continue,
        };
        found = Some((kind, version.to_string()));
        break;
    }
    let Some((kind, wit_version)) = found else {
        return Err(RuntimeError::UnknownWorld {
            origin: origin.into(),
            exports: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
        });
    };
    if !version_supported(&wit_version) {
        return Err(RuntimeError::UnsupportedWit {
            origin: origin.into(),
            found: wit_version,
            supported: WIT_VERSION.into(),
        });
    }
    for name in &imports {
        if let Some((_, v)) = guard_interface(name)
            && !version_supported(v)
        {
            return Err(RuntimeError::UnsupportedWit {
                origin: origin.into(),
                found: v.to_string(),
                supported: WIT_VERSION.into(),
            });
        }
    }
    let mut capabilities: Vec<String> = imports
        .iter()
        .filter_map(|n| guard_interface(n).map(|(i, _)| i.to_string()))
        .filter(|i| i != "types")
        .collect();
    capabilities.sort();
    capabilities.dedup();
    Ok(Inspection {
        kind,
        wit_version,
        exports,
        imports,
        capabilities,
    })
}

/// Grants of embedded plugins that have no `[plugins.<id>]` section.
pub fn default_grants(id: &str) -> &'static [&'static str] {
    match id {
        "heal-std" => &[
            "ci.rerun-job",
            "ci.rerun-failed-jobs",
            "ci.clear-caches",
            "ci.annotate",
        ],
        _ => &[],
    }
}

/// `guard:plugin/kv@0.1.0` → `("kv", "0.1.0")`.
fn guard_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("guard:plugin/")?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

/// Whether this host serves guard:plugin at `version`: same major, and
/// before 1.0 the same minor; the component's version must not be newer.
pub fn version_supported(version: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let core = v.split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
        Some((it.next()??, it.next()??, it.next()??))
    };
    let (Some(have), Some(want)) = (parse(WIT_VERSION), parse(version)) else {
        return false;
    };
    want.0 == have.0 && (have.0 > 0 || want.1 == have.1) && (want.1, want.2) <= (have.1, have.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(
            version_supported("0.1.0"),
            "an older patch (fewer host functions) loads"
        );
        assert!(version_supported("0.1.1"));
        assert!(version_supported("0.1.2"));
        assert!(
            !version_supported("0.1.3"),
            "a newer patch may import what this host lacks"
        );
        assert!(!version_supported("0.2.0"));
        assert!(!version_supported("1.0.0"));
        assert!(!version_supported("0.1.99"));
        assert!(!version_supported(""));
    }

    #[test]
    fn interface_names() {
        assert_eq!(
            guard_interface("guard:plugin/kv@0.1.0"),
            Some(("kv", "0.1.0"))
        );
        assert_eq!(guard_interface("wasi:cli/environment@0.2.6"), None);
    }
}
