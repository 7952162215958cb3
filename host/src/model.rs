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
