//! Failure markers: the lines with which CI systems and wrappers say that a
//! command or a job failed, with the exit code they name, and what an exit
//! code (or a kill) means. Cheap string checks, no regex: they run on every
//! line of every log.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

use crate::model::Category;

/// What a line may be, from one pass of a small case-insensitive automaton
/// over phrases every such line contains; the detailed checks then run on
/// the few lines that can be one (this runs on every line of every log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// A failure marker (checked in detail by [`failure_marker`]).
    pub marker: bool,
    /// A time-limit message.
    pub timeout: bool,
    /// A kill (checked in detail by [`is_kill_message`]).
    pub kill: bool,
}

const MARKER_PHRASES: &[&str] = &[
    "exited with",
    "exit code",
    "exit status",
    "] error ",
    "finished: failure",
    "finished: unstable",
    "as failure",
    "non-zero",
    "job failed",
];
const TIMEOUT_PHRASES: &[&str] = &[
    "timed out",
    "timeout exceeded",
    "maximum execution time",
    "no output has been received",
    "too long with no output",
    "deadline exceeded",
    "time limit",
];
const KILL_PHRASES: &[&str] = &["killed", "sigkill"];

/// Fragments of the phrases above in the cases tools print them: a
/// case-sensitive automaton over these runs at SIMD speed (a case-insensitive
/// one over the phrases would cost a tenth of the whole pipeline), and only
/// the lines it passes are lower-cased and checked phrase by phrase.
const FRAGMENTS: &[&str] = &[
    "exit",
    "Exit",
    "EXIT",
    "rror ",
    "RROR ",
    "inished: ",
    "INISHED: ",
    "s failure",
    "on-zero",
    "ob failed",
    "OB FAILED",
    "imed out",
    "IMED OUT",
    "imeout",
    "IMEOUT",
    "aximum execution",
    "o output",
    "O OUTPUT",
    "eadline",
    "EADLINE",
    "ime limit",
    "IME LIMIT",
    "illed",
    "ILLED",
];

fn fragments() -> Option<&'static AhoCorasick> {
    static FAST: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    FAST.get_or_init(|| AhoCorasick::new(FRAGMENTS).ok())
        .as_ref()
}

/// The fragments as a SIMD (Teddy) searcher, where the CPU has one.
fn packed() -> Option<&'static aho_corasick::packed::Searcher> {
    static PACKED: OnceLock<Option<aho_corasick::packed::Searcher>> = OnceLock::new();
    PACKED
        .get_or_init(|| aho_corasick::packed::Searcher::new(FRAGMENTS.iter()))
        .as_ref()
}

/// Offsets in `block` where a fragment starts, in order: the lines holding
/// them are the only ones [`hints`] needs to see. One pass over a whole
/// block (per-line calls would cost more than the search). Without the
/// automaton (it cannot fail to build), every offset is a candidate.
pub fn candidates(block: &str) -> Box<dyn Iterator<Item = usize> + '_> {
    if let Some(p) = packed() {
        return Box::new(p.find_iter(block).map(|m| m.start()));
    }
    match fragments() {
        Some(f) => Box::new(f.find_iter(block).map(|m| m.start())),
        None => Box::new(0..block.len()),
    }
}

/// The [`Hints`] of a trimmed, normalised line.
pub fn hints(t: &str) -> Hints {
    // It cannot fail to build; if it did, every line gets the checks.
    if fragments().is_some_and(|f| !f.is_match(t)) {
        return Hints::default();
    }
    let l = t.to_ascii_lowercase();
    let any = |phrases: &[&str]| phrases.iter().any(|p| l.contains(p));
    Hints {
        marker: any(MARKER_PHRASES),
        timeout: any(TIMEOUT_PHRASES),
        kill: any(KILL_PHRASES),
    }
}

/// How much a failure marker says about the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A command inside a step failed (make, `exit status`, docker, yarn…):
    /// the job may have survived it.
    Step,
    /// The CI system says the step or job failed.
    Job,
}

/// What the exit code or a signal says, when it says something.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExitMeaning {
    /// The category it implies.
    pub category: Category,
    /// A failure type for the report.
    pub failure_type: &'static str,
    /// How sure: a kill the log also reports is surer than a bare code.
    pub confidence: f32,
}

