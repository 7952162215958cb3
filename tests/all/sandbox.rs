//! The sandbox: runaway plugins are stopped call by call while the others
//! carry on; capabilities not granted are typed denials and security events.

use std::sync::Arc;

use guard::config::{Config, PluginConfig};
use guard::detect::Analyzer;
use guard::model::{Category, Job};
use guard::runtime::{Runtime, loader::QUARANTINE_AFTER};
use guard::store::Store;

use crate::guests;
use crate::util::{analyze, npm_log, quick_limits, runtime_with};

fn quick() -> Config {
    Config {
        limits: quick_limits(),
        ..Config::default()
    }
}

#[tokio::test]
async fn an_infinite_loop_fails_its_call_and_the_rest_carries_on() {
    let rt = runtime_with(quick(), &[guests::GUEST_SPIN]).await;
    let report = analyze(rt, &npm_log()).await;
    assert_eq!(
        report.diagnosis.category,
        Some(Category::Network),
        "other plugins keep working"
    );
    assert_eq!(report.plugin_errors.len(), 1, "{:?}", report.plugin_errors);
    let err = &report.plugin_errors[0];
    assert!(
        err.contains("guest-spin")
            && err.contains("scan.feed")
            && err.contains("CPU limit of 300 ms"),
        "{err}"
    );
}

#[tokio::test]
async fn unbounded_memory_growth_fails_its_call_with_the_limit_named() {
    let rt = runtime_with(quick(), &[guests::GUEST_HOG]).await;
    let report = analyze(rt, &npm_log()).await;
    assert_eq!(report.diagnosis.category, Some(Category::Network));
    let err = report.plugin_errors.join("\n");
    assert!(
        err.contains("guest-hog") && err.contains("past 32 MiB"),
        "{err}"
    );
}

#[tokio::test]
async fn a_plugin_that_keeps_failing_is_quarantined() {
    let rt = runtime_with(quick(), &[guests::GUEST_SPIN]).await;
    let (analyzer, _) = Analyzer::new(rt.clone());
    let job = Job::local("x");
    for _ in 0..QUARANTINE_AFTER {
        let r = analyzer
            .analyze("line\n".as_bytes(), &job, &mut |_| {})
            .await
            .unwrap();
        assert!(
            r.plugin_errors[0].contains("CPU limit"),
            "{:?}",
            r.plugin_errors
        );
    }
    let r = analyzer
        .analyze("line\n".as_bytes(), &job, &mut |_| {})
        .await
        .unwrap();
    assert!(
        r.plugin_errors[0].contains("quarantined"),
        "{:?}",
        r.plugin_errors
    );
    let spin = rt
        .plugins()
        .iter()
        .find(|p| p.id() == "guest-spin")
        .unwrap();
    assert!(spin.is_quarantined());
    let events = rt.db().security_events(100).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "quarantined" && e.plugin == "guest-spin"),
        "{events:?}"
    );
}

fn greedy_facts(report: &guard::detect::Report) -> Vec<(String, String)> {
    report
        .diagnosis
        .findings
        .iter()
        .find(|f| f.finding.source == "guest-greedy")
        .expect("greedy reports")
        .finding
        .facts
        .clone()
}

fn fact<'a>(facts: &'a [(String, String)], key: &str) -> &'a str {
    &facts
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no fact {key} in {facts:?}"))
        .1
}

#[tokio::test]
async fn ungranted_capabilities_are_typed_denials_naming_the_grant() {
    let rt = runtime_with(Config::default(), &[guests::GUEST_GREEDY]).await;
    let report = analyze(rt.clone(), "hello\n").await;
    assert!(
        report.plugin_errors.is_empty(),
        "a denial is not a crash: {:?}",
        report.plugin_errors
    );
    let facts = greedy_facts(&report);
    assert_eq!(fact(&facts, "kv"), "ok", "kv is always granted");
    for (key, grant) in [
        ("ci.rerun-job", "ci.rerun-job"),
        ("ci.cancel", "ci.cancel"),
        ("exec:sh", "exec:sh"),
        ("http:example.com", "http:example.com"),
        ("fs:secrets", "fs:secrets"),
    ] {
        let answer = fact(&facts, key);
        assert!(
            answer.starts_with("denied: ")
                && answer.contains(&format!("`{grant}`"))
                && answer.contains("[plugins.guest-greedy] grants"),
            "{key}: {answer}"
        );
    }
    let events = rt.db().security_events(100).unwrap();
    let denied: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "denied" && e.plugin == "guest-greedy")
        .map(|e| e.subject.as_str())
        .collect();
    assert_eq!(
        denied,
        [
            "ci.rerun-job",
            "ci.cancel",
            "exec:sh",
            "http:example.com",
            "fs:secrets"
        ]
    );
}

