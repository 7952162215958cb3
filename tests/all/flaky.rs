//! Flaky tests caught out of the box: `guard exec -- <the runner's usual
//! command>` on a suite where one test fails on its first run only ends
//! `flaky`, exit 0, the test named — and the re-run was the user's own
//! program narrowed to that test, with no grant in guard.toml.
//!
//! Each runner is used where it is installed (`.ci/run` installs all of
//! them and sets `GUARD_REQUIRE_RUNNERS=1`, so there none may be missing).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::guard_cli;

/// Whether `program args…` runs here; without it the test is skipped, or
/// fails where the runners are required.
fn available(what: &str, program: &str, args: &[&str], dir: &Path) -> bool {
    let ok = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("GUARD_REQUIRE_RUNNERS").is_none(),
            "{what} is required here (GUARD_REQUIRE_RUNNERS is set)"
        );
        eprintln!("skipped: {what} is not installed");
    }
    ok
}

/// Runs `guard exec` with no configuration (no grants) on `command` in
/// `dir`; returns (exit code, report, stderr).
async fn exec(dir: &Path, command: &[&str]) -> (u8, serde_json::Value, String) {
    let data = dir.join(".guard-data");
    let report = dir.join(".guard-report.json");
    let cfg = dir.join(".guard.toml");
    // Fast backoff only; nothing granted.
    std::fs::write(&cfg, "[heal]\nbackoff_base_secs = 1\n").unwrap();
    let mut args = vec![
        "--data",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "exec",
        "--workdir",
        dir.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--",
    ];
    args.extend_from_slice(command);
    let (code, _, err) = guard_cli(&args).await;
    let r = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    (code, r, err)
}

