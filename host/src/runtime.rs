//! The WebAssembly plugin runtime: one wasmtime [`Engine`](wasmtime::Engine)
//! with epoch interruption, a compile cache on disk, plugin discovery and
//! world detection, an `InstancePre` per plugin, and a fresh, limited store
//! per call (or per scan, for a detector's `scan` resource).

mod admission;
pub mod bindings;
pub mod cache;
mod call;
mod convert;
pub mod detector;
pub mod engine;
pub mod healer;
pub mod inspect;
pub mod limits;
pub mod loader;
pub mod pack;
pub mod plugin;
pub mod state;

pub use loader::{Plugin, PluginKind, PluginSource, Runtime};

/// The WIT package version this host serves. Before 1.0 a component built
/// against the same minor and an older or equal patch loads (patches only
/// add host functions, and wasmtime's linker resolves `@0.1.0` imports to
/// the `@0.1.2` definitions); anything else is refused naming both versions.
/// `tests/wit-0.1.0/` keeps the released 0.1.0 contract for the test that
/// proves it.
pub const WIT_VERSION: &str = "0.1.2";

/// Errors from loading or calling plugins.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a valid component, or failed to compile.
    #[error("{origin}: not a loadable WebAssembly component: {message}")]
    Compile {
        /// File or embedded name.
        origin: String,
        /// wasmtime's message.
        message: String,
    },
    /// The component exports none of the guard worlds.
    #[error(
        "{origin}: exports none of guard's interfaces (detector, healer, pack); it exports: {exports}"
    )]
    UnknownWorld {
        /// File or embedded name.
        origin: String,
        /// What it exports.
        exports: String,
    },
    /// The component was built against a WIT version this host cannot serve.
    #[error(
        "{origin}: built against guard:plugin@{found}, but this guard serves guard:plugin@{supported}; rebuild the plugin against {supported} or upgrade guard"
    )]
    UnsupportedWit {
        /// File or embedded name.
        origin: String,
        /// The version the component uses.
        found: String,
        /// The version this host serves.
        supported: String,
    },
    /// The file's hash does not match the pin in guard.toml.
    #[error("{origin}: sha256 {actual} does not match the pinned {expected} in [plugins.{id}]")]
    HashMismatch {
        /// File.
        origin: String,
        /// Plugin id.
        id: String,
        /// Pinned.
        expected: String,
        /// Actual.
        actual: String,
    },
    /// Instantiation failed (missing imports, start trap).
    #[error("plugin {plugin}: cannot instantiate: {message}")]
    Instantiate {
        /// Plugin id or origin.
        plugin: String,
        /// Why.
        message: String,
    },
    /// A call was stopped by a limit or trapped.
    #[error("plugin {plugin}: {call} failed: {reason}")]
    Call {
        /// Plugin id.
        plugin: String,
        /// The export called, e.g. `scan.feed`.
        call: String,
        /// Why, for people.
        reason: limits::Failure,
    },
    /// The plugin failed too often and is not called any more.
    #[error("plugin {plugin} is quarantined after {failures} consecutive failures")]
    Quarantined {
        /// Plugin id.
        plugin: String,
        /// Failures that led to it.
        failures: u32,
    },
    /// A pattern pack's signature is missing or does not verify.
    #[error("{0} (pattern packs must be signed: [packs] require_signatures)")]
    Signature(String),
    /// Engine or linker set-up failed.
    #[error("runtime set-up failed: {0}")]
    Setup(String),
}

pub use convert::{PluginInfo, truncate as truncate_text};
