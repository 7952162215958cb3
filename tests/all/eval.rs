//! Detection quality as a user sees it, on the small labelled corpus in
//! `tests/data/corpus` (logs written for these tests in the formats CI
//! systems print): `guard eval`'s figures, the locator's never-silent
//! promise, the classifier trained and corrected from the command line, and
//! the baseline diff. Accuracy on the real development corpora is a
//! separate CI step (`.ci/run`), not a test.

use std::path::PathBuf;

use crate::util::guard_cli;

fn corpus() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/corpus"))
}

fn eval_json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap()
}

#[tokio::test]
async fn every_failing_log_gets_a_verdict_and_no_passing_log_does() {
    let data = tempfile::tempdir().unwrap();
    let (code, out, err) = guard_cli(&[
        "--data",
        data.path().to_str().unwrap(),
        "eval",
        "--json",
        "--corpus",
        corpus().to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let v = eval_json(&out);
    assert_eq!(v["failing"], 5);
    assert_eq!(v["passing"], 2);
    assert_eq!(v["silent"], serde_json::json!([]), "{v}");
    assert_eq!(v["false_alarms"], serde_json::json!([]), "{v}");
    assert!(v["correct"].as_u64().unwrap() >= 4, "{}", v["misses"]);
    assert!(v["macro_f1"].as_f64().unwrap() > 0.5, "{v}");
    // The OOM-killed Travis job: exit 137 after a `Killed` line is resource,
    // and the kill is among the evidence.
    let (_, out, _) = guard_cli(&[
        "--data",
        data.path().to_str().unwrap(),
        "detect",
        "--json",
        corpus().join("logs/travis-killed.log").to_str().unwrap(),
    ])
    .await;
    let d = eval_json(&out);
    assert_eq!(d["category"], "resource", "{d}");
    assert!(
        d["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"].as_str().unwrap().contains("Killed")),
        "{d}"
    );
}

#[tokio::test]
async fn eval_gate_fails_below_the_threshold_and_reports_misses() {
    let data = tempfile::tempdir().unwrap();
    // A copy of the corpus with one label that guard cannot agree with.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::copy(
        corpus().join("logs/make-build.log"),
        dir.path().join("logs/make-build.log"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("labels.jsonl"),
        "{\"file\": \"logs/make-build.log\", \"category\": \"network\"}\n",
    )
    .unwrap();
    let (code, out, _) = guard_cli(&[
        "--data",
        data.path().to_str().unwrap(),
        "eval",
        "--min-accuracy",
        "0.9",
        "--corpus",
        dir.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("accuracy: 0/1")
            && out.contains("silent on failure (no verdict): 0/1")
            && out.contains("misclassified:")
            && out.contains("expected network got build")
            && out.contains("label \\ got"),
        "{out}"
    );
}

#[tokio::test]
async fn corrections_teach_the_classifier_and_it_names_its_reasons() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A tool no rule knows, failing the same way twice.
    let log = |name: &str, n: u32| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!("$ ./deploy --stage {n}\nquasar relay handshake rejected by the beacon cluster\nquasar relay handshake rejected by the beacon cluster\nThe command \"./deploy --stage {n}\" exited with 4.\n"),
        )
        .unwrap();
        p.to_str().unwrap().to_string()
    };
    let (first, second) = (log("first.log", 1), log("second.log", 2));
    let (code, out, err) =
        guard_cli(&["--data", d, "learn", "--category", "network", &first]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("example (network"), "{out}");
    let (code, out, err) = guard_cli(&["--data", d, "train"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("model stored"), "{out}");
    let (_, out, _) = guard_cli(&["--data", d, "detect", "--json", &second]).await;
    let v = eval_json(&out);
    assert_eq!(v["category"], "network", "{v}");
    assert_eq!(v["rule"], "locator.classifier", "{v}");
    let reasons = v["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[0] == "classifier.tokens")
        .map(|f| f[1].as_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        reasons.contains("quasar") || reasons.contains("beacon"),
        "{v}"
    );
    // A log with no failure marker has no error region to learn from.
    let quiet = dir.path().join("quiet.log");
    std::fs::write(&quiet, "all fine\n").unwrap();
    let (code, _, err) = guard_cli(&[
        "--data",
        d,
        "learn",
        "--category",
        "test",
        quiet.to_str().unwrap(),
    ])
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("no failure marker"), "{err}");
}

