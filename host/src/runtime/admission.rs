//! Admission: every rule a component must pass to become a plugin, in one
//! place, on every path that loads one (`--plugins` files, embedded
//! plugins, bytes added by a caller). A pack from a file is verified
//! against its signature *before* any of its code runs, when
//! `[packs] require_signatures` is set; the id must be a grant key; a
//! pinned sha256 must match; grants come from guard.toml, or the built-in
//! defaults for embedded plugins without a section.

use std::sync::Arc;

use super::RuntimeError;
use super::convert::PluginInfo;
use super::loader::Runtime;
use super::plugin::{PluginKind, PluginSource};
use crate::caps::grants::Grants;

impl Runtime {
    /// Checks a pack's signature before it is instantiated. Embedded packs
    /// are part of the binary and need none; a file's `.sig` must verify
    /// the bytes being loaded (not the file read again later).
    pub(crate) fn admit_code(
        &self,
        kind: PluginKind,
        source: &PluginSource,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), RuntimeError> {
        if kind != PluginKind::Pack || !self.config().packs.require_signatures {
            return Ok(());
        }
        let PluginSource::File(path) = source else {
            return Ok(());
        };
        match crate::pack::verify_bytes(path, bytes, &self.config().packs.trusted_keys) {
            Ok(signer) => {
                tracing::info!(pack = %name, "signature verified (key {signer})");
                Ok(())
            }
            Err(e) => {
                self.security(name, "unsigned-pack", "pack", &e.to_string());
                Err(RuntimeError::Signature(e.to_string()))
            }
        }
    }

    /// Checks what a plugin says about itself against guard.toml and
    /// returns its grants.
    pub(crate) fn admit(
        &self,
        info: &PluginInfo,
        source: &PluginSource,
        sha256: &str,
        origin: &str,
    ) -> Result<Arc<Grants>, RuntimeError> {
        if info.id.is_empty()
            || !info
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(RuntimeError::Instantiate {
                plugin: origin.to_string(),
                message: format!(
                    "invalid plugin id {:?}: use lowercase letters, digits and '-'",
                    info.id
                ),
            });
        }
        let pc = self.config().plugin(&info.id);
        if let Some(expected) = &pc.sha256
            && !expected.eq_ignore_ascii_case(sha256)
        {
            self.security(
                &info.id,
                "hash-mismatch",
                "sha256",
                &format!("{origin} has sha256 {sha256}, pinned {expected}"),
            );
            return Err(RuntimeError::HashMismatch {
                origin: origin.to_string(),
                id: info.id.clone(),
                expected: expected.clone(),
                actual: sha256.to_string(),
            });
        }
        // The embedded standard healer may act on the job it heals (re-run,
        // clear its caches, annotate) unless guard.toml says otherwise;
        // programs, hosts and files stay denied until granted.
        Ok(
            if *source == PluginSource::Embedded && !self.config().plugins.contains_key(&info.id) {
                Arc::new(Grants::from_list(default_grants(&info.id)).unwrap_or_default())
            } else {
                Arc::new(Grants::from_config(&pc))
            },
        )
    }
}

/// Grants of embedded plugins that have no `[plugins.<id>]` section.
pub fn default_grants(id: &str) -> &'static [&'static str] {
    match id {
        "heal-std" => &[
            "ci.rerun-job",
            "ci.rerun-failed-jobs",
            "ci.clear-caches",
            "ci.annotate",
        ],
        _ => &[],
    }
}
