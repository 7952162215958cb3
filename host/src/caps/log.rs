//! `guard:plugin/log`: a plugin's messages, attributed and rate limited.

use crate::runtime::bindings::log::{Host, Level};
use crate::runtime::state::PluginState;

/// Longest message kept, in bytes.
const MAX_MESSAGE: usize = 4096;
/// Messages accepted per plugin call; the rest are dropped (one notice).
const MAX_MESSAGES_PER_CALL: u32 = 200;

impl Host for PluginState {
    async fn enabled(&mut self, level: Level) -> wasmtime::Result<bool> {
        Ok(match level {
            Level::Trace => tracing::enabled!(tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(tracing::Level::INFO),
            Level::Warn => tracing::enabled!(tracing::Level::WARN),
            Level::Error => tracing::enabled!(tracing::Level::ERROR),
        })
    }

    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.logs_this_call = self.logs_this_call.saturating_add(1);
        if self.logs_this_call > MAX_MESSAGES_PER_CALL {
            if self.logs_this_call == MAX_MESSAGES_PER_CALL + 1 {
                tracing::warn!(plugin = %self.ctx.plugin, "further log messages in this call are dropped (more than {MAX_MESSAGES_PER_CALL})");
            }
            return Ok(());
        }
        let message = crate::runtime::truncate_text(message, MAX_MESSAGE);
        let plugin = self.ctx.plugin.as_str();
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}
