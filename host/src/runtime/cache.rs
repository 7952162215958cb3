//! The compile cache: compiled components on disk, keyed by the sha256 of
//! the component and a hash of everything in the engine that affects code
//! generation, so unchanged plugins are never recompiled and a changed
//! engine never loads stale code.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded precompiled code from disk.
    Hit,
    /// Compiled (and stored, when a cache directory is set).
    Compiled,
}

/// The on-disk cache. `dir == None` disables it.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

/// A `Hasher` feeding SHA-256, to turn the engine's `impl Hash`
/// compatibility value into a stable file-name component.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        // Unused: the digest is taken from the inner state.
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The file of a plugin's `info` under `limits`.
fn info_name(sha: &str, limits: &crate::config::Limits) -> String {
    let limits = serde_json::to_vec(limits).unwrap_or_default();
    format!("{sha}-{}.info.json", &sha256_hex(&limits)[..16])
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CompileCache {
    /// A cache in `dir` (created on first write) for `engine`.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> CompileCache {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = hex::encode(&h.0.finalize()[..8]);
        CompileCache { dir, engine_key }
    }

    /// The rules a pack with these bytes (sha256 `sha`) answered before:
    /// a pack's `rules()` depends on nothing but its code, and asking costs
    /// an instantiation and a crossing of every rule (a tenth of a small
    /// log's `guard detect`). Unreadable entries count as absent.
    pub fn rules(&self, sha: &str) -> Option<Vec<crate::model::Rule>> {
        self.read_json(&format!("{sha}.rules.json"))
    }

    /// Keeps a pack's rules for [`CompileCache::rules`] (atomically; a
    /// failure only costs the next start the call).
    pub fn keep_rules(&self, sha: &str, rules: &[crate::model::Rule]) {
        self.keep_json(&format!("{sha}.rules.json"), rules);
    }

    /// What a plugin with these bytes answered to `info` before, under
    /// these limits: it depends on nothing else (the plugin has no grants
    /// while it answers; the limits decide whether it can be instantiated
    /// at all, so other limits ask again), and asking costs an
    /// instantiation, 0.1–0.3 ms of a small log's `guard detect` per plugin.
    pub fn info(
        &self,
        sha: &str,
        limits: &crate::config::Limits,
    ) -> Option<super::convert::PluginInfo> {
        self.read_json(&info_name(sha, limits))
    }

    /// Keeps a plugin's `info` for [`CompileCache::info`].
    pub fn keep_info(
        &self,
        sha: &str,
        limits: &crate::config::Limits,
        info: &super::convert::PluginInfo,
    ) {
        self.keep_json(&info_name(sha, limits), info);
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        let bytes = std::fs::read(self.dir.as_ref()?.join(name)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes `value` as `name` (atomically: a concurrent reader sees the
    /// old file or the new one; a failure only costs the next start).
    fn keep_json<T: serde::Serialize + ?Sized>(&self, name: &str, value: &T) {
        let Some(dir) = &self.dir else {
            return;
        };
        let path = dir.join(name);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec(value)?)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::debug!("keeping {}: {e}", path.display());
        }
    }

    /// The cache's directory, if it has one.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    fn path_for(&self, sha: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{sha}-{}.cwasm", self.engine_key)))
    }

    /// The compiled component for `bytes` (whose sha256 is `sha`).
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        if let Some(path) = self.path_for(sha)
            && path.exists()
        {
            match deserialize(engine, &path) {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "discarding unusable compile-cache entry: {e}");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = self.path_for(sha)
            && let Err(e) = store(&component, &path)
        {
            // A read-only or full disk costs start-up time, not correctness.
            tracing::warn!(path = %path.display(), "cannot write compile cache: {e}");
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize_file` trusts its input to be code that
    // wasmtime produced. Entries are only ever written by `store` below into
    // guard's own data directory, named by the sha256 of their source and the
    // engine's compatibility hash, and wasmtime additionally checks the
    // header against this engine's configuration before use.
    unsafe { Component::deserialize_file(engine, path) }
}

fn store(component: &Component, path: &Path) -> std::io::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache path has no parent"))?;
    std::fs::create_dir_all(dir)?;
    // Write then rename, so a crash never leaves a truncated entry behind.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
