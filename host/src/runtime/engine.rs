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

/// Builds the engine and starts its epoch ticker.
pub fn new_engine() -> Result<Engine, RuntimeError> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    let engine = Engine::new(&config).map_err(|e| RuntimeError::Setup(e.to_string()))?;
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
