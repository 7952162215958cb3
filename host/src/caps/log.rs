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
        let message = escape_controls(&message);
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

/// The message with control characters escaped (`\n`, `\r`, `\u{1b}`…):
/// a plugin's message is one line of guard's log, and can neither forge
/// another line nor drive the terminal.
fn escape_controls(message: &str) -> std::borrow::Cow<'_, str> {
    if !message.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn a_message_cannot_forge_a_log_line() {
        let forged = "ok\n2026-01-01T00:00:00Z ERROR guard: fake\r\u{1b}[2J";
        let escaped = escape_controls(forged);
        assert!(!escaped.contains('\n') && !escaped.contains('\r') && !escaped.contains('\u{1b}'));
        assert!(escaped.contains("\\n2026"));
        assert_eq!(escape_controls("plain ✓"), "plain ✓");
    }
}
