//! Conversions between the WIT-generated types and guard's own
//! [`crate::model`] types, with the host's caps on sizes applied on the way
//! in (a plugin cannot make guard hold a gigabyte of evidence).

use super::bindings::types as wit;
use crate::model;

/// Longest evidence text kept, in bytes.
const MAX_TEXT: usize = 4096;
/// Evidence lines kept per finding.
const MAX_EVIDENCE: usize = 20;
/// Facts kept per finding.
const MAX_FACTS: usize = 200;
/// Longest id / name / fact string kept.
const MAX_NAME: usize = 512;

/// Cuts `s` to at most `max` bytes at a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

pub fn category_from_wit(c: wit::Category) -> model::Category {
    match c {
        wit::Category::Dependency => model::Category::Dependency,
        wit::Category::Test => model::Category::Test,
        wit::Category::Build => model::Category::Build,
        wit::Category::Timeout => model::Category::Timeout,
        wit::Category::Resource => model::Category::Resource,
        wit::Category::Network => model::Category::Network,
        wit::Category::Permission => model::Category::Permission,
        wit::Category::Other => model::Category::Other,
    }
}

pub fn category_to_wit(c: model::Category) -> wit::Category {
    match c {
        model::Category::Dependency => wit::Category::Dependency,
        model::Category::Test => wit::Category::Test,
        model::Category::Build => wit::Category::Build,
        model::Category::Timeout => wit::Category::Timeout,
        model::Category::Resource => wit::Category::Resource,
        model::Category::Network => wit::Category::Network,
        model::Category::Permission => wit::Category::Permission,
        model::Category::Other => wit::Category::Other,
    }
}

pub fn job_to_wit(j: &model::Job) -> wit::Job {
    wit::Job {
        platform: match j.platform {
            model::Platform::Github => wit::Platform::Github,
            model::Platform::Gitlab => wit::Platform::Gitlab,
            model::Platform::Jenkins => wit::Platform::Jenkins,
            model::Platform::Local => wit::Platform::Local,
        },
        repository: j.repository.clone(),
        run_id: j.run_id.clone(),
        job_id: j.job_id.clone(),
        job_name: j.job_name.clone(),
        attempt: j.attempt,
        commit: j.commit.clone(),
        branch: j.branch.clone(),
        url: j.url.clone(),
    }
}

pub fn finding_from_wit(f: wit::Finding, source: &str) -> model::Finding {
    model::Finding {
        rule: truncate(f.rule, MAX_NAME),
        source: source.to_string(),
        category: category_from_wit(f.category),
        failure_type: truncate(f.failure_type, MAX_NAME),
        confidence: if f.confidence.is_finite() {
            f.confidence.clamp(0.0, 1.0)
        } else {
            0.0
        },
        evidence: f
            .evidence
            .into_iter()
            .take(MAX_EVIDENCE)
            .map(|e| model::Evidence {
                line: e.line,
                text: truncate(e.text, MAX_TEXT),
            })
            .collect(),
        remedies: f
            .remedies
            .into_iter()
            .take(16)
            .map(|r| truncate(r, MAX_NAME))
            .collect(),
        facts: f
            .facts
            .into_iter()
            .take(MAX_FACTS)
            .map(|(k, v)| (truncate(k, MAX_NAME), truncate(v, MAX_NAME)))
            .collect(),
    }
}

pub fn finding_to_wit(f: &model::Finding) -> wit::Finding {
    wit::Finding {
        rule: f.rule.clone(),
        category: category_to_wit(f.category),
        failure_type: f.failure_type.clone(),
        confidence: f.confidence,
        evidence: f
            .evidence
            .iter()
            .map(|e| wit::Evidence {
                line: e.line,
                text: e.text.clone(),
            })
            .collect(),
        remedies: f.remedies.clone(),
        facts: f.facts.clone(),
    }
}

pub fn rule_from_wit(r: wit::Rule) -> model::Rule {
    model::Rule {
        id: truncate(r.id, MAX_NAME),
        category: category_from_wit(r.category),
        failure_type: truncate(r.failure_type, MAX_NAME),
        pattern: r.pattern,
        unless: r.unless,
        confidence: if r.confidence.is_finite() {
            r.confidence.clamp(0.0, 1.0)
        } else {
            0.0
        },
        remedies: r
            .remedies
            .into_iter()
            .take(16)
            .map(|s| truncate(s, MAX_NAME))
            .collect(),
        description: truncate(r.description, MAX_TEXT),
    }
}

/// Plugin self-description.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginInfo {
    /// Id (grants are keyed by it).
    pub id: String,
    /// Version.
    pub version: String,
    /// One sentence.
    pub description: String,
}

pub fn info_from_wit(i: wit::PluginInfo) -> PluginInfo {
    PluginInfo {
        id: truncate(i.id, 128),
        version: truncate(i.version, 64),
        description: truncate(i.description, MAX_TEXT),
    }
}
