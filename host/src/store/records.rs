//! The store's own log records: security events and the audit of actions.

use serde::{Deserialize, Serialize};

use super::now_ms;

/// A security event: a denial or a contained plugin failure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityEvent {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The plugin concerned.
    pub plugin: String,
    /// What happened, e.g. `denied`, `trap`, `timeout`.
    pub kind: String,
    /// The host function or limit involved, e.g. `ci.rerun-job`.
    pub subject: String,
    /// A sentence for people.
    pub message: String,
}

impl SecurityEvent {
    /// An event happening now.
    pub fn new(plugin: &str, kind: &str, subject: &str, message: &str) -> SecurityEvent {
        SecurityEvent {
            at_ms: now_ms(),
            plugin: plugin.into(),
            kind: kind.into(),
            subject: subject.into(),
            message: message.into(),
        }
    }
}

/// An audit record: one action a plugin asked the host to take.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The plugin that asked.
    pub plugin: String,
    /// The host function, e.g. `ci.rerun-job`.
    pub action: String,
    /// Its target and arguments, for people.
    pub detail: String,
    /// `done`, `dry-run`, `denied` or `failed: …`.
    pub outcome: String,
}
