//! guard's standard pattern pack. The rules live in `rules/*.toml` (one file
//! per family of failures) so they can be read, reviewed and exported without
//! reading Rust; this crate only ships them as a `pattern-pack` component.

use guard_sdk::{Pack, PluginInfo, Rule};

/// Every rules file of the pack, in the order rules are listed.
const RULE_FILES: &[(&str, &str)] = &[
    ("network.toml", include_str!("../rules/network.toml")),
    ("dependency.toml", include_str!("../rules/dependency.toml")),
    ("build.toml", include_str!("../rules/build.toml")),
    ("test.toml", include_str!("../rules/test.toml")),
    ("timeout.toml", include_str!("../rules/timeout.toml")),
    ("resource.toml", include_str!("../rules/resource.toml")),
    ("permission.toml", include_str!("../rules/permission.toml")),
    ("other.toml", include_str!("../rules/other.toml")),
];

/// Only ever named as a type: `pack!` exports its `Pack` impl.
#[allow(dead_code)]
struct StdPack;

impl Pack for StdPack {
    fn info() -> PluginInfo {
        guard_sdk::info(
            "pack-std",
            env!("CARGO_PKG_VERSION"),
            "Standard failure signatures: package managers, compilers, test runners, CI platforms, network and resources",
        )
    }

    fn rules() -> Vec<Rule> {
        let mut all = Vec::new();
        for (name, text) in RULE_FILES {
            match guard_sdk::rules_from_toml(text) {
                Ok((_, rules)) => all.extend(rules),
                // A broken file must not take the others down; the host
                // reports the message.
                Err(e) => guard_sdk::log::error(&format!("pack-std: {name}: {e}")),
            }
        }
        all
    }
}

guard_sdk::pack!(StdPack);

#[cfg(test)]
mod tests {
    #[test]
    fn every_rules_file_parses() {
        for (name, text) in super::RULE_FILES {
            let (_, rules) =
                guard_sdk::rules_from_toml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!rules.is_empty(), "{name} has no rules");
        }
    }
}
