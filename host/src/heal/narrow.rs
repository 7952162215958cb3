//! Narrowing a wrapped test command to the tests that failed.
//!
//! `guard exec -- ./venv/bin/python -m pytest -q tests` has already told
//! guard which program may run: the user's own. To learn whether a failed
//! test is flaky, a healer asks the host (`exec.rerun-tests`) to run that
//! same command again, narrowed to the failed tests. The host — not the
//! plugin — builds the narrowed command here: the launcher and runner the
//! user typed are kept verbatim (interpreter, `npx`, `bundle exec`,
//! `./gradlew`), the user's own options are kept, and the plugin supplies
//! only test names, which become data (positional ids, or an escaped
//! filter pattern) and never options. So a plugin can run nothing the user
//! did not already run: no grant is needed, and none is widened.
//!
//! [`judge`] reads the narrowed run's output: a run that selected no test
//! passes on most runners, and "passed when re-run alone" must never be
//! said of a run that ran nothing.

mod options;
mod verdict;

use std::path::{Component, Path};

use options::split_args;
pub use verdict::{Verdict, judge};

/// A test runner guard can narrow to single tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// pytest (`pytest`, `py.test`, `python -m pytest`).
    Pytest,
    /// `go test`.
    GoTest,
    /// `cargo test`.
    CargoTest,
    /// `cargo nextest run`.
    Nextest,
    /// Jest.
    Jest,
    /// Vitest.
    Vitest,
    /// Mocha.
    Mocha,
    /// Maven surefire (`mvn`, `./mvnw`).
    Maven,
    /// Gradle (`gradle`, `./gradlew`).
    Gradle,
    /// RSpec.
    Rspec,
    /// PHPUnit.
    Phpunit,
    /// `dotnet test`.
    Dotnet,
}

impl Runner {
    /// The runner's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Runner::Pytest => "pytest",
            Runner::GoTest => "go test",
            Runner::CargoTest => "cargo test",
            Runner::Nextest => "cargo nextest",
            Runner::Jest => "jest",
            Runner::Vitest => "vitest",
            Runner::Mocha => "mocha",
            Runner::Maven => "maven surefire",
            Runner::Gradle => "gradle",
            Runner::Rspec => "rspec",
            Runner::Phpunit => "phpunit",
            Runner::Dotnet => "dotnet test",
        }
    }
}

/// Why a command cannot be narrowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NarrowError {
    /// The wrapped command runs no test runner guard knows.
    #[error(
        "the wrapped command runs no test runner guard can narrow to single tests ({0}); supported: pytest, go test, cargo test, nextest, jest, vitest, mocha, maven, gradle, rspec, phpunit, dotnet test"
    )]
    UnknownRunner(String),
    /// No test names were given.
    #[error("no test names given")]
    NoTests,
    /// A test name could be taken for something else than a test.
    #[error("test name {name:?} refused: {why}")]
    BadName {
        /// The name as given.
        name: String,
        /// Why.
        why: &'static str,
    },
}

/// The narrowed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowed {
    /// The runner found in the command.
    pub runner: Runner,
    /// Program first.
    pub argv: Vec<String>,
}

/// At most this many tests are narrowed to.
pub const MAX_TESTS: usize = 200;
/// Longest test name accepted, in bytes.
pub const MAX_NAME: usize = 1024;

/// The file name of a program token (`./venv/bin/python` → `python`).
fn base(token: &str) -> &str {
    let name = token.rsplit(['/', '\\']).next().unwrap_or(token);
    name.strip_suffix(".exe")
        .or_else(|| name.strip_suffix(".cmd"))
        .or_else(|| name.strip_suffix(".bat"))
        .unwrap_or(name)
}

