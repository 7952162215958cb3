//! guard's standard healing strategies, as a `healer-plugin` component.
//!
//! Every action goes through guard's capability interfaces, so what this
//! healer may do is exactly what guard.toml grants it, and every action is
//! audited by the host:
//!
//! - `retry-with-backoff` — network, timeout and infrastructure failures:
//!   re-run the job (guard applies the backoff, budgets and breakers).
//! - `clear-cache-and-retry` — dependency failures: delete the CI caches of
//!   the package manager involved (and, for local commands, run its cache
//!   clean command when granted), then re-run.
//! - `rerun-failed-tests` — test failures: re-run only the failed tests;
//!   passing in isolation means *flaky*. Under `guard exec` the user's own
//!   command is re-run narrowed to them (`exec.rerun-tests`, no grant);
//!   elsewhere the runner that reported them, where `exec:<runner>` is granted.
//! - `reduce-pressure` — resource exhaustion: re-run with lower parallelism
//!   and larger heaps where the tools honour environment variables.
//! - `diagnose` — build, permission and anything else deterministic: annotate
//!   the job with the diagnosis and its evidence; never re-run.

use guard_sdk::{Category, Effect, Error, Finding, Healer, Job, PluginInfo, Report, Strategy};

/// Only ever named as a type: `healer!` exports its `Healer` impl.
#[allow(dead_code)]
struct StdHealer;

fn strategy(name: &str, categories: &[Category], retries: bool, description: &str) -> Strategy {
    Strategy {
        name: name.into(),
        categories: categories.to_vec(),
        retries,
        description: description.into(),
    }
}

fn describe(e: &Error) -> String {
    match e {
        Error::Denied(m) => format!("denied: {m}"),
        Error::NotFound(m) => format!("not found: {m}"),
        Error::Invalid(m) => format!("invalid: {m}"),
        Error::Unavailable(m) => format!("unavailable: {m}"),
        Error::Limited(m) => format!("limited: {m}"),
    }
}

fn facts<'a>(finding: &'a Finding, key: &str) -> impl Iterator<Item = &'a str> {
    finding
        .facts
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn rerun(summary: String, mut actions: Vec<String>) -> Result<Report, Error> {
    guard_sdk::ci::rerun_job(false)?;
    actions.push("re-ran the job".into());
    Ok(Report {
        summary,
        actions,
        effect: Effect::Rerun,
        facts: Vec::new(),
    })
}

/// The package manager a dependency finding is about, from its rule id.
fn package_manager(rule: &str) -> Option<&'static str> {
    let prefix = rule.split('.').next().unwrap_or_default();
    Some(match prefix {
        "npm" | "node" | "node-gyp" => "npm",
        "yarn" => "yarn",
        "pnpm" => "pnpm",
        "pip" | "python" | "poetry" | "uv" => "pip",
        "cargo" => "cargo",
        "maven" => "maven",
        "gradle" => "gradle",
        "go" => "go",
        "bundler" | "ruby" => "bundler",
        "composer" => "composer",
        "nuget" => "nuget",
        _ => return None,
    })
}

/// Local cache clean commands, run only where `exec:<program>` is granted.
fn clean_command(pm: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match pm {
        "npm" => ("npm", &["cache", "clean", "--force"]),
        "yarn" => ("yarn", &["cache", "clean"]),
        "pnpm" => ("pnpm", &["store", "prune"]),
        "pip" => ("pip", &["cache", "purge"]),
        "go" => ("go", &["clean", "-modcache"]),
        "gradle" => ("gradle", &["--stop"]),
        _ => return None,
    })
}

/// The command re-running only `tests` of `framework`, as (program, args) candidates in order.
fn rerun_commands(framework: &str, tests: &[&str]) -> Vec<(&'static str, Vec<String>)> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match framework {
        "pytest" => {
            let mut via_python = owned(&["-m", "pytest", "-q", "-p", "no:cacheprovider"]);
            via_python.extend(owned(tests));
            let mut direct = owned(&["-q", "-p", "no:cacheprovider"]);
            direct.extend(owned(tests));
            vec![("python3", via_python), ("pytest", direct)]
        }
        "go-test" => vec![(
            "go",
            vec![
                "test".into(),
                "-count=1".into(),
                "-run".into(),
                format!("^({})$", tests.join("|")),
                "./...".into(),
            ],
        )],
        "cargo-test" => {
            // One filter per run is all cargo takes; several names share a run
            // only when they share a prefix, so re-run the first and say so.
            vec![(
                "cargo",
                vec![
                    "test".into(),
                    tests[0].to_string(),
                    "--".into(),
                    "--exact".into(),
                ],
            )]
        }
        "jest" | "vitest" => {
            let pattern = tests
                .iter()
                .map(|t| t.rsplit(" › ").next().unwrap_or(t).to_string())
                .collect::<Vec<_>>()
                .join("|");
            vec![("npx", vec![framework.to_string(), "-t".into(), pattern])]
        }
        "junit" => vec![(
            "mvn",
            vec![
                "-q".into(),
                format!("-Dtest={}", tests.join(",")),
                "-DfailIfNoTests=false".into(),
                "test".into(),
            ],
        )],
        "gradle" => {
            let mut args = vec!["test".to_string()];
            for t in tests {
                args.push("--tests".into());
                args.push(t.replace(" > ", "."));
            }
            vec![("gradle", args)]
        }
        "rspec" => {
            let mut args = vec![];
            args.extend(owned(tests));
            vec![("rspec", args)]
        }
        _ => Vec::new(),
    }
}

