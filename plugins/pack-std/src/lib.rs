//! guard's standard pattern pack. The rules live in `rules/*.toml` (one file
//! per family of failures) so they can be read, reviewed and exported without
//! reading Rust; this crate only ships them as a `pattern-pack` component,
//! together with the classifier model (`model.json`, from `guard train`; see
//! `scripts/train-model.sh`) in the component's `guard-model` custom section,
//! which the host reads as data without running the pack.

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
    ("jvm.toml", include_str!("../rules/jvm.toml")),
    ("vcs.toml", include_str!("../rules/vcs.toml")),
    ("system.toml", include_str!("../rules/system.toml")),
    ("platform.toml", include_str!("../rules/platform.toml")),
    ("docs.toml", include_str!("../rules/docs.toml")),
    ("lang-main.toml", include_str!("../rules/lang-main.toml")),
    ("lang-beam.toml", include_str!("../rules/lang-beam.toml")),
    (
        "lang-haskell.toml",
        include_str!("../rules/lang-haskell.toml"),
    ),
    ("lang-r.toml", include_str!("../rules/lang-r.toml")),
    ("lang-lua.toml", include_str!("../rules/lang-lua.toml")),
    ("lang-perl.toml", include_str!("../rules/lang-perl.toml")),
    ("lang-php.toml", include_str!("../rules/lang-php.toml")),
    (
        "lang-dotnet.toml",
        include_str!("../rules/lang-dotnet.toml"),
    ),
    ("lang-apple.toml", include_str!("../rules/lang-apple.toml")),
    (
        "lang-jvm-other.toml",
        include_str!("../rules/lang-jvm-other.toml"),
    ),
    ("lang-misc.toml", include_str!("../rules/lang-misc.toml")),
];

/// The classifier model, as a custom section of the core module (kept by the
/// linker and by the component wrapper).
/// `link_section` counts as unsafe code because overriding a section can
/// break a program; a custom section of plain bytes that no code reads is
/// never loaded into memory, so nothing can break.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
#[unsafe(link_section = "guard-model")]
#[used]
static MODEL: [u8; include_bytes!("../model.json").len()] = *include_bytes!("../model.json");

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