#[tokio::test]
async fn granted_capabilities_pass_the_check_and_fs_stays_in_its_root() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("id_rsa"), "not really a key").unwrap();
    let mut config = Config::default();
    config.plugins.insert(
        "guest-greedy".into(),
        PluginConfig {
            grants: vec!["ci.rerun-job".into(), "exec:sh".into(), "fs:secrets".into()],
            fs_roots: [("secrets".to_string(), root.path().to_path_buf())].into(),
            ..PluginConfig::default()
        },
    );
    let rt = runtime_with(config, &[guests::GUEST_GREEDY]).await;
    let facts = greedy_facts(&analyze(rt.clone(), "hello\n").await);
    // Granted, but no CI backend is attached to a local detect: said plainly, not faked.
    assert!(
        fact(&facts, "ci.rerun-job").starts_with("unavailable: no CI platform backend"),
        "{facts:?}"
    );
    assert!(
        fact(&facts, "ci.cancel").starts_with("denied: "),
        "{facts:?}"
    );
    assert_eq!(fact(&facts, "exec:sh"), "ok");
    assert_eq!(fact(&facts, "fs:secrets"), "ok");
    let audit = rt.db().audit_records(100).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "exec.run" && a.detail == "sh -c id" && a.outcome == "exit 0"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn exec_arguments_outside_the_allowed_patterns_are_denied() {
    let mut config = Config::default();
    config.plugins.insert(
        "guest-greedy".into(),
        PluginConfig {
            grants: vec!["exec:sh".into()],
            exec_args: [("sh".to_string(), vec!["-c echo .*".to_string()])].into(),
            ..PluginConfig::default()
        },
    );
    let rt = runtime_with(config, &[guests::GUEST_GREEDY]).await;
    let facts = greedy_facts(&analyze(rt.clone(), "hello\n").await);
    let answer = fact(&facts, "exec:sh");
    assert!(
        answer.starts_with("denied: ")
            && answer.contains("\"-c id\"")
            && answer.contains("-c echo .*"),
        "{answer}"
    );
    let audit = rt.db().audit_records(100).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "exec.run" && a.detail == "sh -c id" && a.outcome == "denied"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn unusable_files_are_reported_and_the_others_still_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();
    std::fs::write(dir.path().join("empty.wasm"), b"").unwrap();
    std::fs::copy(guests::GUEST_GREEDY, dir.path().join("greedy.wasm")).unwrap();
    let mut rt = Runtime::new(
        Arc::new(Config::default()),
        Store::temporary().unwrap(),
        None,
    )
    .unwrap();
    let failures = rt.load_dir(dir.path()).await.unwrap();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures.iter().all(|f| f
            .error
            .to_string()
            .contains("not a loadable WebAssembly component")),
        "{failures:?}"
    );
    assert_eq!(rt.plugins().len(), 1);
}

#[tokio::test]
async fn the_compile_cache_skips_recompilation() {
    let cache = tempfile::tempdir().unwrap();
    let load = || async {
        let mut rt = Runtime::new(
            Arc::new(Config::default()),
            Store::temporary().unwrap(),
            Some(cache.path().to_path_buf()),
        )
        .unwrap();
        rt.load_file(std::path::Path::new(guests::GUEST_GREEDY))
            .await
            .unwrap()
    };
    assert_eq!(
        load().await.cache,
        guard::runtime::cache::CacheOutcome::Compiled
    );
    assert_eq!(load().await.cache, guard::runtime::cache::CacheOutcome::Hit);
    // A corrupt entry is discarded and rebuilt, never trusted.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"corrupt").unwrap();
    }
    assert_eq!(
        load().await.cache,
        guard::runtime::cache::CacheOutcome::Compiled
    );
}

/// A plugin's `info` is kept beside its compiled code, so a warm one-shot
/// start does not instantiate it to ask; but only for the limits it was
/// asked under: a plugin that cannot be instantiated within tighter ones
/// is still refused at load.
#[tokio::test]
async fn a_kept_plugin_info_never_admits_a_plugin_the_limits_refuse() {
    let cache = tempfile::tempdir().unwrap();
    let load = |memory_mib: u64| {
        let cache = cache.path().to_path_buf();
        async move {
            let mut config = Config::default();
            config.limits.memory_mib = memory_mib;
            let mut rt =
                Runtime::one_shot(Arc::new(config), Store::temporary().unwrap(), Some(cache))
                    .unwrap();
            rt.load_file(std::path::Path::new(guests::GUEST_GREEDY))
                .await
                .map(|p| p.info.id.clone())
        }
    };
    assert_eq!(load(64).await.unwrap(), "guest-greedy");
    let kept = std::fs::read_dir(cache.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".info.json")
        })
        .count();
    assert_eq!(kept, 1, "the answer is kept");
    assert_eq!(load(64).await.unwrap(), "guest-greedy");
    let refused = load(1).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn a_plugin_dir_overrides_an_embedded_plugin_by_id() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::DETECT_TESTS, dir.path().join("detect-tests.wasm")).unwrap();
    let mut rt = Runtime::new(
        Arc::new(Config::default()),
        Store::temporary().unwrap(),
        None,
    )
    .unwrap();
    rt.load_embedded().await;
    let before = rt.plugins().len();
    rt.load_dir(dir.path()).await.unwrap();
    assert_eq!(rt.plugins().len(), before);
    let p = rt
        .plugins()
        .iter()
        .find(|p| p.id() == "detect-tests")
        .unwrap();
    assert!(matches!(p.source, guard::runtime::PluginSource::File(_)));
}
