//! Detection quality on the real, labelled corpus in ../shared/corpus:
//! the verdicts a user would see on real CI logs.

use std::path::PathBuf;

use crate::util::guard_cli;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
    assert!(
        dir.join("labels.jsonl").exists(),
        "the shared corpus is expected at {}",
        dir.display()
    );
    dir
}

#[tokio::test]
async fn corpus_accuracy_is_at_least_90_percent_with_no_false_alarms() {
    let data = tempfile::tempdir().unwrap();
    let corpus = corpus();
    let (code, out, err) = guard_cli(&[
        "--data",
        data.path().to_str().unwrap(),
        "eval",
        "--json",
        "--corpus",
        corpus.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (correct, failing) = (
        v["correct"].as_u64().unwrap(),
        v["failing"].as_u64().unwrap(),
    );
    assert_eq!(failing, 93);
    assert!(
        correct * 100 >= failing * 90,
        "accuracy {correct}/{failing}; misses: {}",
        v["misses"]
    );
    assert_eq!(v["passing"], 36);
    assert_eq!(
        v["false_alarms"],
        serde_json::json!([]),
        "passing logs must not raise alarms"
    );
}

#[tokio::test]
async fn eval_gate_fails_below_the_threshold_and_reports_misses() {
    let data = tempfile::tempdir().unwrap();
    let corpus = corpus();
    let (code, out, _) = guard_cli(&[
        "--data",
        data.path().to_str().unwrap(),
        "eval",
        "--min-accuracy",
        "1.0",
        "--corpus",
        corpus.to_str().unwrap(),
    ])
    .await;
    // Not every log is right, so a perfect-score gate fails — and says why.
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("accuracy: ")
            && out.contains("misclassified:")
            && out.contains("label \\ got"),
        "{out}"
    );
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
