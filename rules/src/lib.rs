//! guard's rules-file format, defined once.
//!
//! A rules file is one `[pack]` table and any number of `[[rule]]` entries,
//! kept as TOML (or, by the host, as JSON with the same keys):
//!
//! ```toml
//! [pack]
//! id = "my-pack"
//! version = "0.1.0"              # optional, default "0.1.0"
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
//! The same format is read by pattern packs (`guard_sdk::rules_from_toml`:
//! `plugins/pack-std/rules/*.toml`, and the template `guard pack build`
//! fills), by `guard pack build RULES` and by `guard patterns import`, and
//! written by `guard patterns export` and by `guard pack build` (the TOML it
//! puts into the template). Before this crate the SDK and the host each had
//! their own copy of these types, with different defaults and strictness, so
//! a file one side accepted the other could refuse; now both use these.
//!
//! # One set of rules
//!
//! The choices keep every rules file in the repository, and every file the
//! host has exported, parsing:
//!
//! - **Unknown fields are errors**, in `[pack]`, in `[[rule]]` and at the
//!   top: a misspelt `unles` must not quietly become a rule without its
//!   exception. (The SDK already refused them; the host did not, but wrote
//!   none of its own.)
//! - **`[pack] version` defaults to [`DEFAULT_VERSION`]**: hand-written files
//!   and the tests' files leave it out, which the host accepted and the SDK
//!   did not. Files written here always carry it.
//! - **`confidence` defaults to [`DEFAULT_CONFIDENCE`]**, the value `guard
//!   learn` and `guard patterns promote` give learned rules. The SDK had this
//!   default; the host required the field.
//! - `description`, `unless` and `remedies` are optional (empty, none, none).
//! - **`category` is kept as text**, so an unknown category never makes the
//!   whole file unreadable. [`RuleEntry::validate`] refuses it; the host
//!   therefore refuses that one rule (`guard patterns import` imports the
//!   others, `guard pack build` names it and builds nothing), where it used to
//!   refuse the whole file. A pattern pack reading its rules through
//!   `guard_sdk::rules_from_toml` instead keeps such a rule under `other`,
//!   with the problem noted in its description, so the host reports it
//!   rather than the pack vanishing.
//!
//! Parsing checks the shape; [`RulesFile::validate`] checks what the host and
//! the SDK checked before: non-empty ids (pack and rule), a known category
//! and a confidence within 0.0–1.0 (finite). Whether a pattern compiles, and
//! what it costs, is the host's scanner's business: this crate has no regex
//! engine, so that it stays small inside every pattern pack.
//!
//! Text in, text out: no file system and no platform dependencies, so the
//! crate builds for `wasm32-wasip2` as well as natively.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `[pack] version` of a file that gives none.
pub const DEFAULT_VERSION: &str = "0.1.0";

/// The `confidence` of a rule that gives none.
pub const DEFAULT_CONFIDENCE: f32 = 0.8;

/// The categories a rule may name: the WIT `category` cases, lowercase.
pub const CATEGORIES: [&str; 8] = [
    "dependency",
    "test",
    "build",
    "timeout",
    "resource",
    "network",
    "permission",
    "other",
];

/// Whether `name` is one of [`CATEGORIES`].
pub fn is_category(name: &str) -> bool {
    CATEGORIES.contains(&name)
}

/// A rules file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// The `[pack]` table.
    pub pack: PackMeta,
    /// The `[[rule]]` entries, in file order.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleEntry>,
}

/// The `[pack]` table of a rules file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackMeta {
    /// Pack id: the plugin id the built pack reports.
    pub id: String,
    /// Pack version ([`DEFAULT_VERSION`] when omitted).
    #[serde(default = "default_version")]
    pub version: String,
    /// One sentence.
    #[serde(default)]
    pub description: String,
}

