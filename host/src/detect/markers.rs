//! Failure markers: the lines with which CI systems and wrappers say that a
//! command or a job failed, with the exit code they name, and what an exit
//! code (or a kill) means. Cheap string checks, no regex: they run on every
//! line of every log.

use crate::model::Category;

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

pub(crate) fn is_timeout_message(t: &str) -> bool {
    let l = t.to_ascii_lowercase();
    l.contains("timed out")
        || l.contains("timeout exceeded")
        || l.contains("exceeded the maximum execution time")
        || l.contains("no output has been received")
        || l.contains("too long with no output")
        || l.contains("deadline exceeded")
        || l.contains("time limit")
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
