//! guard: a self-healing CI pipeline guard.
//!
//! guard reads a failed CI job's log, says in one line why it failed (with
//! the evidence lines), heals what a retry or a cache reset can heal, and
//! refuses to spend CI minutes on what no retry can fix.
//!
//! Detectors, healers and pattern packs are sandboxed WebAssembly components
//! speaking the `guard:plugin` WIT contract (see `wit/`). This crate is the
//! host: the runtime that loads them ([`runtime`]), the capabilities it grants
//! them ([`caps`]), the detection pipeline ([`detect`]), the database
//! ([`store`]), the configuration ([`config`]) and the command line ([`cli`]).

/// mimalloc rather than glibc's malloc: a daemon's many threads (tokio's
/// workers and blocking pool, sled's writers, wasmtime) each get a glibc
/// arena that keeps what it freed, so resident memory grew with the
/// backlog; mimalloc returns it, and allocates faster. Declared here, not
/// in `main.rs`, so the benches and tests measure the allocator that ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod backoff;
pub mod caps;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod heal;
pub mod intake;
pub mod learn;
pub mod metrics;
pub mod model;
pub mod pack;
pub mod platform;
pub mod runtime;
pub mod server;
pub mod status;
pub mod store;

/// The standard plugins, built from `plugins/` by `build.rs`.
pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}
