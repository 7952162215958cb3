//! Test guest: a pattern pack whose `rules` export never returns, and whose
//! rules would be hostile if it did (a catastrophic regex).

use guard_sdk::{Pack, PluginInfo, Rule};

struct HostilePack;

impl Pack for HostilePack {
    fn info() -> PluginInfo {
        guard_sdk::info("guest-hostile-pack", "0.1.0", "never returns its rules")
    }
    fn rules() -> Vec<Rule> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

guard_sdk::pack!(HostilePack);