/// Classifies a trimmed, normalised line as a failure marker.
pub fn failure_marker(t: &str) -> Option<(Level, Option<i32>)> {
    let nonzero = |code: Option<i32>| code.filter(|c| *c != 0);
    // CI level.
    if let Some(rest) = t.strip_prefix("The command \"") {
        // Travis: `The command "X" exited with N.` and
        // `The command "X" failed and exited with N during .`; not
        // `… failed. Retrying, 2 of 3.`
        if let Some(i) = rest
            .rfind("\" exited with ")
            .or(rest.rfind("\" failed and exited with "))
        {
            let code = number_after(&rest[i..], "exited with ");
            return nonzero(code).map(|c| (Level::Job, Some(c)));
        }
        return None;
    }
    if let Some(rest) = t.strip_prefix("Done. Your build exited with ") {
        return nonzero(leading_number(rest)).map(|c| (Level::Job, Some(c)));
    }
    for prefix in [
        "Process completed with exit code ",
        "Error: Process completed with exit code ",
        "ERROR: Job failed: exit code ",
        "ERROR: Job failed: command terminated with exit code ",
        "ERROR: script returned exit code ",
        "script returned exit code ",
        "Exited with code exit status ",
        "Exited with code ",
        "🚨 Error: The command exited with status ",
        "Error: The command exited with status ",
        "The command exited with status ",
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            return nonzero(leading_number(rest)).map(|c| (Level::Job, Some(c)));
        }
    }
    // Azure Pipelines: "Bash exited with code '1'." (after ##[error]).
    if let Some(i) = t.find(" exited with code '")
        && t.len() < 120
        && !t[..i].contains(' ')
    {
        let code = leading_number(&t[i + " exited with code '".len()..]);
        return nonzero(code).map(|c| (Level::Job, Some(c)));
    }
    if t.starts_with("ERROR: Job failed")
        || t == "Finished: FAILURE"
        || t == "Finished: UNSTABLE"
        || t.starts_with("Build step '") && t.ends_with("' marked build as failure")
    {
        return Some((Level::Job, None));
    }
    // Step level.
    if (t.starts_with("make: *** ") || t.starts_with("make[") || t.starts_with("gmake: *** "))
        && t.contains("*** [")
        && !t.ends_with("(ignored)")
        && let Some(i) = t.rfind("] Error ")
    {
        let code = leading_number(&t[i + "] Error ".len()..]);
        return nonzero(code).map(|c| (Level::Step, Some(c)));
    }
    if let Some(rest) = t.strip_prefix("exit status ") {
        return nonzero(leading_number(rest)).map(|c| (Level::Step, Some(c)));
    }
    for needle in [
        "Command failed with exit code ",
        "Process exited with code ",
        "Process exited with status ",
        "Process finished with exit code ",
        " exited with code ",
        " returned non-zero exit status ",
        " returned a non-zero code: ",
        "exited with non-zero status ",
    ] {
        if let Some(i) = t.find(needle) {
            let code = leading_number(&t[i + needle.len()..]);
            return nonzero(code).map(|c| (Level::Step, Some(c)));
        }
    }
    None
}

/// What an exit code says (with whether a kill or a time-limit message came
/// before it).
pub fn exit_meaning(code: Option<i32>, killed: bool, timed_out: bool) -> Option<ExitMeaning> {
    let m = |category, failure_type, confidence| {
        Some(ExitMeaning {
            category,
            failure_type,
            confidence,
        })
    };
    // A kill the log reports in words as well as in the code is certain.
    let sure = if killed { 0.88 } else { 0.7 };
    match code {
        // SIGKILL: the OOM killer or a memory limit, unless a time limit did it.
        Some(137) | Some(-9) if timed_out => m(Category::Timeout, "killed-at-time-limit", sure),
        Some(137) | Some(-9) => m(Category::Resource, "killed-sigkill", sure),
        // timeout(1) and SIGTERM after a limit.
        Some(124) => m(Category::Timeout, "time-limit", 0.75),
        Some(143) if timed_out => m(Category::Timeout, "terminated-at-time-limit", 0.75),
        Some(126) | Some(127) => m(Category::Dependency, "missing-tool", 0.6),
        Some(130) => m(Category::Other, "cancelled", 0.6),
        _ if killed && timed_out => m(Category::Timeout, "killed-at-time-limit", 0.7),
        _ if killed => m(Category::Resource, "killed", 0.7),
        _ => None,
    }
}

