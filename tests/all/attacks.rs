//! Attacks on the sandbox's promises, each written as a guest that tries it:
//! blocking host calls (a FIFO in an fs root), a re-run grant turned into
//! code execution through the environment, a healer that misreports its
//! strategy to get re-runs, a pack whose rules cost gigabytes, detectors and
//! healers that take forever a little at a time, and hostile model data.
//! Each is contained with a message naming the plugin and the reason, and
//! the other plugins keep working.

use std::sync::Arc;
use std::time::Duration;

use guard::caps::ci::Rerun;
use guard::config::{Config, Limits, PluginConfig};
use guard::detect::{Analyzer, Report};
use guard::heal::local::LocalBackend;
use guard::heal::planner::{self, Target};
use guard::model::{Category, Finding, Job};
use guard::runtime::healer::{HealOptions, HealOutcome};
use guard::runtime::{PluginKind, PluginSource, Runtime};

use crate::daemon::NET_LOG;
use crate::guests;
use crate::util::{guard_cli, quick_limits, runtime_with};

fn config(limits: Limits) -> Config {
    Config {
        limits,
        ..Config::default()
    }
}

async fn scan(rt: &Arc<Runtime>, mode: &str, log: &str) -> Report {
    let (analyzer, _) = Analyzer::new(rt.clone());
    let job = Job {
        job_name: mode.into(),
        ..Job::local("attack.log")
    };
    // A hang here is the failure under test: bound it so the test fails
    // instead of hanging CI.
    tokio::time::timeout(
        Duration::from_secs(60),
        analyzer.analyze(log.as_bytes(), &job, &mut |_| {}),
    )
    .await
    .expect("the scan must not hang")
    .unwrap()
}

fn get(facts: &[(String, String)], k: &str) -> String {
    facts
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[cfg(unix)]
#[tokio::test]
async fn special_files_in_an_fs_root_never_block_and_are_never_read() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("inside.txt"), "fine").unwrap();
    std::fs::create_dir(root.join("subdir")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    let _socket = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
    let mut cfg = config(quick_limits());
    cfg.plugins.insert(
        "guest-hostile".into(),
        PluginConfig {
            grants: vec!["fs:root".into()],
            fs_roots: [("root".to_string(), root.clone())].into(),
            ..PluginConfig::default()
        },
    );
    let rt = runtime_with(cfg, &[guests::GUEST_HOSTILE]).await;
    let r = scan(&rt, "special", "x\n").await;
    let facts = crate::hostile::facts(&r);
    assert_eq!(
        get(&facts, "inside.txt"),
        "ok",
        "{facts:?} {:?}",
        r.plugin_errors
    );
    for special in ["fifo", "socket", "subdir"] {
        let v = get(&facts, special);
        assert!(
            v.starts_with("denied") && v.contains("not a regular file")
                || v.starts_with("invalid")
                || v.starts_with("not-found"),
            "{special}: {v}"
        );
    }
    // Everything else still works.
    assert_eq!(
        scan(&rt, "x", NET_LOG).await.diagnosis.category,
        Some(Category::Network)
    );
}

#[tokio::test]
async fn a_detector_slow_in_every_call_is_stopped_by_the_scan_deadline() {
    let limits = Limits {
        call_timeout_ms: 2_000,
        scan_deadline_ms: 1_500,
        chunk_bytes: 1024,
        ..quick_limits()
    };
    let rt = runtime_with(config(limits), &[guests::GUEST_HOSTILE]).await;
    // 60 chunks of a log: 60 × 400 ms asleep if nothing stopped it.
    let mut log = String::new();
    while log.len() < 60 * 1024 {
        log.push_str("some ordinary build output line that says nothing at all\n");
    }
    log.push_str(NET_LOG);
    let r = scan(&rt, "sleep-feed 400", &log).await;
    let e = r
        .plugin_errors
        .iter()
        .find(|e| e.contains("guest-hostile"))
        .cloned()
        .unwrap_or_default();
    assert!(
        e.contains("scan deadline of 1500 ms"),
        "{:?}",
        r.plugin_errors
    );
    // The verdict goes on without it, and the failure counts toward quarantine.
    assert_eq!(r.diagnosis.category, Some(Category::Network));
    // Each detector's deadline counts its own time: the honest one, which
    // waited for the slow one, is not cut off.
    assert!(
        !r.plugin_errors.iter().any(|e| e.contains("detect-tests")),
        "{:?}",
        r.plugin_errors
    );
    let hostile = rt
        .plugins_of(PluginKind::Detector)
        .find(|p| p.id() == "guest-hostile")
        .unwrap();
    assert!(hostile.consecutive_failures() >= 1);
}

