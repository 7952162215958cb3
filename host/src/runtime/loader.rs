//! Plugin discovery and loading: embedded standard plugins first, then every
//! `*.wasm` of `--plugins DIR`, a later plugin replacing an earlier one with
//! the same id. Each component is compiled (or fetched from the compile
//! cache), its world is found from its type ([`super::inspect`]), it passes
//! admission ([`super::admission`]: signature before any code runs, then
//! id, hash pin and grants), and an `InstancePre` is kept for cheap
//! per-call instantiation. The runtime also hands out call contexts and
//! records security events.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store};

use super::bindings::{detector::DetectorPluginPre, healer::HealerPluginPre, pack::PatternPackPre};
use super::cache::{CompileCache, sha256_hex};
use super::call::{first_line, guarded};
use super::convert::{self, PluginInfo};
use super::inspect::inspect;
use super::state::{CallContext, PluginState, new_store};
use super::{RuntimeError, bindings, engine};
use crate::caps::grants::Grants;
use crate::config::Config;
use crate::store::Store as Db;

pub use super::admission::default_grants;
pub use super::inspect::{Inspection, version_supported};
pub(crate) use super::plugin::Pre;
pub use super::plugin::{ModelSlot, Plugin, PluginKind, PluginSource, QUARANTINE_AFTER};

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
        Runtime::with_engine(config, db, cache_dir, true)
    }

    /// A runtime for one command (`guard detect`, `guard exec`, …): its
    /// instances are allocated on demand, since reserving and releasing
    /// the pool of slots that makes a daemon's thousands of instantiations
    /// cheap costs a one-shot command more than its few instantiations save.
    pub fn one_shot(
        config: Arc<Config>,
        db: Db,
        cache_dir: Option<PathBuf>,
    ) -> Result<Runtime, RuntimeError> {
        Runtime::with_engine(config, db, cache_dir, false)
    }

    fn with_engine(
        config: Arc<Config>,
        db: Db,
        cache_dir: Option<PathBuf>,
        pooled: bool,
    ) -> Result<Runtime, RuntimeError> {
        let engine = engine::new_engine(config.limits.memory_mib, pooled)?;
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

    /// Where compiled plugins (and rule plans) are kept, if anywhere.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache.dir()
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
        for (name, bytes, sha256) in crate::embedded::EMBEDDED {
            let added = self
                .prepare_hashed(bytes, PluginSource::Embedded, name, Some(sha256))
                .await
                .map(|plugin| self.register(plugin));
            if let Err(error) = added {
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
        self.prepare_hashed(bytes, source, name, None).await
    }

    /// [`Runtime::prepare`] with the bytes' sha256 when known (the embedded
    /// plugins', hashed at build time).
    async fn prepare_hashed(
        &self,
        bytes: &[u8],
        source: PluginSource,
        name: &str,
        sha256: Option<&str>,
    ) -> Result<Plugin, RuntimeError> {
        let origin = source.origin(name);
        let started = Instant::now();
        let sha256 = sha256.map_or_else(|| sha256_hex(bytes), str::to_string);
        let (component, cache) =
            self.cache
                .load(&self.engine, bytes, &sha256)
                .map_err(|e| RuntimeError::Compile {
                    origin: origin.clone(),
                    message: first_line(&e),
                })?;
        let load_time = started.elapsed();
        let inspection = inspect(&self.engine, &component, &origin)?;
        self.admit_code(inspection.kind, &source, name, bytes)?;
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
        let info = match self.cache.info(&sha256, &self.config.limits) {
            Some(info) => info,
            None => {
                // Until `info` answers, the plugin is known by its file name
                // and has no grants.
                let provisional = self.context_for(name, Arc::new(Grants::none()), None, false);
                let mut store = new_store(&self.engine, provisional);
                let info = self.call_info(&pre, &mut store, &origin).await?;
                self.cache.keep_info(&sha256, &self.config.limits, &info);
                info
            }
        };
        let grants = self.admit(&info, &source, &sha256, &origin)?;
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
            model: ModelSlot::default(),
            pre,
            failures: AtomicU32::new(0),
        };
        if plugin.kind == PluginKind::Pack {
            plugin.rules = match self.cache.rules(&plugin.sha256) {
                Some(rules) => rules,
                None => {
                    let rules = self.pack_rules(&plugin).await?;
                    self.cache.keep_rules(&plugin.sha256, &rules);
                    rules
                }
            };
            plugin.model = match crate::pack::model_section(bytes) {
                Ok(Some(json)) => ModelSlot::parse(plugin.info.id.clone(), json),
                Ok(None) => ModelSlot::default(),
                // A broken section costs the pack its model, not its rules.
                Err(e) => {
                    tracing::warn!(plugin = %plugin.info.id, "classifier model ignored: {e}");
                    ModelSlot::default()
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
        let info = match pre {
            Pre::Detector(p) => {
                let b = guarded(store, origin, "instantiate", timeout, async |s| {
                    p.instantiate_async(s).await
                })
                .await?;
                guarded(store, origin, "info", timeout, async |s| {
                    b.guard_plugin_detector().call_info(s).await
                })
                .await?
            }
            Pre::Healer(p) => {
                let b = guarded(store, origin, "instantiate", timeout, async |s| {
                    p.instantiate_async(s).await
                })
                .await?;
                guarded(store, origin, "info", timeout, async |s| {
                    b.guard_plugin_healer().call_info(s).await
                })
                .await?
            }
            Pre::Pack(p) => {
                let b = guarded(store, origin, "instantiate", timeout, async |s| {
                    p.instantiate_async(s).await
                })
                .await?;
                guarded(store, origin, "info", timeout, async |s| {
                    b.guard_plugin_pack().call_info(s).await
                })
                .await?
            }
        };
        Ok(convert::info_from_wit(info))
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
            passed_alone: Arc::default(),
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
        self.db.security(plugin, kind, subject, message);
    }
}
