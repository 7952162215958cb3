//! Calling pattern packs: `rules()` once at load time.

use std::time::Duration;

use super::call::guarded;
use super::convert;
use super::loader::{Plugin, Pre, Runtime};
use super::{RuntimeError, limits::Failure};
use crate::model::Rule;

/// Rules a pack may ship; more is a hostile or broken pack.
const MAX_RULES: usize = 20_000;

impl Runtime {
    /// Asks a pack for its rules (in a fresh store).
    pub async fn pack_rules(&self, plugin: &Plugin) -> Result<Vec<Rule>, RuntimeError> {
        let Pre::Pack(pre) = &plugin.pre else {
            return Ok(Vec::new());
        };
        plugin.check_quarantine()?;
        let id = plugin.info.id.clone();
        let mut store = self.new_store(self.context(plugin, None, false));
        let timeout = Duration::from_millis(self.config().limits.call_timeout_ms);
        let result = async {
            let instance = guarded(&mut store, &id, "instantiate", timeout, async |s| {
                pre.instantiate_async(s).await
            })
            .await?;
            let rules = guarded(&mut store, &id, "rules", timeout, async |s| {
                instance.guard_plugin_pack().call_rules(s).await
            })
            .await?;
            if rules.len() > MAX_RULES {
                return Err(RuntimeError::Call {
                    plugin: id.clone(),
                    call: "rules".into(),
                    reason: Failure::BadOutput(format!(
                        "{} rules (at most {MAX_RULES})",
                        rules.len()
                    )),
                });
            }
            Ok(rules.into_iter().map(convert::rule_from_wit).collect())
        }
        .await;
        self.outcome(plugin, result, true)
    }
}