fn finding(category: Category) -> Finding {
    Finding {
        rule: "r".into(),
        source: "test".into(),
        category,
        failure_type: "t".into(),
        confidence: 0.9,
        evidence: vec![],
        remedies: vec![],
        facts: vec![],
    }
}

async fn heal(
    rt: &Arc<Runtime>,
    strategy: &str,
    category: Category,
    rerun_refused: Option<String>,
) -> (
    Result<HealOutcome, guard::runtime::RuntimeError>,
    Option<Rerun>,
) {
    let healer = rt
        .plugins_of(PluginKind::Healer)
        .find(|p| p.id() == "guest-hostile-healer")
        .unwrap()
        .clone();
    let local = Arc::new(LocalBackend::new(0));
    let options = HealOptions {
        backend: Some(local.clone()),
        rerun_refused,
        ..HealOptions::default()
    };
    let r = rt
        .heal(
            &healer,
            strategy,
            &Job::local("attack"),
            &finding(category),
            &options,
        )
        .await;
    (r, guard::caps::ci::CiBackend::rerun(&*local))
}

async fn healer_runtime(limits: Limits) -> Arc<Runtime> {
    let mut cfg = config(limits);
    cfg.plugins.insert(
        "guest-hostile-healer".into(),
        PluginConfig {
            grants: vec!["ci.rerun-job".into(), "ci.rerun-failed-jobs".into()],
            ..PluginConfig::default()
        },
    );
    runtime_with(cfg, &[guests::GUEST_HOSTILE_HEALER]).await
}

#[tokio::test]
async fn a_rerun_grant_never_carries_code_in_the_environment() {
    let rt = healer_runtime(quick_limits()).await;
    let (r, requests) = heal(&rt, "env", Category::Resource, None).await;
    let Ok(HealOutcome::Done { facts, .. }) = r else {
        panic!("{r:?}")
    };
    for k in [
        "MAKEFLAGS",
        "NODE_OPTIONS",
        "JAVA_TOOL_OPTIONS",
        "GOFLAGS",
        "MAVEN_OPTS",
        "LD_PRELOAD",
        "BASH_ENV",
    ] {
        assert!(get(&facts, k).starts_with("denied"), "{k}: {facts:?}");
    }
    assert!(
        get(&facts, "MAKEFLAGS").contains("-jN"),
        "the refusal says what is allowed"
    );
    // The one honest tuning value goes through, and only it.
    assert_eq!(get(&facts, "CARGO_BUILD_JOBS"), "ok");
    assert_eq!(
        requests,
        Some(Rerun {
            delay_secs: 0,
            env: vec![("CARGO_BUILD_JOBS".into(), "2".into())]
        })
    );
    let refused = rt
        .db()
        .security_events(1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "env-refused" && e.plugin == "guest-hostile-healer")
        .count();
    assert_eq!(refused, 7);
}