fn rerun_failed_tests(finding: &Finding) -> Result<Report, Error> {
    let framework = facts(finding, "framework")
        .next()
        .unwrap_or_default()
        .to_string();
    let tests: Vec<&str> = facts(finding, "test").collect();
    if tests.is_empty() {
        return Err(Error::Unavailable(
            "the finding names no failed tests, so they cannot be re-run alone".into(),
        ));
    }
    let mut actions = Vec::new();
    // The user's own command first: same interpreter, same options.
    if let Some(wrapped) = guard_sdk::exec::wrapped_command() {
        let names: Vec<String> = tests.iter().map(|t| t.to_string()).collect();
        match guard_sdk::exec::rerun_tests(&names) {
            Ok(rerun) => {
                let shown = rerun.command.join(" ");
                return Ok(isolation_report(
                    &tests,
                    &shown,
                    rerun.output.status,
                    actions,
                ));
            }
            // guard cannot narrow this command: try the runner itself.
            Err(e @ (Error::Invalid(_) | Error::Unavailable(_))) => {
                actions.push(format!("{}: {}", wrapped.join(" "), describe(&e)))
            }
            // Denied, ran nothing, or a limit: nothing more to learn here.
            Err(e) => return Err(e),
        }
    }
    let candidates = rerun_commands(&framework, &tests);
    if candidates.is_empty() {
        return Err(Error::Unavailable(format!(
            "re-running single tests of {framework:?} is not supported"
        )));
    }
    let mut last_error = None;
    for (program, args) in candidates {
        match guard_sdk::exec::run(program, &args) {
            Ok(out) => {
                let shown = format!("{program} {}", args.join(" "));
                return Ok(isolation_report(&tests, &shown, out.status, actions));
            }
            // Try the next way of running the same tests.
            Err(e @ (Error::NotFound(_) | Error::Denied(_))) => {
                actions.push(format!("{program}: {}", describe(&e)));
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Unavailable("no way to re-run the tests".into())))
}

/// The report of re-running `tests` alone with `command`, which exited `status`.
fn isolation_report(
    tests: &[&str],
    command: &str,
    status: i32,
    mut actions: Vec<String>,
) -> Report {
    actions.push(format!("ran {command} (exit {status})"));
    let passed = status == 0;
    let key = if passed { "flaky-test" } else { "failed-test" };
    let facts = tests
        .iter()
        .map(|t| (key.to_string(), t.to_string()))
        .collect();
    let (effect, summary) = if passed {
        (
            Effect::PassedInIsolation,
            format!(
                "flaky: {} failed, then passed when re-run alone",
                tests.join(", ")
            ),
        )
    } else {
        (
            Effect::FailedInIsolation,
            format!(
                "genuine failure: {} failed again when re-run alone",
                tests.join(", ")
            ),
        )
    };
    Report {
        summary,
        actions,
        effect,
        facts,
    }
}

fn clear_cache_and_retry(finding: &Finding) -> Result<Report, Error> {
    let pm = package_manager(&finding.rule);
    let mut actions = Vec::new();
    let prefix = pm.unwrap_or("");
    match guard_sdk::ci::clear_caches(prefix) {
        Ok(n) => actions.push(format!("deleted {n} CI caches with key prefix {prefix:?}")),
        Err(e) => actions.push(format!("CI caches: {}", describe(&e))),
    }
    if let Some((program, args)) = pm.and_then(clean_command) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match guard_sdk::exec::run(program, &args) {
            Ok(out) => actions.push(format!(
                "ran {program} {} (exit {})",
                args.join(" "),
                out.status
            )),
            Err(e) => actions.push(format!("{program}: {}", describe(&e))),
        }
    }
    rerun(
        format!(
            "cleared {} caches and re-ran ({})",
            pm.unwrap_or("package"),
            finding.failure_type
        ),
        actions,
    )
}

