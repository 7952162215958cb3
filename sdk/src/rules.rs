//! Rules kept as TOML, the format shared by pattern packs, `guard pack build`
//! and `guard patterns export`:
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
//! confidence = 0.9
//! remedies = ["retry-with-backoff"]
//! description = "Our registry's gateway is down"
//! ```

use serde::Deserialize;

use crate::{Category, PluginInfo, Rule};

/// A parsed rules file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// The `[pack]` table.
    pub pack: PackMeta,
    /// The `[[rule]]` entries.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleEntry>,
}

/// The `[pack]` table of a rules file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackMeta {
    /// Pack id.
    pub id: String,
    /// Pack version.
    pub version: String,
    /// One sentence.
    #[serde(default)]
    pub description: String,
}

/// One `[[rule]]` entry of a rules file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    id: String,
    category: String,
    failure_type: String,
    pattern: String,
    #[serde(default)]
    unless: Option<String>,
    #[serde(default = "default_confidence")]
    confidence: f32,
    #[serde(default)]
    remedies: Vec<String>,
    #[serde(default)]
    description: String,
}

fn default_confidence() -> f32 {
    0.8
}

/// Parses a rules file into the pack's info and rules.
///
/// ```
/// let (info, rules) = guard_sdk::rules_from_toml(
///     "[pack]\nid = \"p\"\nversion = \"0.1.0\"\n\n[[rule]]\nid = \"a\"\ncategory = \"network\"\nfailure_type = \"t\"\npattern = 'X'\n",
/// ).unwrap();
/// assert_eq!((info.id.as_str(), rules.len()), ("p", 1));
/// ```
///
/// A rule with an unknown category is kept with category `other` and the
/// problem noted in its description, so the host reports it instead of the
/// pack vanishing.
pub fn rules_from_toml(text: &str) -> Result<(PluginInfo, Vec<Rule>), String> {
    let file: RulesFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let info = PluginInfo {
        id: file.pack.id,
        version: file.pack.version,
        description: file.pack.description,
    };
    let rules = file
        .rules
        .into_iter()
        .map(|r| {
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
        })
        .collect();
    Ok((info, rules))
}
