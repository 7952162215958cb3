//! The shared wasmtime engine: component model, epoch interruption driven
//! by a ticker thread, and a bounded wasm stack so deep recursion traps
//! instead of taking the host down.

use std::time::Duration;

use wasmtime::{Config, Engine};

use super::RuntimeError;

/// How often the epoch advances. CPU limits are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Wasm stack per call; recursion deeper than this traps ("call stack exhausted").
const MAX_WASM_STACK: usize = 1024 * 1024;

/// Instances the pooling allocator keeps ready. A daemon worker uses a
/// few at a time (a scan, a heal); past the pool an instantiation fails as
/// a contained error, so this is far above what workers × plugins need.
const POOL_INSTANCES: u32 = 512;

/// Builds the engine and starts its epoch ticker.
///
/// With `pooling`, instances come from wasmtime's pooling allocator:
/// memories, tables and instance state are reserved once and reused, so
/// instantiating a plugin for every scan and heal costs a few microseconds
/// instead of fresh mappings. Where the address space is too tight for the
/// pool's reservations (a low `ulimit -v`), guard falls back to allocating
/// on demand and says so. Without it (one-shot commands, which instantiate
/// a handful of times), instances are allocated on demand.
pub fn new_engine(memory_mib: u64, pooling: bool) -> Result<Engine, RuntimeError> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    let mut pooled = config.clone();
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 2)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 2)
        .total_stacks(POOL_INSTANCES)
        // A component's plugin module and its adapter each hold one.
        .max_memories_per_component(4)
        .max_tables_per_component(4)
        // No slot larger than a plugin may grow (`[limits] memory_mib`).
        .max_memory_size(usize::try_from(memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX))
        .table_keep_resident(64 << 10);
    // A freed slot is reset either way. With Linux's PAGEMAP_SCAN (6.7+)
    // wasmtime finds the pages the instance touched and rewrites only
    // those, with no `madvise` and no page faults for the next instance:
    // keeping 1 MiB resident took instantiate + scan from 25 to 12 µs.
    // Without the scan the kept part is memset whole on every release,
    // where 1 MiB cost 41 µs and 64 KiB paid (decommits had been 4% of the
    // daemon's time).
    if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(1 << 20);
    } else {
        pool.linear_memory_keep_resident(64 << 10);
    }
    pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    let engine = match Engine::new(if pooling { &pooled } else { &config }) {
        Ok(engine) => engine,
        Err(e) => {
            tracing::warn!("pooling instance allocator unavailable ({e:#}); allocating on demand");
            Engine::new(&config).map_err(|e| RuntimeError::Setup(e.to_string()))?
        }
    };
    start_ticker(&engine);
    Ok(engine)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the engine
/// lives; the thread holds only a weak reference so it ends with the engine.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("guard-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
    if let Err(e) = spawned {
        // Without a ticker no deadline ever fires; the outer wall-clock
        // timeout still bounds every call, so carry on but say so.
        tracing::error!(
            "cannot start the epoch ticker thread ({e}); only wall-clock timeouts will stop runaway plugins"
        );
    }
}
