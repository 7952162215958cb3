//! What each runner's options look like: which take a value as the next
//! token (so it is kept or dropped with them), and which the narrowing
//! replaces.

use super::Runner;

/// Options of each runner that take their value as the next token, so the
/// value is kept or dropped with its option.
#[rustfmt::skip]
fn value_options(runner: Runner) -> &'static [&'static str] {
    match runner {
        Runner::Pytest => &[
            "-k",
            "-m",
            "-p",
            "-c",
            "-o",
            "-W",
            "-n",
            "-r",
            "--maxfail",
            "--rootdir",
            "--basetemp",
            "--tb",
            "--durations",
            "--ignore",
            "--deselect",
            "--junitxml",
            "--junit-xml",
            "--log-level",
            "--confcutdir",
            "--import-mode",
            "--timeout",
            "--dist",
            "--cov-report",
            "--capture",
            "--override-ini",
            "--color",
            "--reruns",
        ],
        Runner::GoTest => &[
            "-run",
            "-count",
            "-timeout",
            "-tags",
            "-p",
            "-parallel",
            "-coverprofile",
            "-bench",
            "-cpu",
            "-exec",
            "-o",
            "-covermode",
            "-coverpkg",
            "-skip",
            "-shuffle",
            "-vet",
            "-C",
            "-mod",
            "-ldflags",
            "-gcflags",
            "-benchtime",
            "-failfast",
            "-json",
        ],
        Runner::CargoTest | Runner::Nextest => &[
            "-p",
            "--package",
            "--features",
            "-F",
            "--target",
            "--manifest-path",
            "-j",
            "--jobs",
            "--test",
            "--bin",
            "--example",
            "--bench",
            "--profile",
            "--target-dir",
            "--color",
            "--message-format",
            "-Z",
            "--config",
            "--exclude",
            "-E",
            "--filterset",
            "-P",
            "--partition",
            "--test-threads",
            "--retries",
            "--cargo-profile",
            "--skip",
            "--format",
            "--logfile",
            "--report-time",
        ],
        Runner::Jest => &[
            "-t",
            "--testNamePattern",
            "-c",
            "--config",
            "-w",
            "--maxWorkers",
            "--reporters",
            "--testTimeout",
            "--shard",
            "--selectProjects",
            "--testPathIgnorePatterns",
            "--rootDir",
            "--roots",
            "--outputFile",
            "--coverageDirectory",
            "--env",
        ],
        Runner::Vitest => &[
            "-t",
            "--testNamePattern",
            "-c",
            "--config",
            "-r",
            "--root",
            "--reporter",
            "--project",
            "--shard",
            "--pool",
            "--environment",
            "--outputFile",
            "--dir",
            "--mode",
            "--testTimeout",
        ],
        Runner::Mocha => &[
            "-g",
            "--grep",
            "-f",
            "--fgrep",
            "-r",
            "--require",
            "-R",
            "--reporter",
            "-t",
            "--timeout",
            "--config",
            "--spec",
            "--ui",
            "-u",
            "--extension",
            "-j",
            "--jobs",
            "--ignore",
            "--exclude",
            "--slow",
            "-s",
        ],
        Runner::Maven => &[
            "-f",
            "--file",
            "-s",
            "--settings",
            "-P",
            "-pl",
            "-T",
            "-rf",
            "-l",
        ],
        Runner::Gradle => &[
            "--tests",
            "-p",
            "--project-dir",
            "-x",
            "--exclude-task",
            "-b",
            "--build-file",
            "-g",
            "--gradle-user-home",
            "-I",
            "--init-script",
            "--max-workers",
        ],
        Runner::Rspec => &[
            "-e",
            "--example",
            "-t",
            "--tag",
            "-f",
            "--format",
            "-o",
            "--out",
            "-r",
            "--require",
            "-I",
            "--seed",
            "--order",
            "-E",
            "--example-matches",
            "--pattern",
            "--exclude-pattern",
            "--default-path",
        ],
        Runner::Phpunit => &[
            "--filter",
            "-c",
            "--configuration",
            "--testsuite",
            "--group",
            "--exclude-group",
            "--bootstrap",
            "--log-junit",
            "--coverage-html",
            "--coverage-clover",
            "--order-by",
        ],
        Runner::Dotnet => &[
            "--filter",
            "-c",
            "--configuration",
            "-f",
            "--framework",
            "-r",
            "--runtime",
            "--logger",
            "-l",
            "-s",
            "--settings",
            "-a",
            "--arch",
            "--results-directory",
            "-v",
            "--verbosity",
            "--collect",
            "-o",
            "--output",
        ],
    }
}

/// Options dropped from the user's command because the narrowing replaces
/// what they select (or because they would select nothing again).
#[rustfmt::skip]
fn dropped_options(runner: Runner) -> &'static [&'static str] {
    match runner {
        Runner::Pytest => &[
            "-k",
            "-m",
            "--lf",
            "--last-failed",
            "--ff",
            "--failed-first",
            "--sw",
            "--stepwise",
            "--co",
            "--collect-only",
        ],
        Runner::GoTest => &["-run", "-count", "-v", "-skip", "-json", "-bench", "-list"],
        Runner::CargoTest | Runner::Nextest => &["--exact", "--skip", "--list"],
        Runner::Jest => &[
            "-t",
            "--testNamePattern",
            "-o",
            "--onlyChanged",
            "--watch",
            "--watchAll",
            "--lastCommit",
            "--changedSince",
            "--listTests",
            "--silent",
        ],
        Runner::Vitest => &[
            "-t",
            "--testNamePattern",
            "--watch",
            "-w",
            "--changed",
            "--silent",
        ],
        Runner::Mocha => &[
            "-g",
            "--grep",
            "-f",
            "--fgrep",
            "--watch",
            "-w",
            "--forbid-only",
            "--dry-run",
        ],
        Runner::Maven => &[],
        Runner::Gradle => &["--tests", "--continuous", "-t"],
        Runner::Rspec => &[
            "-e",
            "--example",
            "-E",
            "--example-matches",
            "--only-failures",
            "--next-failure",
            "--dry-run",
        ],
        Runner::Phpunit => &["--filter", "--list-tests"],
        Runner::Dotnet => &["--filter", "--list-tests", "-t"],
    }
}

/// The user's arguments after the runner: options kept (minus dropped
/// ones, each with its value), positionals returned apart.
pub(super) fn split_args(runner: Runner, rest: &[String]) -> (Vec<String>, Vec<String>) {
    let takes_value = value_options(runner);
    let dropped = dropped_options(runner);
    let (mut options, mut positionals) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < rest.len() {
        let token = &rest[i];
        i += 1;
        if token.starts_with('-') && token.len() > 1 {
            let name = token.split('=').next().unwrap_or(token);
            let joined = token.contains('=');
            let value = (!joined && takes_value.contains(&name) && i < rest.len()).then(|| {
                i += 1;
                rest[i - 1].clone()
            });
            // Maven's `-Dtest=…` selects tests the same way the narrowing does.
            let maven_selection = runner == Runner::Maven
                && (token.starts_with("-Dtest=") || token.starts_with("-Dit.test="));
            if dropped.contains(&name) || maven_selection {
                continue;
            }
            options.push(token.clone());
            options.extend(value);
        } else {
            positionals.push(token.clone());
        }
    }
    (options, positionals)
}