/// One `[[rule]]` entry of a rules file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// Unique id, e.g. `npm.enotfound`.
    pub id: String,
    /// Root-cause family, one of [`CATEGORIES`] (checked by
    /// [`RuleEntry::validate`], not by parsing).
    pub category: String,
    /// Specific failure type, e.g. `registry-unavailable`.
    pub failure_type: String,
    /// Regex over normalised log lines.
    pub pattern: String,
    /// Lines also matching this regex do not count.
    // Skipped when absent: TOML has no null, and exported files stay clean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
    /// 0.0–1.0 ([`DEFAULT_CONFIDENCE`] when omitted).
    #[serde(default = "default_confidence")]
    pub confidence: f32,
    /// Remedy strategy names in order of preference.
    #[serde(default)]
    pub remedies: Vec<String>,
    /// One sentence.
    #[serde(default)]
    pub description: String,
}

fn default_version() -> String {
    DEFAULT_VERSION.to_owned()
}

fn default_confidence() -> f32 {
    DEFAULT_CONFIDENCE
}

/// Why [`RulesFile::validate`] refuses part of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `[pack]`, the rule's id, or `[[rule]] #N` (1-based, in file
    /// order) for a rule without an id.
    pub place: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

impl std::error::Error for Problem {}

impl RulesFile {
    /// Parses a TOML rules file. Only the shape is checked; see
    /// [`RulesFile::validate`].
    ///
    /// ```
    /// let file = guard_rules::RulesFile::from_toml(
    ///     "[pack]\nid = \"p\"\n\n[[rule]]\nid = \"a\"\ncategory = \"network\"\nfailure_type = \"t\"\npattern = 'X'\n",
    /// )?;
    /// assert_eq!((file.pack.version.as_str(), file.rules[0].confidence), ("0.1.0", 0.8));
    /// assert!(file.validate().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<RulesFile, toml::de::Error> {
        toml::from_str(text)
    }

    /// The file as TOML, in the form [`RulesFile::from_toml`] reads back.
    #[cfg(feature = "toml")]
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Parses a JSON rules file (the same keys as TOML: `pack`, `rule`).
    #[cfg(feature = "json")]
    pub fn from_json(text: &str) -> Result<RulesFile, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The file as indented JSON, in the form [`RulesFile::from_json`] reads
    /// back.
    #[cfg(feature = "json")]
    pub fn to_json_pretty(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Checks the content: a non-empty pack id, and every rule as
    /// [`RuleEntry::validate`] does. Returns every problem, not just the
    /// first, so one run names everything to fix.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        // A pack without an id cannot load: the host refuses such plugins.
        if self.pack.id.is_empty() {
            problems.push(Problem {
                place: "[pack]".into(),
                message: "empty pack id".into(),
            });
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if let Err(message) = rule.validate() {
                let place = if rule.id.is_empty() {
                    format!("[[rule]] #{}", i + 1)
                } else {
                    rule.id.clone()
                };
                problems.push(Problem { place, message });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl RuleEntry {
    /// Checks one rule: a non-empty id, a category among [`CATEGORIES`], and
    /// a confidence within 0.0–1.0. Returns the first problem found.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("empty rule id".into());
        }
        if !is_category(&self.category) {
            return Err(format!(
                "unknown category `{}` (one of: {})",
                self.category,
                CATEGORIES.join(", ")
            ));
        }
        // NaN lies in no range and the infinities lie outside this one, so
        // this also refuses every non-finite confidence.
        if !(0.0..=1.0).contains(&self.confidence) {
            return Err(format!("confidence {} is outside 0.0–1.0", self.confidence));
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "toml"))]
mod tests {
    use super::*;

    const FULL: &str = r#"
[pack]
id = "team"
version = "1.2.3"
description = "Our failures"

[[rule]]
id = "registry.unavailable"
category = "network"
failure_type = "registry-unavailable"
pattern = 'registry\.example\.com.*(?:502|503)'
unless = 'retrying'
confidence = 0.9
remedies = ["retry-with-backoff"]
description = "Our registry's gateway is down"

[[rule]]
id = "disk.full"
category = "resource"
failure_type = "disk-full"
pattern = 'No space left on device'
confidence = 0.75
"#;

    /// A file of one rule with `extra` lines appended to the rule.
    fn one_rule(category: &str, extra: &str) -> String {
        format!(
            "[pack]\nid = \"p\"\n\n[[rule]]\nid = \"a\"\ncategory = \"{category}\"\nfailure_type = \"t\"\npattern = 'X'\n{extra}\n"
        )
    }

    #[test]
    fn a_file_round_trips_through_toml() {
        let file = RulesFile::from_toml(FULL).unwrap();
        assert_eq!(file.rules.len(), 2);
        assert_eq!(file.rules[0].unless.as_deref(), Some("retrying"));
        assert!(file.validate().is_ok());
        let text = file.to_toml().unwrap();
        assert!(
            text.contains("[pack]") && text.contains("[[rule]]"),
            "{text}"
        );
        // The rule without `unless` is written without one.
        assert_eq!(text.matches("unless").count(), 1, "{text}");
        assert_eq!(RulesFile::from_toml(&text).unwrap(), file);
    }

    #[test]
    fn omitted_fields_take_the_documented_defaults() {
        let file = RulesFile::from_toml(&one_rule("test", "")).unwrap();
        assert_eq!(file.pack.version, DEFAULT_VERSION);
        assert_eq!(file.pack.description, "");
        let r = &file.rules[0];
        assert_eq!(r.confidence, DEFAULT_CONFIDENCE);
        assert_eq!(
            (
                r.unless.as_deref(),
                r.remedies.len(),
                r.description.as_str()
            ),
            (None, 0, "")
        );
        let empty = RulesFile::from_toml("[pack]\nid = \"p\"\n").unwrap();
        assert!(empty.rules.is_empty() && empty.validate().is_ok());
        // The defaults are written out, so other readers need not know them.
        let text = file.to_toml().unwrap();
        assert!(
            text.contains("version = \"0.1.0\"") && text.contains("confidence"),
            "{text}"
        );
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        for text in [
            "[pack]\nid = \"p\"\nauthor = \"me\"\n".to_string(),
            one_rule("test", "unles = 'Y'"),
            "[pack]\nid = \"p\"\n\n[[rules]]\nid = \"a\"\n".to_string(),
        ] {
            let e = RulesFile::from_toml(&text).unwrap_err();
            assert!(e.to_string().contains("unknown field"), "{text}: {e}");
        }
        assert!(RulesFile::from_toml("[[rule]]\nid = \"a\"\n").is_err());
    }

    #[test]
    fn a_confidence_outside_zero_to_one_or_not_finite_is_refused() {
        for c in ["1.5", "-0.1", "nan", "inf"] {
            let text = one_rule("test", &format!("confidence = {c}"));
            let file = RulesFile::from_toml(&text).unwrap();
            let problems = file.validate().unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].to_string().starts_with("a: confidence"),
                "{}",
                problems[0]
            );
        }
        for c in ["0", "0.0", "0.5", "1.0"] {
            let text = one_rule("test", &format!("confidence = {c}"));
            let file = RulesFile::from_toml(&text).unwrap();
            assert!(file.validate().is_ok(), "{c}");
        }
    }

    #[test]
    fn an_unknown_category_parses_but_does_not_validate() {
        let file = RulesFile::from_toml(&one_rule("networking", "")).unwrap();
        let problems = file.validate().unwrap_err();
        assert!(
            problems[0]
                .message
                .contains("unknown category `networking`"),
            "{}",
            problems[0]
        );
        for c in CATEGORIES {
            let file = RulesFile::from_toml(&one_rule(c, "")).unwrap();
            assert!(file.validate().is_ok(), "{c}");
        }
    }

    #[test]
    fn empty_ids_are_refused_and_placed() {
        let text = "[pack]\nid = \"\"\n\n[[rule]]\nid = \"\"\ncategory = \"test\"\nfailure_type = \"t\"\npattern = 'X'\n";
        let problems = RulesFile::from_toml(text).unwrap().validate().unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["[pack]: empty pack id", "[[rule]] #1: empty rule id"]
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_reads_and_writes_the_same_format() {
        let file = RulesFile::from_toml(FULL).unwrap();
        let json = file.to_json_pretty().unwrap();
        assert!(
            json.contains("\"rule\"") && !json.contains("null"),
            "{json}"
        );
        assert_eq!(RulesFile::from_json(&json).unwrap(), file);
        let minimal = RulesFile::from_json(r#"{"pack": {"id": "p"}}"#).unwrap();
        assert_eq!(minimal.pack.version, DEFAULT_VERSION);
        assert!(RulesFile::from_json(r#"{"pack": {"id": "p"}, "rules": []}"#).is_err());
    }
}
