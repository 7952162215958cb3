//! The capability host functions, one file per WIT interface, and the one
//! place grants are checked ([`grants`]). Every function returns the WIT
//! `error` for anything a plugin can handle (denials above all); the outer
//! `wasmtime::Result` is reserved for traps.

pub mod ci;
pub mod exec;
pub mod fs;
pub mod grants;
pub mod http;
pub mod kv;
pub mod log;
pub mod tuning;

use crate::runtime::bindings::types::{self, Error as WitError};
use crate::runtime::state::PluginState;
use crate::store::{AuditRecord, now_ms};
use grants::Grant;

/// Host calls one plugin call may make; beyond it every host function
/// answers `limited` (a plugin hammering the host in a loop).
pub const MAX_HOST_CALLS_PER_CALL: u32 = 10_000;

impl types::Host for PluginState {}

impl PluginState {
    /// Checks `grant` for the calling plugin. A denial is returned as the
    /// WIT error naming the grant that would allow the call, logged, and
    /// recorded as a security event.
    pub(crate) fn require(&mut self, grant: &Grant) -> Result<(), WitError> {
        self.count_host_call()?;
        if self.ctx.grants.allows(grant) {
            return Ok(());
        }
        let plugin = self.ctx.plugin.clone();
        let message = format!(
            "plugin {plugin} is not granted `{grant}`; add it to [plugins.{plugin}] grants in guard.toml to allow this"
        );
        let subject = grant.to_string();
        Err(self.refuse("denied", &subject, (&subject, "call refused"), message))
    }

    /// Refuses a call: logs and records a security event of `kind` about
    /// `subject` ([`crate::store::Store::security`]) and an audit record of
    /// `(action, detail)`, and returns the WIT `denied` error a plugin sees.
    /// The one way a host function records a refusal.
    pub(crate) fn refuse(
        &mut self,
        kind: &str,
        subject: &str,
        (action, detail): (&str, &str),
        message: String,
    ) -> WitError {
        self.ctx
            .db
            .security(&self.ctx.plugin, kind, subject, &message);
        self.audit(action, detail, "denied");
        WitError::Denied(message)
    }

    /// Counts a host call against the per-call budget.
    pub(crate) fn count_host_call(&mut self) -> Result<(), WitError> {
        self.host_calls_this_call = self.host_calls_this_call.saturating_add(1);
        if self.host_calls_this_call > MAX_HOST_CALLS_PER_CALL {
            return Err(WitError::Limited(format!(
                "more than {MAX_HOST_CALLS_PER_CALL} host calls in one plugin call"
            )));
        }
        Ok(())
    }

    /// Writes an audit record for an action.
    pub(crate) fn audit(&self, action: &str, detail: &str, outcome: &str) {
        let record = AuditRecord {
            at_ms: now_ms(),
            plugin: self.ctx.plugin.clone(),
            action: action.into(),
            detail: detail.into(),
            outcome: outcome.into(),
        };
        if let Err(e) = self.ctx.db.record_audit(&record) {
            tracing::error!("cannot write audit record: {e}");
        }
    }
}
