//! `guard exec` healing real commands on this machine, with the standard
//! healer component and the local backend.

use std::path::Path;
use std::time::Duration;

use crate::util::guard_cli;

fn config(dir: &Path, extra: &str) -> String {
    let path = dir.join("guard.toml");
    std::fs::write(&path, format!("[heal]\nbackoff_base_secs = 1\n{extra}")).unwrap();
    path.to_str().unwrap().to_string()
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn a_connection_refused_twice_then_served_is_healed_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on yet; a "service" opens it once the client
    // has been refused twice (it counts its attempts in a file), well before
    // the third attempt that the 2 s backoff delays.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let counter = dir.path().join("attempts");
    let watched = counter.clone();
    let server = std::thread::spawn(move || {
        while std::fs::read(&watched).map(|b| b.len()).unwrap_or(0) < 2 {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let _ = listener.accept();
    });
    let client = format!(
        "import socket; open({:?}, 'a').write('x'); socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')",
        counter.to_str().unwrap()
    );
    let rep = dir.path().join("report.json");
    let data = dir.path().join("data");
    let (code, out, err) = guard_cli(&[
        "--data",
        data.to_str().unwrap(),
        "--config",
        &config(dir.path(), ""),
        "exec",
        "--report",
        rep.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        &client,
    ])
    .await;
    server.join().unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("connected"),
        "the command's output streams through: {out}"
    );
    assert!(
        err.contains("ConnectionRefusedError"),
        "so does its stderr: {err}"
    );
    let r = report(&rep);
    assert_eq!(r["outcome"], "healed");
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{r:#}");
    assert_eq!(attempts[0]["category"], "network");
    assert_eq!(attempts[0]["strategy"], "retry-with-backoff");
    assert_eq!(attempts[0]["backoff_secs"], 1);
    assert_eq!(attempts[1]["backoff_secs"], 2, "exponential backoff");
    assert_eq!(attempts[2]["exit_code"], 0);
}

#[tokio::test]
async fn compile_errors_and_genuine_test_failures_are_diagnosed_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config(dir.path(), "");
    for (script, status, category) in [
        (
            "echo 'error[E0425]: cannot find value `x` in this scope' >&2; exit 101",
            101,
            "build",
        ),
        (
            "echo '--- FAIL: TestParse (0.00s)'; echo 'FAIL\texample.com/parser\t0.01s'; exit 1",
            1,
            "test",
        ),
    ] {
        let rep = dir.path().join("r.json");
        let (code, _, err) = guard_cli(&[
            "--data",
            data.to_str().unwrap(),
            "--config",
            &cfg,
            "exec",
            "--report",
            rep.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            script,
        ])
        .await;
        assert_eq!(i32::from(code), status, "exit status preserved: {err}");
        let r = report(&rep);
        assert_eq!(r["outcome"], "failed");
        assert_eq!(
            r["attempts"].as_array().unwrap().len(),
            1,
            "not retried: {r:#}"
        );
        assert_eq!(r["attempts"][0]["category"], category);
        assert_eq!(r["attempts"][0]["strategy"], "diagnose", "{r:#}");
        // Said once: the healer's summary is among its notes too.
        assert_eq!(err.matches("not retried").count(), 1, "{err}");
    }
}

#[tokio::test]
async fn a_healer_running_an_ungranted_program_is_denied_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let script =
        "echo '--- FAIL: TestParse (0.00s)'; echo 'FAIL\texample.com/parser\t0.01s'; exit 1";
    let rep = dir.path().join("r.json");
    let (_, _, _) = guard_cli(&[
        "--data",
        data.to_str().unwrap(),
        "--config",
        &config(dir.path(), ""),
        "exec",
        "--report",
        rep.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        script,
    ])
    .await;
    let notes = report(&rep)["attempts"][0]["notes"].to_string();
    assert!(
        notes.contains("rerun-failed-tests declined") && notes.contains("exec:go"),
        "{notes}"
    );
    let db = guard::store::Store::open(&data.join("db")).unwrap();
    let audit = db.audit_records(100).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.plugin == "heal-std" && a.action == "exec:go" && a.outcome == "denied"),
        "{audit:?}"
    );
    let events = db.security_events(100).unwrap();
    assert!(
        events.iter().any(|e| e.kind == "denied"
            && e.subject == "exec:go"
            && e.message.contains("[plugins.heal-std] grants")),
        "{events:?}"
    );
}