/// Where the program the launchers start sits in `argv`: the first token,
/// or after launchers whose grammar is known and which run their argument
/// as it is (`env VAR=…`, `timeout [opts] DURATION`, `uv|poetry|pipenv|pdm
/// run`, `bundle exec`, `npx|bunx [--yes]`, `pnpm|yarn exec`). Anything
/// else (a shell, `ssh`, `docker`, `sudo`, `xargs`, a script) is not a
/// launcher guard can see through: the command is not narrowed.
fn program_at(argv: &[String]) -> Option<usize> {
    let mut i = 0;
    loop {
        let token = argv.get(i)?;
        let next = argv.get(i + 1).map(String::as_str);
        match (base(token), next) {
            ("env", _) => {
                i += 1;
                while argv.get(i)?.contains('=') && !argv.get(i)?.starts_with('-') {
                    i += 1;
                }
            }
            ("timeout", _) => {
                i += 1;
                while argv.get(i)?.starts_with('-') {
                    i += 1;
                }
                // The duration.
                i += 1;
            }
            ("uv" | "poetry" | "pipenv" | "pdm", Some("run"))
            | ("bundle", Some("exec"))
            | ("pnpm" | "yarn", Some("exec")) => {
                i += 2;
                // Launcher options could name another program
                // (`uv run --with pytest …`): not seen through.
                if argv.get(i)?.starts_with('-') {
                    return None;
                }
            }
            ("npx" | "bunx", _) => {
                i += 1;
                while matches!(
                    argv.get(i)?.as_str(),
                    "--yes" | "-y" | "--no-install" | "--no"
                ) {
                    i += 1;
                }
                if argv.get(i)?.starts_with('-') {
                    return None;
                }
            }
            _ => return Some(i),
        }
    }
}

/// The runner `argv` starts (through [`program_at`]'s launchers) and the
/// index of its last token (the end of the prefix kept verbatim).
pub fn find_runner(argv: &[String]) -> Option<(Runner, usize)> {
    let i = program_at(argv)?;
    let token = |k: usize| argv.get(k).map(String::as_str);
    match base(argv.get(i)?) {
        "pytest" | "py.test" => Some((Runner::Pytest, i)),
        // `python -m pytest`: the module right after `-m`, nothing between.
        name if name.starts_with("python") && token(i + 1) == Some("-m") => match token(i + 2) {
            Some("pytest") => Some((Runner::Pytest, i + 2)),
            _ => None,
        },
        "go" if token(i + 1) == Some("test") => Some((Runner::GoTest, i + 1)),
        "cargo" => {
            // `cargo +nightly test`: skip toolchain overrides.
            let mut j = i + 1;
            while token(j).is_some_and(|t| t.starts_with('+')) {
                j += 1;
            }
            match token(j) {
                Some("test") => Some((Runner::CargoTest, j)),
                Some("nextest") if token(j + 1) == Some("run") => Some((Runner::Nextest, j + 1)),
                _ => None,
            }
        }
        "jest" => Some((Runner::Jest, i)),
        "vitest" => Some((Runner::Vitest, i)),
        "mocha" | "_mocha" => Some((Runner::Mocha, i)),
        "mvn" | "mvnw" => Some((Runner::Maven, i)),
        "gradle" | "gradlew" => Some((Runner::Gradle, i)),
        "rspec" => Some((Runner::Rspec, i)),
        "phpunit" => Some((Runner::Phpunit, i)),
        "dotnet" if token(i + 1) == Some("test") => Some((Runner::Dotnet, i + 1)),
        _ => None,
    }
}

/// Checks a test name is a name and nothing else.
fn check_name(name: &str) -> Result<(), NarrowError> {
    let bad = |why| {
        Err(NarrowError::BadName {
            name: name.chars().take(200).collect(),
            why,
        })
    };
    if name.trim().is_empty() {
        return bad("empty");
    }
    if name != name.trim() {
        return bad("leading or trailing whitespace");
    }
    if name.len() > MAX_NAME {
        return bad("longer than 1 KiB");
    }
    if name.chars().any(char::is_control) {
        return bad("control characters");
    }
    if name.starts_with(['-', '@', '+', '~']) {
        return bad("it would be read as an option or an argument file");
    }
    Ok(())
}

