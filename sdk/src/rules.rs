//! Pattern packs whose rules are kept as a rules file (TOML), as
//! `plugins/pack-std` and the template behind `guard pack build` keep them:
//!
//! ```toml
//! [pack]
//! id = "my-pack"
//! version = "0.1.0"
//! description = "Failures of our private registry"
//!
//! [[rule]]
//! id = "registry.unavailable"
//! category = "network"
//! failure_type = "registry-unavailable"
//! pattern = 'registry\.example\.com.*(?:502|503)'
//! unless = 'retrying'            # optional
//! confidence = 0.9               # optional, default 0.8
//! remedies = ["retry-with-backoff"]
//! description = "Our registry's gateway is down"
//! ```
//!
//! The format itself (its fields, defaults and checks) is defined once, in
//! the `guard-rules` crate, which the host's `guard pack build` and `guard
//! patterns export/import` use too; this module only turns a parsed file
//! into the WIT types a pack returns.

pub use guard_rules::{PackMeta, RuleEntry, RulesFile};

use crate::{Category, PluginInfo, Rule};

/// Parses a rules file into the pack's info and rules.
///
/// ```
/// let (info, rules) = guard_sdk::rules_from_toml(
///     "[pack]\nid = \"p\"\nversion = \"0.1.0\"\n\n[[rule]]\nid = \"a\"\ncategory = \"network\"\nfailure_type = \"t\"\npattern = 'X'\n",
/// ).unwrap();
/// assert_eq!((info.id.as_str(), rules.len()), ("p", 1));
/// ```
///
/// Only the file's shape is checked here (unknown fields, types). The host
/// checks every rule a pack returns (ids, confidence, regexes) and refuses
/// the bad ones one by one, naming them; refusing them here would only
/// leave a log line.
///
/// A rule with an unknown category is kept with category `other` and the
/// problem noted in its description, so the host reports it instead of the
/// pack vanishing.
pub fn rules_from_toml(text: &str) -> Result<(PluginInfo, Vec<Rule>), String> {
    let file = RulesFile::from_toml(text).map_err(|e| e.to_string())?;
    let info = PluginInfo {
        id: file.pack.id,
        version: file.pack.version,
        description: file.pack.description,
    };
    let rules = file.rules.into_iter().map(rule_from_entry).collect();
    Ok((info, rules))
}

/// One entry as the WIT rule a pack returns.
fn rule_from_entry(r: RuleEntry) -> Rule {
    let (category, description) = match Category::parse(&r.category) {
        Some(c) => (c, r.description),
        None => (
            Category::Other,
            format!("{} (unknown category `{}`)", r.description, r.category),
        ),
    };
    Rule {
        id: r.id,
        category,
        failure_type: r.failure_type,
        pattern: r.pattern,
        unless: r.unless,
        confidence: r.confidence,
        remedies: r.remedies,
        description,
    }
}

#[cfg(test)]
mod tests {
    use crate::Category;

    #[test]
    fn the_format_and_the_wit_agree_on_the_categories() {
        for name in guard_rules::CATEGORIES {
            let c = Category::parse(name).unwrap_or_else(|| panic!("{name} is no WIT category"));
            assert_eq!(c.name(), name);
        }
    }

    #[test]
    fn an_unknown_category_files_the_rule_under_other() {
        let (_, rules) = super::rules_from_toml(
            "[pack]\nid = \"p\"\n\n[[rule]]\nid = \"a\"\ncategory = \"networking\"\nfailure_type = \"t\"\npattern = 'X'\ndescription = \"d\"\n",
        )
        .unwrap();
        assert_eq!(rules[0].category, Category::Other);
        assert_eq!(rules[0].description, "d (unknown category `networking`)");
        assert_eq!(rules[0].confidence, guard_rules::DEFAULT_CONFIDENCE);
    }
}