/// The common verdict: flaky, exit 0, the test named, re-run with `program`
/// (the wrapped one) narrowed to it, and no allow-listed program run.
fn assert_flaky(code: u8, r: &serde_json::Value, err: &str, test: &str, program: &str) {
    assert_eq!(r["outcome"], "flaky", "{r:#}\n{err}");
    assert_eq!(code, 0, "a flaky-only failure exits 0 by default\n{err}");
    assert_eq!(r["flaky_tests"], serde_json::json!([test]), "{r:#}");
    let first = &r["attempts"][0];
    assert_eq!(first["outcome"], "flaky");
    assert_eq!(first["strategy"], "rerun-failed-tests");
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1, "no full re-run");
    let actions = first["actions"].to_string();
    assert!(
        actions.contains(&format!("ran {program} ")) && actions.contains("(exit 0)"),
        "the re-run used the wrapped program: {actions}"
    );
    assert!(!actions.contains("denied"), "{actions}");
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A virtualenv in `dir/venv` with pytest (the system's, or installed).
fn venv(dir: &Path) -> Option<PathBuf> {
    let venv = dir.join("venv");
    if !available(
        "python3 -m venv",
        "python3",
        &["-m", "venv", "--system-site-packages", venv.to_str()?],
        dir,
    ) {
        return None;
    }
    let python = venv.join("bin/python");
    let has_pytest = |p: &Path| {
        Command::new(p)
            .args(["-m", "pytest", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has_pytest(&python) {
        let _ = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "pytest==8.4.2"])
            .output();
    }
    available(
        "pytest in a virtualenv",
        python.to_str()?,
        &["-m", "pytest", "--version"],
        dir,
    )
    .then_some(python)
}

#[tokio::test]
async fn pytest_in_a_virtualenv() {
    let dir = tempfile::tempdir().unwrap();
    if venv(dir.path()).is_none() {
        return;
    }
    write(
        dir.path(),
        "tests/test_flaky.py",
        "import os\n\ndef test_sometimes():\n    marker = os.path.join(os.path.dirname(__file__), '.ran')\n    if not os.path.exists(marker):\n        open(marker, 'w').close()\n        assert False, 'fails on the first run only'\n\ndef test_stable():\n    assert True\n",
    );
    let (code, r, err) = exec(
        dir.path(),
        &["./venv/bin/python", "-m", "pytest", "-q", "tests"],
    )
    .await;
    assert_flaky(
        code,
        &r,
        &err,
        "tests/test_flaky.py::test_sometimes",
        "./venv/bin/python -m pytest -q -- tests/test_flaky.py::test_sometimes",
    );
}

#[tokio::test]
async fn go_test() {
    let dir = tempfile::tempdir().unwrap();
    if !available("go", "go", &["version"], dir.path()) {
        return;
    }
    write(
        dir.path(),
        "go.mod",
        "module example.com/flaky\n\ngo 1.18\n",
    );
    write(
        dir.path(),
        "flaky_test.go",
        "package flaky\n\nimport (\n\t\"os\"\n\t\"testing\"\n)\n\nfunc TestSometimes(t *testing.T) {\n\tif _, err := os.Stat(\".ran\"); err != nil {\n\t\t_ = os.WriteFile(\".ran\", nil, 0o644)\n\t\tt.Fatal(\"fails on the first run only\")\n\t}\n}\n\nfunc TestStable(t *testing.T) {}\n",
    );
    let (code, r, err) = exec(dir.path(), &["go", "test", "./..."]).await;
    assert_flaky(code, &r, &err, "TestSometimes", "go test -count=1 -v -run");
}

#[tokio::test]
async fn cargo_test() {
    let dir = tempfile::tempdir().unwrap();
    if !available("cargo", "cargo", &["--version"], dir.path()) {
        return;
    }
    write(
        dir.path(),
        "Cargo.toml",
        "[package]\nname = \"flaky\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    );
    write(
        dir.path(),
        "src/lib.rs",
        "#[cfg(test)]\nmod tests {\n    #[test]\n    fn sometimes() {\n        let marker = std::path::Path::new(env!(\"CARGO_MANIFEST_DIR\")).join(\".ran\");\n        if !marker.exists() {\n            std::fs::write(&marker, \"\").unwrap();\n            panic!(\"fails on the first run only\");\n        }\n    }\n\n    #[test]\n    fn stable() {}\n}\n",
    );
    // Its own target directory: the suite's may be locked by this build.
    let (code, r, err) = exec(
        dir.path(),
        &["cargo", "test", "--offline", "--target-dir", "target"],
    )
    .await;
    assert_flaky(
        code,
        &r,
        &err,
        "tests::sometimes",
        "cargo test --offline --target-dir target -- --exact tests::sometimes",
    );
}

#[tokio::test]
async fn jest_through_npx() {
    let dir = tempfile::tempdir().unwrap();
    let modules = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/runners/js/node_modules"
    ));
    if !modules.join(".bin/jest").exists() {
        assert!(
            std::env::var_os("GUARD_REQUIRE_RUNNERS").is_none(),
            "jest is required here: npm ci in tests/runners/js"
        );
        eprintln!("skipped: jest is not installed (npm ci in tests/runners/js)");
        return;
    }
    if !available("npx", "npx", &["--version"], dir.path()) {
        return;
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(&modules, dir.path().join("node_modules")).unwrap();
    write(
        dir.path(),
        "package.json",
        "{\"name\": \"flaky\", \"private\": true}\n",
    );
    write(
        dir.path(),
        "flaky.test.js",
        "const fs = require('fs');\nconst path = require('path');\n\ndescribe('checkout', () => {\n  test('applies the discount', () => {\n    const marker = path.join(__dirname, '.ran');\n    if (!fs.existsSync(marker)) {\n      fs.writeFileSync(marker, '');\n      expect(1 + 1).toBe(3);\n    }\n  });\n  test('is stable', () => {\n    expect(true).toBe(true);\n  });\n});\n",
    );
    let (code, r, err) = exec(dir.path(), &["npx", "jest", "--ci"]).await;
    assert_flaky(
        code,
        &r,
        &err,
        "checkout › applies the discount",
        "npx jest --ci --testNamePattern",
    );
}

/// The daemon heals a flaky test failure of a platform job with the same
/// strategy, the same outcome word and the same statistics as `guard exec`.
#[tokio::test]
async fn the_daemon_reports_a_flaky_test_as_guard_exec_does() {
    use guard::config::PluginConfig;
    use guard::heal::{Outcome, stats};
    use guard::model::Category;

    crate::heal::ensure_pytest();
    // The daemon has no wrapped command: the runner must be granted.
    let fake = crate::fake::Fake::start(false).await;
    let mut config = crate::daemon::config_for(&fake);
    config.plugins.insert(
        "heal-std".into(),
        PluginConfig {
            grants: vec!["ci.rerun-job".into(), "exec:python3".into()],
            ..PluginConfig::default()
        },
    );
    let runtime = crate::util::runtime_with(config.clone(), &[]).await;
    let daemon = guard::daemon::Daemon::new(
        runtime,
        guard::platform::Platforms::from_config(&config).unwrap(),
        false,
    )
    .unwrap();
    daemon.start();
    let app = guard::server::router(daemon.clone());
    let h = crate::daemon::Harness { daemon, app, fake };
    // The test the job's log names passes when run alone here.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "test_flaky.py",
        "def test_sometimes():\n    assert True\n",
    );
    let test = format!("{}/test_flaky.py::test_sometimes", dir.path().display());
    h.fake.set_log(
        "289782451",
        &format!(
            "Run python -m pytest -q\nF.                                                                       [100%]\n=================================== FAILURES ===================================\nE       AssertionError: fails on the first run only\n=========================== short test summary info ============================\nFAILED {test} - AssertionError: fails on the first run only\n1 failed, 1 passed in 0.03s\nError: Process completed with exit code 1.\n"
        ),
    );
    let body = crate::daemon::failed_job(289782451, "failure");
    let (_, v) = h
        .github("workflow_job", "d-flaky", &body, crate::daemon::SECRET)
        .await;
    let r = h.record(crate::daemon::queued_id(&v)).await;
    assert_eq!(r.outcome, Outcome::Flaky.as_str(), "{r:?}");
    assert_eq!(r.strategy.as_deref(), Some("rerun-failed-tests"));
    assert_eq!(r.flaky_tests, vec![test]);
    let o = stats::get(h.daemon.runtime.db(), Category::Test, "rerun-failed-tests").unwrap();
    assert_eq!(
        (o.successes, o.failures),
        (1, 0),
        "as guard exec records it"
    );
    assert!(
        h.fake.seen().iter().all(|s| !s.path.contains("rerun")),
        "a flaky test is reported, not re-run"
    );
}