/// Checks a test id that names a file: relative, inside the working directory.
fn check_path(name: &str, path: &str) -> Result<(), NarrowError> {
    let p = Path::new(path);
    let escapes = p.is_absolute()
        || path.contains('\\')
        || p.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::RootDir | Component::Prefix(_)
            )
        });
    if escapes {
        return Err(NarrowError::BadName {
            name: name.chars().take(200).collect(),
            why: "its file must be a relative path inside the working directory",
        });
    }
    Ok(())
}

/// A regex-quoted literal (the subset every runner's regex dialect — RE2,
/// JavaScript, PCRE — reads the same way).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if "\\^$.|?*+()[]{}/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `argv` narrowed to `tests`.
pub fn narrow(argv: &[String], tests: &[String]) -> Result<Narrowed, NarrowError> {
    if tests.is_empty() {
        return Err(NarrowError::NoTests);
    }
    if tests.len() > MAX_TESTS {
        return Err(NarrowError::BadName {
            name: format!("{} names", tests.len()),
            why: "more than 200 tests",
        });
    }
    for t in tests {
        check_name(t)?;
    }
    let shown = argv.join(" ").chars().take(200).collect::<String>();
    let (runner, end) = find_runner(argv).ok_or(NarrowError::UnknownRunner(shown))?;
    let mut out: Vec<String> = argv[..=end].to_vec();
    let rest = &argv[end + 1..];
    let alternation = |names: &mut dyn Iterator<Item = String>| {
        format!(
            "^(?:{})$",
            names.map(|n| quote(&n)).collect::<Vec<_>>().join("|")
        )
    };
    match runner {
        Runner::Pytest | Runner::Rspec => {
            let (options, _) = split_args(runner, rest);
            out.extend(options);
            // Whatever follows is an id, never an option (and an option of
            // the user's whose value guard did not know fails loudly
            // instead of taking an id as its value).
            out.push("--".into());
            for t in tests {
                let id = t.strip_prefix("./").unwrap_or(t);
                check_name(id)?;
                let file = match runner {
                    Runner::Pytest => id.split("::").next().unwrap_or(id),
                    _ => id.split([':', '[']).next().unwrap_or(id),
                };
                check_path(t, file)?;
                out.push(id.to_string());
            }
        }
        Runner::GoTest => {
            let (options, packages) = split_args(runner, rest);
            out.extend(options);
            // Sub-tests (`TestA/case`) are selected through their parent.
            let mut tops: Vec<String> = tests
                .iter()
                .map(|t| t.split('/').next().unwrap_or(t).to_string())
                .collect();
            tops.dedup();
            out.extend(["-count=1".to_string(), "-v".into(), "-run".into()]);
            out.push(alternation(&mut tops.into_iter()));
            out.extend(packages);
        }
        Runner::CargoTest | Runner::Nextest => {
            let split = rest.iter().position(|t| t == "--").unwrap_or(rest.len());
            let (options, _) = split_args(runner, &rest[..split]);
            out.extend(options);
            out.push("--".into());
            if split < rest.len() {
                let (harness, _) = split_args(runner, &rest[split + 1..]);
                out.extend(harness);
            }
            out.push("--exact".into());
            out.extend(tests.iter().cloned());
        }
        Runner::Jest | Runner::Mocha => {
            let (options, files) = split_args(runner, rest);
            out.extend(options);
            out.extend(files);
            // Jest reports `Suite › test`; its full name joins them with spaces.
            let mut names = tests
                .iter()
                .map(|t| t.split(" › ").collect::<Vec<_>>().join(" "));
            out.push(
                if runner == Runner::Jest {
                    "--testNamePattern"
                } else {
                    "--grep"
                }
                .into(),
            );
            out.push(alternation(&mut names));
        }
        Runner::Vitest => {
            let (options, positionals) = split_args(runner, rest);
            let skip_mode = usize::from(matches!(
                positionals.first().map(String::as_str),
                Some("run" | "watch" | "dev")
            ));
            // Never watch: the re-run must end.
            out.push("run".into());
            out.extend(options);
            let mut files = Vec::new();
            let mut names = Vec::new();
            for t in tests {
                // `src/a.test.ts > suite > name`: the file, then the titles.
                let mut parts: Vec<&str> = t.split(" > ").collect();
                if parts.len() > 1 && parts[0].contains(['.', '/']) {
                    let file = parts.remove(0).trim();
                    check_name(file)?;
                    check_path(t, file)?;
                    files.push(file.to_string());
                }
                names.push(parts.join(" "));
            }
            if files.is_empty() {
                // No file in the names: keep the user's own filters.
                out.extend(positionals.into_iter().skip(skip_mode));
            }
            files.dedup();
            out.extend(files);
            out.push("--testNamePattern".into());
            out.push(alternation(&mut names.into_iter()));
        }
        Runner::Maven => {
            let (options, goals) = split_args(runner, rest);
            out.extend(options);
            let ids: Vec<String> = tests
                .iter()
                .map(|t| match t.split_once('#') {
                    Some(_) => t.clone(),
                    // `com.x.FooTest.testBar`: a lower-case last part is a method.
                    None => match t.rsplit_once('.') {
                        Some((class, method)) if method.starts_with(char::is_lowercase) => {
                            format!("{class}#{method}")
                        }
                        _ => t.clone(),
                    },
                })
                .collect();
            if ids.iter().any(|t| t.contains([',', ' '])) {
                return Err(NarrowError::BadName {
                    name: ids.join(","),
                    why: "a surefire test id has no commas or spaces",
                });
            }
            out.push(format!("-Dtest={}", ids.join(",")));
            out.push("-Dsurefire.failIfNoSpecifiedTests=false".into());
            out.extend(if goals.is_empty() {
                vec!["test".to_string()]
            } else {
                goals
            });
        }
        Runner::Gradle => {
            let (options, tasks) = split_args(runner, rest);
            out.extend(options);
            out.extend(if tasks.is_empty() {
                vec!["test".to_string()]
            } else {
                tasks
            });
            for t in tests {
                out.push("--tests".into());
                // Gradle reports `FooTest > testBar`; its filter wants `FooTest.testBar`.
                out.push(t.split(" > ").collect::<Vec<_>>().join("."));
            }
        }
        Runner::Phpunit => {
            let (options, files) = split_args(runner, rest);
            out.extend(options);
            out.push("--filter".into());
            out.push(format!(
                "/{}/",
                alternation(&mut tests.iter().cloned())
                    .trim_start_matches('^')
                    .trim_end_matches('$')
            ));
            out.extend(files);
        }
        Runner::Dotnet => {
            if let Some(t) = tests
                .iter()
                .find(|t| t.contains(['|', '&', '=', '!', '~', '(', ')']))
            {
                return Err(NarrowError::BadName {
                    name: t.clone(),
                    why: "a dotnet test name has no filter operators",
                });
            }
            let (options, projects) = split_args(runner, rest);
            out.extend(options);
            out.extend(projects);
            out.push("--filter".into());
            out.push(
                tests
                    .iter()
                    .map(|t| format!("FullyQualifiedName={t}"))
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    Ok(Narrowed { runner, argv: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn n(cmd: &str, tests: &[&str]) -> Vec<String> {
        let tests: Vec<String> = tests.iter().map(|s| s.to_string()).collect();
        narrow(&v(cmd), &tests).unwrap().argv
    }

    #[test]
    fn the_users_interpreter_and_options_are_kept_and_paths_replaced() {
        assert_eq!(
            n(
                "./venv/bin/python -m pytest -q -p no:cacheprovider -k slow tests",
                &["tests/test_a.py::test_x[1]"]
            ),
            v("./venv/bin/python -m pytest -q -p no:cacheprovider -- tests/test_a.py::test_x[1]")
        );
        assert_eq!(
            n("bundle exec rspec spec", &["spec/a_spec.rb:12"]),
            v("bundle exec rspec -- spec/a_spec.rb:12")
        );
    }

    #[test]
    fn go_cargo_and_js_runners_get_their_own_filters() {
        assert_eq!(
            n(
                "go test -race -run Old ./...",
                &["TestFlaky/case_1", "TestOther"]
            ),
            v("go test -race -count=1 -v -run ^(?:TestFlaky|TestOther)$ ./...")
        );
        assert_eq!(
            n("cargo test --workspace -- --test-threads=1", &["a::b"]),
            v("cargo test --workspace -- --test-threads=1 --exact a::b")
        );
        assert_eq!(
            n("cargo +nightly test filter", &["x"]),
            v("cargo +nightly test -- --exact x")
        );
        let jest = n("npx jest --ci", &["Suite › does a.b"]);
        assert_eq!(jest[..3], v("npx jest --ci")[..]);
        assert_eq!(
            jest[3..],
            [
                "--testNamePattern".to_string(),
                r"^(?:Suite does a\.b)$".into()
            ]
        );
        let vitest = n("npx vitest", &["src/a.test.ts > suite > works"]);
        assert_eq!(
            vitest,
            [
                "npx",
                "vitest",
                "run",
                "src/a.test.ts",
                "--testNamePattern",
                "^(?:suite works)$"
            ]
        );
        assert_eq!(
            n(
                "./mvnw -B -Dtest=Old verify",
                &["com.x.FooTest#testBar", "com.x.BazTest.testQux"]
            ),
            v(
                "./mvnw -B -Dtest=com.x.FooTest#testBar,com.x.BazTest#testQux -Dsurefire.failIfNoSpecifiedTests=false verify"
            )
        );
        assert_eq!(
            n("./gradlew test", &["FooTest > testBar"]),
            v("./gradlew test --tests FooTest.testBar")
        );
    }

    #[test]
    fn names_never_become_options_files_outside_or_shell_code() {
        for bad in [
            "--co",
            "-p evil",
            "@args.txt",
            "/etc/x.py::t",
            "../x.py::t",
            "a\nb",
        ] {
            assert!(
                matches!(
                    narrow(&v("pytest tests"), &[bad.to_string()]),
                    Err(NarrowError::BadName { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            narrow(&v("bash -c pytest"), &["t.py::x".into()]),
            Err(NarrowError::UnknownRunner(_))
        ));
        assert!(matches!(
            narrow(&v("make test"), &["t".into()]),
            Err(NarrowError::UnknownRunner(_))
        ));
        assert!(matches!(
            narrow(&v("python3 -c print(1)"), &["t".into()]),
            Err(NarrowError::UnknownRunner(_))
        ));
        // Regex metacharacters are quoted, not interpreted.
        let go = n("go test ./...", &["Test.*"]);
        assert!(go.contains(&r"^(?:Test\.\*)$".to_string()), "{go:?}");
    }

    #[test]
    fn a_run_that_selected_nothing_is_not_a_pass() {
        assert_eq!(
            judge(Runner::Pytest, 5, "no tests ran in 0.01s"),
            Verdict::NothingRan
        );
        assert_eq!(
            judge(Runner::Pytest, 0, "1 passed in 0.01s"),
            Verdict::Passed
        );
        assert_eq!(
            judge(Runner::GoTest, 0, "ok  \tx\t0.1s [no tests to run]"),
            Verdict::NothingRan
        );
        assert_eq!(
            judge(
                Runner::GoTest,
                0,
                "=== RUN   TestA\n--- PASS: TestA (0.00s)\nok x"
            ),
            Verdict::Passed
        );
        assert_eq!(
            judge(
                Runner::CargoTest,
                0,
                "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 9 filtered out"
            ),
            Verdict::NothingRan
        );
        assert_eq!(
            judge(
                Runner::CargoTest,
                101,
                "test result: FAILED. 0 passed; 1 failed; 0 ignored"
            ),
            Verdict::Failed
        );
        assert_eq!(
            judge(Runner::Jest, 0, "Tests:       1 skipped, 1 passed, 2 total"),
            Verdict::Passed
        );
        assert_eq!(
            judge(Runner::Jest, 1, "No tests found, exiting with code 1"),
            Verdict::NothingRan
        );
    }
}