#[tokio::test]
async fn a_strategy_that_misreports_itself_meets_the_hosts_rerun_rules() {
    let rt = healer_runtime(quick_limits()).await;
    // A build failure: the host's own rules refuse every re-run, although
    // the strategy declared `retries = false` and asks anyway.
    let target = Target {
        repository: "attack".into(),
        job: "attack".into(),
        commit: "c".into(),
        attempt: 1,
    };
    let why = planner::rerun_blocked(&rt, Category::Build, &target, "sneaky");
    assert!(!why.is_empty());
    let (r, requests) = heal(&rt, "sneaky", Category::Build, Some(why.join("; "))).await;
    let Ok(HealOutcome::Done { facts, .. }) = r else {
        panic!("{r:?}")
    };
    for k in ["rerun-1", "rerun-2", "schedule", "rerun-failed"] {
        let v = get(&facts, k);
        assert!(
            v.starts_with("denied") && v.contains("deterministic"),
            "{k}: {v}"
        );
    }
    assert!(requests.is_none(), "{requests:?}");
    // Where a re-run is allowed, one heal gets one.
    let (r, requests) = heal(&rt, "sneaky", Category::Network, None).await;
    let Ok(HealOutcome::Done { facts, .. }) = r else {
        panic!("{r:?}")
    };
    assert_eq!(get(&facts, "rerun-1"), "ok");
    for k in ["rerun-2", "schedule", "rerun-failed"] {
        assert!(get(&facts, k).contains("one re-run"), "{k}: {facts:?}");
    }
    assert!(requests.is_some(), "{requests:?}");
    let events = rt.db().security_events(1000).unwrap();
    assert!(events.iter().filter(|e| e.kind == "rerun-refused").count() >= 7);
}

#[tokio::test]
async fn a_heal_that_takes_forever_is_stopped_by_the_heal_deadline() {
    let limits = Limits {
        call_timeout_ms: 20_000,
        heal_deadline_ms: 1_000,
        ..quick_limits()
    };
    let rt = healer_runtime(limits).await;
    let (r, _) = heal(&rt, "sleep", Category::Network, None).await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("guest-hostile-healer") && e.contains("heal deadline of 1000 ms"),
        "{e}"
    );
}

/// A rules file of `n` rules, each valid and small, costly together.
fn costly_rules(n: usize) -> String {
    let mut t = String::from("[pack]\nid = \"costly\"\nversion = \"1.0.0\"\n");
    for i in 0..n {
        t.push_str(&format!(
            "[[rule]]\nid = \"c{i}\"\ncategory = \"other\"\nfailure_type = \"x\"\npattern = '\\w{{20}}zq{i}N'\nconfidence = 0.5\n"
        ));
    }
    t
}

#[tokio::test]
async fn a_pack_of_many_costly_rules_is_cut_to_the_scanners_budget() {
    let bytes = guard::pack::build(guard::embedded::PACK_TEMPLATE, &costly_rules(500)).unwrap();
    let mut rt = Runtime::new(
        Arc::new(config(quick_limits())),
        guard::store::Store::temporary().unwrap(),
        Some(crate::util::shared_cache()),
    )
    .unwrap();
    assert!(rt.load_embedded().await.is_empty());
    rt.add(&bytes, PluginSource::Embedded, "costly.wasm")
        .await
        .unwrap();
    let rt = Arc::new(rt);
    let (analyzer, errors) = Analyzer::new(rt.clone());
    assert!(!errors.is_empty());
    assert!(
        errors
            .iter()
            .all(|e| e.pack == "costly" && e.message.contains("budget")),
        "{errors:?}"
    );
    // The standard rules are cheap: they all stay.
    assert!(
        analyzer
            .rules()
            .rules()
            .filter(|(s, _)| *s == "pack-std")
            .count()
            > 300
    );
    let r = analyzer
        .analyze(NET_LOG.as_bytes(), &Job::local("x"), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(r.diagnosis.category, Some(Category::Network));
    // `guard pack build` refuses such a pack outright, naming the rules.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("costly.toml");
    std::fs::write(&rules, costly_rules(500)).unwrap();
    let out = dir.path().join("costly.wasm");
    let (code, _, err) = guard_cli(&[
        "--data",
        dir.path().join("d").to_str().unwrap(),
        "pack",
        "build",
        rules.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("budget") && err.contains("c4"), "{err}");
    assert!(!out.exists());
}

#[tokio::test]
async fn hostile_model_data_costs_a_pack_its_model_not_its_rules() {
    let rules = "[pack]\nid = \"modelled\"\nversion = \"1.0.0\"\n[[rule]]\nid = \"m.rule\"\ncategory = \"network\"\nfailure_type = \"x\"\npattern = 'zzz unique marker'\nconfidence = 0.9\n";
    let pack = guard::pack::build(guard::embedded::PACK_TEMPLATE, rules).unwrap();
    let inconsistent = br#"{"format":"guard-naive-bayes-1","classes":["test"],"docs":[1,2],"totals":[1],"vocab":{}}"#;
    // An oversized section, appended by hand (guard's own tools refuse to write one).
    let mut oversized = pack.clone();
    let data = vec![b' '; (16 << 20) + 1];
    let name = b"guard-model";
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name);
    content.extend_from_slice(&data);
    oversized.push(0);
    let mut n = content.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            oversized.push(b);
            break;
        }
        oversized.push(b | 0x80);
    }
    oversized.extend_from_slice(&content);
    for bytes in [
        guard::pack::with_model(&pack, b"not json").unwrap(),
        guard::pack::with_model(&pack, inconsistent).unwrap(),
        oversized,
    ] {
        let mut rt = Runtime::new(
            Arc::new(config(quick_limits())),
            guard::store::Store::temporary().unwrap(),
            Some(crate::util::shared_cache()),
        )
        .unwrap();
        let p = rt
            .add(&bytes, PluginSource::Embedded, "modelled.wasm")
            .await
            .unwrap();
        assert!(p.model.get().is_none());
        assert_eq!(p.rules.len(), 1);
    }
}

