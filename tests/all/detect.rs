//! Detection through the real runtime: verdicts come from WASM packs and
//! detectors, with original line numbers.

use guard::config::Config;
use guard::model::Category;

use crate::util::{analyze, npm_log, runtime_with};

#[tokio::test]
async fn npm_enotfound_is_network_with_its_line_number() {
    let rt = runtime_with(Config::default(), &[]).await;
    let report = analyze(rt, &npm_log()).await;
    let d = &report.diagnosis;
    assert_eq!(d.category, Some(Category::Network));
    assert_eq!(d.rule.as_deref(), Some("npm.enotfound"));
    // The rule came from the pattern-pack component, not from host code.
    assert_eq!(d.source.as_deref(), Some("pack-std"));
    assert_eq!(
        d.evidence[0].line, 4,
        "line numbers are those of the original log, timestamps and markers included"
    );
    assert_eq!(d.evidence[0].text, "npm ERR! code ENOTFOUND");
    assert!(
        d.facts
            .contains(&("host".into(), "registry.npmjs.org".into())),
        "{:?}",
        d.facts
    );
    assert_eq!(d.remedies, ["retry-with-backoff"]);
    assert!(
        report.plugin_errors.is_empty(),
        "{:?}",
        report.plugin_errors
    );
}

#[tokio::test]
async fn failed_tests_are_named_by_the_detector_plugin() {
    let rt = runtime_with(Config::default(), &[]).await;
    let log = "============================= test session starts ==============================\n\
               collected 12 items\n\
               tests/test_api.py ..F.........\n\
               FAILED tests/test_api.py::test_login - AssertionError: assert 401 == 200\n\
               ========================= 1 failed, 11 passed in 1.52s =========================\n";
    let report = analyze(rt, log).await;
    let d = &report.diagnosis;
    assert_eq!(d.category, Some(Category::Test));
    let tests: Vec<_> = d
        .facts
        .iter()
        .filter(|(k, _)| k == "test")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        tests.contains(&"tests/test_api.py::test_login"),
        "{:?}",
        d.facts
    );
    let from_detector = d
        .findings
        .iter()
        .any(|f| f.finding.source == "detect-tests");
    assert!(
        from_detector,
        "the detect-tests WASM detector must contribute: {:?}",
        d.findings
    );
}

#[tokio::test]
async fn a_clean_log_has_no_verdict() {
    let rt = runtime_with(Config::default(), &[]).await;
    let report = analyze(
        rt,
        "Run cargo build\n   Compiling foo v0.1.0\n    Finished `release` profile in 3.2s\n",
    )
    .await;
    assert_eq!(report.diagnosis.category, None);
    assert_eq!(report.lines, 3);
}

#[tokio::test]
async fn compile_errors_are_build_not_retried() {
    let rt = runtime_with(Config::default(), &[]).await;
    let log = "   Compiling app v0.1.0\nerror[E0425]: cannot find value `x` in this scope\n --> src/main.rs:2:5\nerror: could not compile `app` (bin \"app\") due to 1 previous error\n##[error]Process completed with exit code 101.\n";
    let report = analyze(rt, log).await;
    assert_eq!(report.diagnosis.category, Some(Category::Build));
    assert_eq!(report.diagnosis.evidence[0].line, 2);
    assert!(
        !report
            .diagnosis
            .remedies
            .iter()
            .any(|r| r.contains("retry")),
        "{:?}",
        report.diagnosis.remedies
    );
}

#[tokio::test]
async fn huge_single_line_logs_are_cut_not_buffered() {
    let rt = runtime_with(Config::default(), &[]).await;
    let mut log = "x".repeat(5_000_000);
    log.push_str(" npm ERR! code ENOTFOUND\nnpm ERR! code ENOTFOUND\n");
    let report = analyze(rt, &log).await;
    assert_eq!(report.lines, 2);
    assert_eq!(report.diagnosis.category, Some(Category::Network));
    assert_eq!(
        report.diagnosis.evidence[0].line, 2,
        "text past the line cap is not scanned"
    );
}

/// A big log's blocks are scanned on another thread than the detector
/// plugins' feed; the verdict, its evidence and line numbers, the facts and
/// the detector's test names must be those of the same log read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_read_in_many_blocks_gets_the_verdict_of_one_read_whole() {
    let mut log = String::new();
    let mut n = 0;
    let mut filler = |log: &mut String, lines: usize| {
        for _ in 0..lines {
            n += 1;
            log.push_str(&format!(
                "2024-05-01T10:00:00.0000000Z tests/test_mod_{n}.py::test_case_{n} PASSED [ {}%]\n",
                n % 100
            ));
        }
    };
    filler(&mut log, 400);
    // Early evidence, several blocks before the end.
    log.push_str("npm ERR! code ENOTFOUND\nnpm ERR! errno ENOTFOUND\nnpm ERR! getaddrinfo ENOTFOUND registry.npmjs.org\n");
    filler(&mut log, 900);
    log.push_str("FAILED tests/test_api.py::test_login - AssertionError: assert 401 == 200\n");
    filler(&mut log, 300);
    log.push_str("npm ERR! code ENOTFOUND\n==== 1 failed, 1600 passed in 9.1s ====\n##[error]Process completed with exit code 1.\n");

    let whole = {
        let mut config = Config::default();
        config.limits.chunk_bytes = 64 << 20;
        analyze(runtime_with(config, &[]).await, &log).await
    };
    let blocks = {
        let mut config = Config::default();
        config.limits.chunk_bytes = 1024;
        analyze(runtime_with(config, &[]).await, &log).await
    };
    assert!(
        log.len() > 100 * 1024,
        "the log spans about a hundred blocks"
    );
    assert_eq!(
        serde_json::to_value(&blocks).unwrap(),
        serde_json::to_value(&whole).unwrap()
    );
    assert_eq!(blocks.lines, 1607);
    assert_eq!(blocks.diagnosis.category, Some(Category::Test));
    let finding = |source: &str, rule: &str| {
        blocks
            .diagnosis
            .findings
            .iter()
            .find(|f| f.finding.source == source && f.finding.rule.starts_with(rule))
            .map(|f| f.finding.clone())
            .unwrap_or_else(|| panic!("no {rule} from {source}: {:?}", blocks.diagnosis.findings))
    };
    // The native scanner's hits in the first blocks and in the last one.
    let npm: Vec<u32> = finding("pack-std", "npm.enotfound")
        .evidence
        .iter()
        .map(|e| e.line)
        .collect();
    assert!(npm.contains(&401) && npm.contains(&1605), "{npm:?}");
    // The WASM detector, fed the same blocks.
    let tests = finding("detect-tests", "tests.").facts;
    assert!(
        tests.contains(&("test".into(), "tests/test_api.py::test_login".into())),
        "{tests:?}"
    );
}
