//! The plumbing of every plugin call, once: per-call accounting reset, the
//! wall-clock timeout, classifying a failure into a reason people can act
//! on ([`finish_call`]), and quarantine bookkeeping with security events
//! for contained failures ([`Runtime::outcome`]).

use std::time::Duration;

use wasmtime::Store;

use super::RuntimeError;
use super::limits::{Failure, classify};
use super::loader::Runtime;
use super::plugin::{Plugin, QUARANTINE_AFTER};
use super::state::{PluginState, begin_call};

/// One guarded call: resets the store's per-call accounting, runs `call`
/// under `timeout`, and turns its result into guard's error.
pub(crate) async fn guarded<T>(
    store: &mut Store<PluginState>,
    plugin: &str,
    name: &str,
    timeout: Duration,
    call: impl AsyncFnOnce(&mut Store<PluginState>) -> wasmtime::Result<T>,
) -> Result<T, RuntimeError> {
    begin_call(store);
    let result = tokio::time::timeout(timeout, call(&mut *store)).await;
    finish_call(store, plugin, name, result)
}

impl Runtime {
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
        Err(_) => Failure::Timeout {
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
        Failure::Trap(t) => {
            let stderr = data.stderr.contents();
            match stderr.lines().rev().find(|l| l.contains("panicked")) {
                Some(p) => Failure::Trap(format!("{t} — {}", crate::intake::clip(p.trim(), 300))),
                None => Failure::Trap(t),
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

pub(crate) fn first_line(e: &wasmtime::Error) -> String {
    let s = format!("{e:#}");
    s.lines().next().unwrap_or_default().to_string()
}