fn reduce_pressure(finding: &Finding) -> Result<Report, Error> {
    // Variables the common tools honour; guard keeps an allow-list of them.
    let env: Vec<(String, String)> = match finding.failure_type.as_str() {
        "js-heap-exhausted" => vec![("NODE_OPTIONS".into(), "--max-old-space-size=6144".into())],
        "java-heap-exhausted" | "jvm-memory" => {
            vec![
                ("MAVEN_OPTS".into(), "-Xmx3g".into()),
                (
                    "GRADLE_OPTS".into(),
                    "-Xmx3g -Dorg.gradle.workers.max=1".into(),
                ),
            ]
        }
        _ => vec![
            ("CARGO_BUILD_JOBS".into(), "1".into()),
            ("MAKEFLAGS".into(), "-j1".into()),
            ("CMAKE_BUILD_PARALLEL_LEVEL".into(), "1".into()),
            ("GOMAXPROCS".into(), "1".into()),
            ("PYTEST_XDIST_AUTO_NUM_WORKERS".into(), "1".into()),
        ],
    };
    let shown = env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    match guard_sdk::ci::rerun_job_with_env(&env) {
        Ok(()) => Ok(Report {
            summary: format!("re-ran with less pressure: {shown}"),
            actions: vec![format!("re-ran the job with {shown}")],
            effect: Effect::Rerun,
            facts: Vec::new(),
        }),
        // Platforms that cannot change a re-run's environment get a plain re-run.
        Err(Error::Unavailable(why)) => rerun(
            format!(
                "re-ran ({}; could not lower pressure: {why})",
                finding.failure_type
            ),
            Vec::new(),
        ),
        Err(e) => Err(e),
    }
}

fn diagnose(job: &Job, finding: &Finding) -> Result<Report, Error> {
    let title = format!(
        "{} failure ({}) — not retried",
        finding.category.name(),
        finding.failure_type
    );
    let mut body = format!(
        "**{}** (rule `{}`, confidence {:.2})\n\n",
        finding.failure_type, finding.rule, finding.confidence
    );
    for e in finding.evidence.iter().take(5) {
        body.push_str(&format!("    line {}: {}\n", e.line, e.text));
    }
    body.push_str(&format!(
        "\nA retry cannot fix a {} failure, so {} was not re-run.\n",
        finding.category.name(),
        job.job_name
    ));
    let mut actions = Vec::new();
    match guard_sdk::ci::annotate(&title, &body) {
        Ok(()) => actions.push("annotated the job with the diagnosis".into()),
        Err(e) => actions.push(format!("annotation: {}", describe(&e))),
    }
    Ok(Report {
        summary: title,
        actions,
        effect: Effect::Reported,
        facts: Vec::new(),
    })
}

impl Healer for StdHealer {
    fn info() -> PluginInfo {
        guard_sdk::info(
            "heal-std",
            env!("CARGO_PKG_VERSION"),
            "Standard strategies: retry with backoff, clear caches, rerun failed tests, reduce pressure, diagnose",
        )
    }

    fn strategies() -> Vec<Strategy> {
        use Category::*;
        vec![
            strategy(
                "retry-with-backoff",
                &[Network, Timeout, Resource, Other],
                true,
                "Re-run the job after a backoff delay",
            ),
            strategy(
                "clear-cache-and-retry",
                &[Dependency],
                true,
                "Delete the package manager's caches, then re-run",
            ),
            strategy(
                "rerun-failed-tests",
                &[Test, Timeout],
                false,
                "Re-run only the failed tests; passing alone means flaky",
            ),
            strategy(
                "reduce-pressure",
                &[Resource],
                true,
                "Re-run with lower parallelism and larger heaps",
            ),
            strategy(
                "diagnose",
                &[
                    Build, Permission, Test, Dependency, Other, Network, Timeout, Resource,
                ],
                false,
                "Annotate the job with the diagnosis; never re-run",
            ),
        ]
    }

    fn heal(strategy: &str, job: &Job, finding: &Finding) -> Result<Report, Error> {
        match strategy {
            "retry-with-backoff" => rerun(
                format!("re-ran after {} ({})", finding.failure_type, finding.rule),
                Vec::new(),
            ),
            "clear-cache-and-retry" => clear_cache_and_retry(finding),
            "rerun-failed-tests" => rerun_failed_tests(finding),
            "reduce-pressure" => reduce_pressure(finding),
            "diagnose" => diagnose(job, finding),
            other => Err(Error::Invalid(format!(
                "heal-std has no strategy {other:?}"
            ))),
        }
    }
}

guard_sdk::healer!(StdHealer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerun_commands_target_only_the_failed_tests() {
        let c = rerun_commands("pytest", &["tests/a.py::test_x"]);
        assert_eq!(c[0].0, "python3");
        assert_eq!(c[0].1.last().unwrap(), "tests/a.py::test_x");
        let go = rerun_commands("go-test", &["TestA", "TestB"]);
        assert_eq!(go[0].1[3], "^(TestA|TestB)$");
        assert!(rerun_commands("unknown", &["x"]).is_empty());
    }

    #[test]
    fn package_managers_from_rule_ids() {
        assert_eq!(package_manager("npm.integrity"), Some("npm"));
        assert_eq!(package_manager("cache.corrupt-archive"), None);
    }
}
