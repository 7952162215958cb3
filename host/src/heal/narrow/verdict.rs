//! Reading a narrowed run's output: did it run any of the tests? A run
//! that selected nothing passes on most runners, and "passed when re-run
//! alone" must never be said of it.

use super::Runner;

/// What a narrowed run showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It ran at least one test and every test it ran passed.
    Passed,
    /// It ran and something failed (or the runner itself failed).
    Failed,
    /// It selected no test: it says nothing about the failed tests.
    NothingRan,
}

/// The sum of the first capture of `pattern` over `text`.
fn total(pattern: &str, text: &str) -> u64 {
    regex::Regex::new(pattern)
        .map(|re| {
            re.captures_iter(text)
                .filter_map(|c| c.get(1)?.as_str().parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// How many times `pattern` matches in `text`.
fn count(pattern: &str, text: &str) -> u64 {
    regex::Regex::new(pattern)
        .map(|re| re.find_iter(text).count() as u64)
        .unwrap_or(0)
}

/// What a narrowed run of `runner` showed, from its exit status and output.
pub fn judge(runner: Runner, status: i32, output: &str) -> Verdict {
    let ran = match runner {
        Runner::Pytest => total(r"(\d+) (?:passed|failed|error)", output),
        Runner::GoTest => count(r"(?m)^\s*--- (?:PASS|FAIL): ", output),
        Runner::CargoTest => {
            total(r"test result: \w+\. (\d+) passed", output)
                + total(r"test result: \w+\. \d+ passed; (\d+) failed", output)
        }
        Runner::Nextest => total(r"(\d+) tests? run", output),
        Runner::Jest => {
            total(r"(?m)^Tests:.*?(\d+) passed", output)
                + total(r"(?m)^Tests:.*?(\d+) failed", output)
        }
        Runner::Vitest => {
            total(r"(?m)^\s*Tests\s.*?(\d+) passed", output)
                + total(r"(?m)^\s*Tests\s.*?(\d+) failed", output)
        }
        Runner::Mocha => total(r"(\d+) passing", output) + total(r"(\d+) failing", output),
        Runner::Maven => total(r"Tests run: (\d+), Failures", output),
        // Gradle prints no counts without a plugin; a filter matching nothing fails the build.
        Runner::Gradle => u64::from(!output.contains("No tests found for given includes")),
        Runner::Rspec => total(r"(\d+) examples?, ", output),
        Runner::Phpunit => total(r"OK \((\d+) tests?", output) + total(r"Tests: (\d+)", output),
        Runner::Dotnet => total(r"Total tests: (\d+)", output) + total(r"Passed:\s+(\d+)", output),
    };
    match (status, ran) {
        (_, 0) => Verdict::NothingRan,
        (0, _) => Verdict::Passed,
        _ => Verdict::Failed,
    }
}