/// pytest, pinned as in .ci/run; installed here too so `cargo test` works on
/// a machine that never ran the CI script.
pub(crate) fn ensure_pytest() {
    let ok = |out: std::io::Result<std::process::Output>| out.is_ok_and(|o| o.status.success());
    if ok(std::process::Command::new("python3")
        .args(["-m", "pytest", "--version"])
        .output())
    {
        return;
    }
    let install = |extra: &[&str]| {
        let mut args = vec![
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "pytest==8.4.2",
        ];
        args.extend_from_slice(extra);
        ok(std::process::Command::new("python3").args(&args).output())
    };
    assert!(
        install(&[]) || install(&["--user"]),
        "pytest is needed: python3 -m pip install pytest==8.4.2"
    );
}

#[tokio::test]
async fn fail_on_flaky_keeps_the_failed_status_and_still_names_the_flaky_test() {
    ensure_pytest();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("test_flaky.py"),
        "import os\n\ndef test_sometimes():\n    marker = os.path.join(os.path.dirname(__file__), '.ran')\n    if not os.path.exists(marker):\n        open(marker, 'w').close()\n        assert False, 'fails on the first run only'\n\ndef test_stable():\n    assert True\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let rep = dir.path().join("r.json");
    // No exec grant: the re-run is the wrapped command, narrowed.
    let cfg = config(dir.path(), "");
    let (code, _, err) = guard_cli(&[
        "--data",
        data.to_str().unwrap(),
        "--config",
        &cfg,
        "exec",
        "--fail-on-flaky",
        "--workdir",
        dir.path().to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
        "--",
        "python3",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "test_flaky.py",
    ])
    .await;
    let r = report(&rep);
    assert_eq!(r["outcome"], "flaky", "{r:#}\n{err}");
    assert_eq!(
        r["flaky_tests"],
        serde_json::json!(["test_flaky.py::test_sometimes"])
    );
    assert_eq!(r["attempts"][0]["strategy"], "rerun-failed-tests");
    assert_eq!(code, 1, "--fail-on-flaky keeps the run's failed status");
    assert!(
        err.contains("flaky: test_flaky.py::test_sometimes"),
        "{err}"
    );
    // The statistics guard exec learned, under the daemon's names.
    let (_, out, _) = guard_cli(&["--data", data.to_str().unwrap(), "status", "--json"]).await;
    let status: guard::status::Status = serde_json::from_str(&out).unwrap();
    assert!(
        status.stats.iter().any(|s| s.category == "test"
            && s.strategy == "rerun-failed-tests"
            && s.successes == 1
            && s.failures == 0),
        "{:?}",
        status.stats
    );
}