#[tokio::test]
async fn test_names_never_turn_the_wrapped_command_into_another_one() {
    // No exec grant at all: re-running the user's own command needs none,
    // and nothing else may ride on it.
    let rt = healer_runtime(quick_limits()).await;
    let healer = rt
        .plugins_of(PluginKind::Healer)
        .find(|p| p.id() == "guest-hostile-healer")
        .unwrap()
        .clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("test_ok.py"),
        "def test_ok():\n    assert True\n",
    )
    .unwrap();
    crate::heal::ensure_pytest();
    let wrapped = Arc::new(guard::caps::exec::Wrapped {
        argv: [
            "python3",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            ".",
        ]
        .map(String::from)
        .to_vec(),
        env: Vec::new(),
    });
    let options = HealOptions {
        backend: Some(Arc::new(LocalBackend::new(0))),
        workdir: Some(dir.path().to_path_buf()),
        wrapped: Some(wrapped),
        ..HealOptions::default()
    };
    let r = rt
        .heal(
            &healer,
            "tests",
            &Job::local("attack"),
            &finding(Category::Test),
            &options,
        )
        .await;
    let Ok(HealOutcome::Done { facts, .. }) = r else {
        panic!("{r:?}")
    };
    for name in [
        "--collect-only",
        "-p=evil_plugin",
        "@/tmp/pwn-args",
        "/etc/pwn.py::test_x",
        "../outside.py::test_x",
    ] {
        assert!(get(&facts, name).starts_with("denied"), "{name}: {facts:?}");
    }
    // Two narrowed re-runs per heal: the honest name comes after five
    // refused ones, which never ran, so it still runs.
    assert_eq!(get(&facts, "test_ok.py::test_ok"), "ok", "{facts:?}");
    assert!(get(&facts, "wrapped").starts_with("python3 -m pytest"));
    let events = rt.db().security_events(1000).unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.subject == "exec.rerun-tests" && e.kind == "denied")
            .count(),
        5,
        "{events:?}"
    );
    // Outside `guard exec` there is no user's command to re-run.
    let (r, _) = heal(&rt, "tests", Category::Test, None).await;
    let Ok(HealOutcome::Done { facts, .. }) = r else {
        panic!("{r:?}")
    };
    assert!(get(&facts, "test_ok.py::test_ok").starts_with("unavailable"));
}
