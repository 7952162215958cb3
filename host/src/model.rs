//! The host's own vocabulary: categories, jobs, findings and rules as plain
//! serde types. The WIT-generated types stay inside `runtime`; everything
//! else in guard speaks these.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Root-cause family of a failure (mirrors the WIT `category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Package resolution, download or cache trouble.
    Dependency,
    /// A test failed.
    Test,
    /// Compile, link, lint or type-check failure.
    Build,
    /// A step or job ran out of time.
    Timeout,
    /// Memory, disk, file handles or processes exhausted.
    Resource,
    /// DNS, connection, TLS, rate limit or upstream 5xx.
    Network,
    /// Credentials or authorisation.
    Permission,
    /// Anything else.
    Other,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 8] = [
        Category::Dependency,
        Category::Test,
        Category::Build,
        Category::Timeout,
        Category::Resource,
        Category::Network,
        Category::Permission,
        Category::Other,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Dependency => "dependency",
            Category::Test => "test",
            Category::Build => "build",
            Category::Timeout => "timeout",
            Category::Resource => "resource",
            Category::Network => "network",
            Category::Permission => "permission",
            Category::Other => "other",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether a retry can plausibly heal this family. Deterministic
    /// failures are diagnosed and annotated, not retried.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Category::Network | Category::Timeout | Category::Resource | Category::Dependency
        )
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// GitHub Actions.
    Github,
    /// GitLab CI.
    Gitlab,
    /// Jenkins.
    Jenkins,
    /// A local command (`guard exec`, `guard detect`).
    #[default]
    Local,
}

/// A CI job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Job {
    /// Platform.
    pub platform: Platform,
    /// Repository or project.
    pub repository: String,
    /// Run, pipeline or build id.
    pub run_id: String,
    /// Job id.
    pub job_id: String,
    /// Job name.
    pub job_name: String,
    /// 1-based attempt.
    pub attempt: u32,
    /// Commit sha.
    pub commit: Option<String>,
    /// Branch or ref.
    pub branch: Option<String>,
    /// Link to the job.
    pub url: Option<String>,
    /// How the platform's API names the repository when that differs from
    /// `repository` (GitLab's numeric project id; Jenkins' job path as its
    /// URLs spell it, `job/p/job/feature%252Fx`, while `repository` is the
    /// name people read, `p/feature/x`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_id: Option<String>,
}

impl Job {
    /// A job standing for a local file analysed by `guard detect`.
    pub fn local(name: &str) -> Job {
        Job {
            platform: Platform::Local,
            repository: "local".into(),
            run_id: "0".into(),
            job_id: "0".into(),
            job_name: name.into(),
            attempt: 1,
            ..Job::default()
        }
    }
}

/// One evidence line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// 1-based line number in the original log.
    pub line: u32,
    /// Normalised text of the line.
    pub text: String,
}

/// A recognised failure, from a rule or a detector plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Rule or check id.
    pub rule: String,
    /// Who produced it: a pack or detector plugin id.
    pub source: String,
    /// Root-cause family.
    pub category: Category,
    /// Specific failure type.
    pub failure_type: String,
    /// 0.0–1.0.
    pub confidence: f32,
    /// Evidence lines, most telling first.
    pub evidence: Vec<Evidence>,
    /// Remedy strategy names in order of preference.
    pub remedies: Vec<String>,
    /// Extracted facts.
    pub facts: Vec<(String, String)>,
}

/// A pattern-pack rule, as shipped (not yet compiled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Unique id.
    pub id: String,
    /// Root-cause family.
    pub category: Category,
    /// Specific failure type.
    pub failure_type: String,
    /// Regex over normalised lines.
    pub pattern: String,
    /// Lines also matching this do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
    /// 0.0–1.0.
    pub confidence: f32,
    /// Remedy strategy names.
    #[serde(default)]
    pub remedies: Vec<String>,
    /// One sentence.
    #[serde(default)]
    pub description: String,
}

impl TryFrom<guard_rules::RuleEntry> for Rule {
    type Error = String;

    /// A rules-file entry as a rule, once it passes the format's checks
    /// ([`guard_rules::RuleEntry::validate`]: id, category, confidence).
    /// Unlike a pack's SDK, which files an unknown category under `other`,
    /// the host refuses it: whoever runs `guard patterns import` or `guard
    /// pack build` can fix the file.
    fn try_from(entry: guard_rules::RuleEntry) -> Result<Rule, String> {
        entry.validate()?;
        // `validate` accepted the name, so this fails only if the format's
        // list and `Category` drift apart (a test below keeps them equal).
        let category = Category::parse(&entry.category)
            .ok_or_else(|| format!("unknown category `{}`", entry.category))?;
        Ok(Rule {
            id: entry.id,
            category,
            failure_type: entry.failure_type,
            pattern: entry.pattern,
            unless: entry.unless,
            confidence: entry.confidence,
            remedies: entry.remedies,
            description: entry.description,
        })
    }
}

impl From<Rule> for guard_rules::RuleEntry {
    /// The rule as a rules-file entry (what `guard patterns export` writes).
    fn from(rule: Rule) -> guard_rules::RuleEntry {
        guard_rules::RuleEntry {
            id: rule.id,
            category: rule.category.as_str().to_owned(),
            failure_type: rule.failure_type,
            pattern: rule.pattern,
            unless: rule.unless,
            confidence: rule.confidence,
            remedies: rule.remedies,
            description: rule.description,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_format_and_category_name_the_same_categories() {
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, guard_rules::CATEGORIES);
    }

    #[test]
    fn rules_convert_to_entries_and_back_and_bad_entries_are_refused() {
        let rule = Rule {
            id: "a".into(),
            category: Category::Network,
            failure_type: "t".into(),
            pattern: "X".into(),
            unless: Some("Y".into()),
            confidence: 0.5,
            remedies: vec!["retry".into()],
            description: "d".into(),
        };
        let entry = guard_rules::RuleEntry::from(rule.clone());
        assert_eq!(entry.category, "network");
        assert_eq!(Rule::try_from(entry.clone()), Ok(rule));
        let unknown = guard_rules::RuleEntry {
            category: "networking".into(),
            ..entry.clone()
        };
        assert!(
            Rule::try_from(unknown)
                .unwrap_err()
                .contains("unknown category")
        );
        let unsure = guard_rules::RuleEntry {
            confidence: 1.5,
            ..entry
        };
        assert!(Rule::try_from(unsure).unwrap_err().contains("confidence"));
    }
}