#[tokio::test]
async fn an_always_failing_network_error_stops_at_the_budget_and_the_breaker_persists() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("g.toml");
    std::fs::write(
        &cfg,
        "[heal]\nbackoff_base_secs = 0\nmax_retries_per_job = 3\n",
    )
    .unwrap();
    let script = "echo 'curl: (7) Failed to connect to localhost port 1 after 0 ms: Connection refused'; exit 7";
    let run = |rep: std::path::PathBuf| {
        let (data, cfg) = (data.clone(), cfg.clone());
        async move {
            let (code, _, err) = guard_cli(&[
                "--data",
                data.to_str().unwrap(),
                "--config",
                cfg.to_str().unwrap(),
                "exec",
                "--max-attempts",
                "10",
                "--report",
                rep.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                script,
            ])
            .await;
            (code, err, report(&rep))
        }
    };
    let (code, _, r) = run(dir.path().join("1.json")).await;
    assert_eq!(code, 7);
    assert_eq!(r["outcome"], "failed");
    assert_eq!(
        r["attempts"].as_array().unwrap().len(),
        4,
        "1 run + 3 re-runs, then the budget: {r:#}"
    );
    let last_plan = r["plan"]["steps"].to_string();
    assert!(
        last_plan.contains("retry budget spent: 3 of 3"),
        "{last_plan}"
    );

    // A new invocation: the breaker opened by the failed heals is still open.
    let (code, err, r) = run(dir.path().join("2.json")).await;
    assert_eq!(code, 7, "{err}");
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1);
    let steps = r["plan"]["steps"].as_array().unwrap();
    let retry = steps
        .iter()
        .find(|s| s["strategy"] == "retry-with-backoff")
        .unwrap();
    assert!(
        retry["blocked"]
            .as_str()
            .unwrap()
            .contains("circuit breaker open"),
        "{steps:?}"
    );

    let (code, out, _) = guard_cli(&["--data", data.to_str().unwrap(), "status", "--json"]).await;
    assert_eq!(code, 0);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["breakers"][0]["state"], "open");
    assert_eq!(s["budgets"][0]["used"], 3);
    assert_eq!(s["stats"][0]["failures"], 3);

    // The rule that named the failure carries the heal outcomes.
    let (_, out, _) = guard_cli(&[
        "--data",
        data.to_str().unwrap(),
        "patterns",
        "stats",
        "--json",
    ])
    .await;
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (rule, st) = stats.as_object().unwrap().iter().next().unwrap();
    assert_eq!(
        st["fired"], 5,
        "{rule}: 4 runs, then 1 in the second invocation"
    );
    assert_eq!(st["not_healed"], 3);
    assert_eq!(
        st["strategies"]["retry-with-backoff"],
        serde_json::json!([0, 3])
    );
}

#[tokio::test]
async fn dry_run_shows_the_plan_and_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rep = dir.path().join("r.json");
    let (code, _, err) = guard_cli(&[
        "--data",
        data.to_str().unwrap(),
        "--config",
        &config(dir.path(), ""),
        "exec",
        "--dry-run",
        "--report",
        rep.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo 'npm ERR! code ENOTFOUND'; exit 1",
    ])
    .await;
    assert_eq!(code, 1);
    let r = report(&rep);
    assert_eq!(
        r["attempts"].as_array().unwrap().len(),
        1,
        "no re-run in a dry run"
    );
    assert!(
        err.contains("plan (dry run)") && err.contains("retry-with-backoff"),
        "{err}"
    );
    let db = guard::store::Store::open(&data.join("db")).unwrap();
    let audit = db.audit_records(10).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "ci.rerun-job" && a.outcome == "dry-run"),
        "{audit:?}"
    );
    assert!(
        guard::heal::budget::all_jobs(&db).unwrap().is_empty(),
        "no budget spent"
    );
}

/// A healer that says "passed alone" without any narrowed run the host
/// saw pass cannot turn a failed `guard exec` step green.
#[tokio::test]
async fn a_healer_claiming_flaky_without_a_verified_pass_does_not_turn_the_step_green() {
    ensure_pytest();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("test_broken.py"),
        "def test_always():\n    assert False, 'always fails'\n",
    )
    .unwrap();
    // The hostile healer takes `rerun-failed-tests` over from heal-std.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        crate::guests::GUEST_HOSTILE_HEALER,
        plugins.join("hostile.wasm"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let rep = dir.path().join("r.json");
    let cfg = config(dir.path(), "");
    let (code, _, err) = guard_cli(&[
        "--data",
        data.to_str().unwrap(),
        "--config",
        &cfg,
        "exec",
        "--max-attempts",
        "1",
        "--plugins",
        plugins.to_str().unwrap(),
        "--workdir",
        dir.path().to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
        "--",
        "python3",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "test_broken.py",
    ])
    .await;
    let r = report(&rep);
    assert_eq!(
        r["attempts"][0]["healer"], "guest-hostile-healer",
        "{err}\n{}",
        r["plan"]
    );
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["attempts"][0]["outcome"], "annotated");
    assert_eq!(r["flaky_tests"], serde_json::json!([]));
    assert_ne!(code, 0);
}