#[tokio::test]
async fn a_passing_run_of_the_same_job_moves_the_evidence_to_what_differs() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let noise = "ERROR: mirror sync skipped, could not refresh the local index (ignored)";
    let passing = dir.path().join("passing.log");
    std::fs::write(&passing, format!("start\n{noise}\nall good\n")).unwrap();
    let failing = dir.path().join("failing.log");
    std::fs::write(
        &failing,
        format!("start\nwidget assembly step reports failure: gear ratio mismatch\n{noise}\nProcess completed with exit code 2.\n"),
    )
    .unwrap();
    let top = |out: &str| eval_json(out)["evidence"][0]["line"].as_u64().unwrap();
    let (_, without, _) =
        guard_cli(&["--data", d, "detect", "--json", failing.to_str().unwrap()]).await;
    let (_, with, _) = guard_cli(&[
        "--data",
        d,
        "detect",
        "--json",
        "--baseline",
        passing.to_str().unwrap(),
        failing.to_str().unwrap(),
    ])
    .await;
    // Without a baseline the noisy line (nearer the end) leads; with one,
    // the line the passing run never printed does.
    assert_eq!(top(&without), 3, "{without}");
    assert_eq!(top(&with), 2, "{with}");
}

#[tokio::test]
async fn patterns_list_prints_every_active_rule() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let (code, out, err) = guard_cli(&["--data", d, "patterns", "list", "--regex"]).await;
    assert_eq!(code, 0, "{err}");
    let regexes: Vec<&str> = out.lines().collect();
    assert!(regexes.len() >= 200, "{} rules", regexes.len());
    assert!(
        regexes.iter().all(|r| regex_ok(r)),
        "every printed regex compiles"
    );
    let (_, out, _) = guard_cli(&["--data", d, "patterns", "list", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), regexes.len());
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "npm.enotfound"
                && r["category"] == "network"
                && r["source"] == "pack-std")
    );
}

fn regex_ok(r: &str) -> bool {
    regex::Regex::new(r).is_ok_and(|re| !re.is_match(""))
}

#[tokio::test]
async fn guard_exec_reads_a_failure_against_the_commands_last_passing_run() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The step always prints a noisy error line; once `broken` exists it
    // also fails for a reason of its own.
    let script = "echo 'ERROR: mirror sync skipped, could not refresh the local index (ignored)'\n\
                  if [ -e broken ]; then echo 'widget assembly step reports failure: gear ratio mismatch'; \
                  echo 'ERROR: mirror sync skipped, could not refresh the local index (ignored)'; exit 3; fi\n";
    std::fs::write(dir.path().join("step.sh"), script).unwrap();
    let workdir = dir.path().to_str().unwrap();
    let report = dir.path().join("report.json");
    let exec = |report: &std::path::Path| {
        let report = report.to_str().unwrap().to_string();
        let workdir = workdir.to_string();
        let d = d.to_string();
        async move {
            guard_cli(&[
                "--data",
                &d,
                "exec",
                "--max-attempts",
                "1",
                "--workdir",
                &workdir,
                "--report",
                &report,
                "--",
                "sh",
                "step.sh",
            ])
            .await
        }
    };
    let (code, _, err) = exec(&report).await;
    assert_eq!(code, 0, "{err}");
    std::fs::write(dir.path().join("broken"), "").unwrap();
    let (code, _, _) = exec(&report).await;
    assert_eq!(code, 3);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let first = &r["attempts"][0]["evidence"][0]["text"];
    assert!(
        first.as_str().unwrap().contains("gear ratio"),
        "the line the passing run never printed comes first: {r}"
    );
}