fn leading_number(s: &str) -> Option<i32> {
    let s = s.trim_start_matches(['\'', '"', ' ']);
    let neg = s.starts_with('-');
    let digits: String = s
        .trim_start_matches('-')
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(9)
        .collect();
    let n: i32 = digits.parse().ok()?;
    Some(if neg { -n } else { n })
}

fn number_after(s: &str, needle: &str) -> Option<i32> {
    let i = s.find(needle)?;
    leading_number(&s[i + needle.len()..])
}

pub(crate) fn is_kill_message(t: &str) -> bool {
    // bash job control: "line 3:  1234 Killed   mvn install"; the kernel's
    // OOM report; a bare "Killed" printed by the shell.
    t == "Killed"
        || t.contains(" Killed ")
        || t.ends_with(" Killed")
        || t.contains("Out of memory: Killed process")
        || t.contains("signal: killed")
        || t.contains("SIGKILL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hints_pass_every_marker() {
        for line in [
            "The command \"make\" exited with 2.",
            "ERROR: Job failed: exit code 1",
            "Finished: UNSTABLE",
            "Build step 'Execute shell' marked build as failure",
            "make: *** [all] Error 2",
            "app returned a non-zero code: 3",
            "exit status 2",
            "Bash exited with code '1'.",
            "🚨 Error: The command exited with status 1",
            "Done. Your build exited with 1.",
        ] {
            assert!(hints(line).marker, "{line}");
            assert!(failure_marker(line).is_some(), "{line}");
        }
        assert!(hints("No output has been received in the last 10m0s").timeout);
        assert!(hints("./build.sh: line 3:  4242 Killed  mvn install").kill);
        assert_eq!(
            hints("[INFO] Tests run: 5, Failures: 0, Errors: 0, Time elapsed: 1 s"),
            Hints::default()
        );
    }

    #[test]
    fn markers_of_many_ci_systems() {
        for (line, level, code) in [
            (
                "The command \"mvn install -DskipTests=true\" failed and exited with 137 during .",
                Level::Job,
                Some(137),
            ),
            (
                "The command \"npm test\" exited with 1.",
                Level::Job,
                Some(1),
            ),
            ("Process completed with exit code 2.", Level::Job, Some(2)),
            ("ERROR: Job failed: exit code 1", Level::Job, Some(1)),
            ("Bash exited with code '1'.", Level::Job, Some(1)),
            ("Exited with code exit status 1", Level::Job, Some(1)),
            (
                "🚨 Error: The command exited with status 1",
                Level::Job,
                Some(1),
            ),
            ("Finished: FAILURE", Level::Job, None),
            ("make: *** [Makefile:12: all] Error 2", Level::Step, Some(2)),
            ("make[1]: *** [install] Error 1", Level::Step, Some(1)),
            ("exit status 1", Level::Step, Some(1)),
            (
                "error Command failed with exit code 1.",
                Level::Step,
                Some(1),
            ),
            ("db_1 exited with code 3", Level::Step, Some(3)),
        ] {
            assert_eq!(failure_marker(line), Some((level, code)), "{line}");
        }
        for line in [
            "The command \"npm test\" exited with 0.",
            "The command \"curl x\" failed. Retrying, 2 of 3.",
            "Done. Your build exited with 0.",
            "make: *** [all] Error 1 (ignored)",
            "exit status 0",
            "Process completed with exit code 0.",
            "echo the job failed",
        ] {
            assert_eq!(failure_marker(line), None, "{line}");
        }
    }

    #[test]
    fn exit_codes_have_meanings() {
        let m = |c, k, t| exit_meaning(Some(c), k, t).map(|m| m.category);
        assert_eq!(m(137, false, false), Some(Category::Resource));
        assert_eq!(m(137, true, true), Some(Category::Timeout));
        assert_eq!(m(124, false, false), Some(Category::Timeout));
        assert_eq!(m(127, false, false), Some(Category::Dependency));
        assert_eq!(m(130, false, false), Some(Category::Other));
        assert_eq!(m(1, false, false), None);
        assert_eq!(m(1, true, false), Some(Category::Resource));
    }
}
