//! The hostile-plugin suite: each misbehaviour is contained to its own
//! call, named clearly, counted toward quarantine, and every other plugin
//! keeps working.

use std::sync::Arc;

use guard::caps::MAX_HOST_CALLS_PER_CALL;
use guard::config::{Config, PluginConfig};
use guard::detect::{Analyzer, Report};
use guard::heal::local::LocalBackend;
use guard::model::{Category, Finding, Job};
use guard::runtime::healer::{HealOptions, HealOutcome};
use guard::runtime::{PluginKind, Runtime};

use crate::daemon::NET_LOG;
use crate::guests;
use crate::util::{quick_limits, runtime_with};

fn quick() -> Config {
    Config {
        limits: quick_limits(),
        ..Config::default()
    }
}

async fn scan(rt: &Arc<Runtime>, mode: &str, log: &str) -> Report {
    let (analyzer, _) = Analyzer::new(rt.clone());
    let job = Job {
        job_name: mode.into(),
        ..Job::local("hostile.log")
    };
    analyzer
        .analyze(log.as_bytes(), &job, &mut |_| {})
        .await
        .unwrap()
}

fn hostile_error(r: &Report) -> String {
    r.plugin_errors
        .iter()
        .find(|e| e.contains("guest-hostile"))
        .cloned()
        .unwrap_or_default()
}

/// The facts the hostile guest reports about what it tried.
pub fn facts(r: &Report) -> Vec<(String, String)> {
    r.diagnosis
        .findings
        .iter()
        .find(|f| f.finding.rule == "hostile.report")
        .map(|f| f.finding.facts.clone())
        .unwrap_or_default()
}

/// Instances come from a pool of reused slots, reset by rewriting the pages
/// an instance touched: no instance may see what an earlier one (of the
/// same plugin or another) left in its memory.
#[tokio::test]
async fn a_reused_instance_slot_never_shows_an_earlier_instances_memory() {
    let rt = runtime_with(quick(), &[guests::GUEST_HOSTILE]).await;
    for round in 0..20 {
        let f = facts(&scan(&rt, "remember", "x\n").await);
        assert_eq!(
            f,
            [("dirty".to_string(), "0".to_string())],
            "round {round}: an earlier instance's bytes were visible"
        );
    }
}

#[tokio::test]
async fn every_way_a_detector_can_misbehave_is_contained_and_named() {
    let rt = runtime_with(quick(), &[guests::GUEST_HOSTILE]).await;
    for (mode, reason) in [
        ("loop-new", "cpu"),
        ("loop-feed", "cpu"),
        ("loop-finish", "cpu"),
        // Rust keeps its stack in linear memory: running off its end is an
        // out-of-bounds access, below wasmtime's own stack limit.
        ("recurse", "out of bounds memory access"),
        ("panic", "trap"),
        ("grow", "memory"),
        ("huge-string", "memory"),
    ] {
        let r = scan(&rt, mode, NET_LOG).await;
        let e = hostile_error(&r);
        assert!(
            e.to_lowercase().contains(reason),
            "{mode}: expected a {reason} failure, got {e:?}"
        );
        // The rest of the pipeline still diagnosed the log.
        assert_eq!(r.diagnosis.category, Some(Category::Network), "{mode}");
        let hostile = rt
            .plugins()
            .iter()
            .find(|p| p.id() == "guest-hostile")
            .unwrap();
        // Every failure counts; a quarantined plugin is not called at all.
        if hostile.is_quarantined() {
            assert!(
                e.contains("quarantined") || hostile.consecutive_failures() >= 3,
                "{mode}: {e}"
            );
        }
        // Let the next case be called (a successful use clears the count).
        let ok = scan(&rt, "behave", "fine\n").await;
        if !hostile.is_quarantined() {
            assert!(hostile_error(&ok).is_empty(), "{ok:?}");
        }
    }
}

#[tokio::test]
async fn a_million_findings_are_cut_or_contained() {
    let rt = runtime_with(quick(), &[guests::GUEST_HOSTILE]).await;
    let r = scan(&rt, "many-findings", NET_LOG).await;
    let kept = r
        .diagnosis
        .findings
        .iter()
        .filter(|f| f.finding.rule == "hostile.report")
        .count();
    let limit = rt.config().limits.max_findings;
    assert!(kept <= limit, "kept {kept} findings, limit {limit}");
    assert!(
        kept == limit || hostile_error(&r).contains("memory"),
        "{:?}",
        r.plugin_errors
    );
    assert_eq!(r.diagnosis.category, Some(Category::Network));
}

#[tokio::test]
async fn host_call_floods_are_rate_limited() {
    let rt = runtime_with(quick(), &[guests::GUEST_HOSTILE]).await;
    let r = scan(&rt, "flood", "x\n").await;
    let f = facts(&r);
    let get = |k: &str| {
        f.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(
        get("stopped").starts_with("limited"),
        "{f:?} {:?}",
        r.plugin_errors
    );
    let calls: u32 = get("calls").parse().unwrap();
    assert!(
        calls <= MAX_HOST_CALLS_PER_CALL + 1,
        "{calls} calls went through"
    );
}

#[tokio::test]
async fn fs_reads_cannot_leave_their_root() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("inside.txt"), "fine").unwrap();
    let outside = base.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("outside.txt"), "secret").unwrap();
    std::fs::write(base.path().join("outside.txt"), "secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, root.join("link-out")).unwrap();
    let mut config = quick();
    config.plugins.insert(
        "guest-hostile".into(),
        PluginConfig {
            grants: vec!["fs:root".into()],
            fs_roots: [("root".to_string(), root.clone())].into(),
            ..PluginConfig::default()
        },
    );
    let rt = runtime_with(config, &[guests::GUEST_HOSTILE]).await;
    let f = facts(&scan(&rt, "escape", "x\n").await);
    let get = |k: &str| {
        f.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("inside.txt"), "ok", "{f:?}");
    for escape in ["../outside.txt", "/etc/passwd", "link-out/outside.txt"] {
        let v = get(escape);
        assert!(
            v.starts_with("denied") || v.starts_with("invalid") || v.starts_with("not-found"),
            "{escape}: {v}"
        );
    }
}

async fn heal(
    rt: &Arc<Runtime>,
    strategy: &str,
) -> Result<HealOutcome, guard::runtime::RuntimeError> {
    let healer = rt
        .plugins_of(PluginKind::Healer)
        .find(|p| p.id() == "guest-hostile-healer")
        .unwrap()
        .clone();
    let job = Job::local("hostile");
    let finding = Finding {
        rule: "r".into(),
        source: "test".into(),
        category: Category::Network,
        failure_type: "t".into(),
        confidence: 0.9,
        evidence: vec![],
        remedies: vec![],
        facts: vec![],
    };
    let options = HealOptions {
        backend: Some(Arc::new(LocalBackend::new(0))),
        ..HealOptions::default()
    };
    rt.heal(&healer, strategy, &job, &finding, &options).await
}

#[tokio::test]
async fn hostile_healers_are_stopped_denied_and_rate_limited() {
    let mut config = quick();
    config.plugins.insert(
        "guest-hostile-healer".into(),
        PluginConfig {
            grants: vec!["ci.annotate".into()],
            ..PluginConfig::default()
        },
    );
    let rt = runtime_with(config, &[guests::GUEST_HOSTILE_HEALER]).await;
    let e = heal(&rt, "spin").await.unwrap_err().to_string();
    assert!(e.contains("cpu"), "{e}");
    let e = heal(&rt, "panic").await.unwrap_err().to_string();
    assert!(e.contains("trap") || e.contains("panic"), "{e}");
    let Ok(HealOutcome::Done { facts, .. }) = heal(&rt, "flood").await else {
        panic!("flood")
    };
    let stopped = facts.iter().find(|(k, _)| k == "stopped").unwrap();
    assert!(stopped.1.starts_with("limited"), "{facts:?}");
    let Ok(HealOutcome::Done { facts, .. }) = heal(&rt, "probe").await else {
        panic!("probe")
    };
    for (cap, answer) in &facts {
        assert!(
            answer.starts_with("denied"),
            "{cap} was not denied: {answer}"
        );
    }
    assert_eq!(facts.len(), 9);
    let denials = rt
        .db()
        .security_events(1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "denied" && e.plugin == "guest-hostile-healer")
        .count();
    assert!(denials >= 9, "{denials} denials recorded");
    // The embedded healer is unaffected.
    let std = rt
        .plugins_of(PluginKind::Healer)
        .find(|p| p.id() == "heal-std")
        .unwrap()
        .clone();
    assert!(!rt.healer_strategies(&std).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_pack_that_never_returns_its_rules_is_refused_and_the_rest_load() {
    let mut rt = Runtime::new(
        Arc::new(quick()),
        guard::store::Store::temporary().unwrap(),
        Some(crate::util::shared_cache()),
    )
    .unwrap();
    assert!(rt.load_embedded().await.is_empty());
    let e = rt
        .load_file(std::path::Path::new(guests::GUEST_HOSTILE_PACK))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cpu") || e.contains("time"), "{e}");
    let rt = Arc::new(rt);
    assert_eq!(
        scan(&rt, "x", NET_LOG).await.diagnosis.category,
        Some(Category::Network)
    );
}

/// Not a test by itself: run in a child process by
/// `ten_thousand_contained_failures_leak_nothing` so its memory is its own.
#[test]
#[ignore = "helper process for ten_thousand_contained_failures_leak_nothing"]
fn contained_failures_process() {
    if std::env::var_os("GUARD_TEST_LEAK_CHILD").is_none() {
        return;
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let rt = runtime_with(quick(), &[guests::GUEST_HOSTILE]).await;
        let (analyzer, _) = Analyzer::new(rt.clone());
        let job = Job {
            job_name: "boom-or-ok".into(),
            ..Job::local("leak")
        };
        let rss = || -> u64 {
            let s = std::fs::read_to_string("/proc/self/statm").unwrap();
            s.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
        };
        let mut failures = 0u32;
        let mut baseline = 0;
        for i in 0..10_500u32 {
            // A failure, then a success so the plugin is never quarantined.
            let r = analyzer
                .analyze(&b"boom\n"[..], &job, &mut |_| {})
                .await
                .unwrap();
            if !r.plugin_errors.is_empty() {
                failures += 1;
            }
            let ok = analyzer
                .analyze(&b"fine\n"[..], &job, &mut |_| {})
                .await
                .unwrap();
            assert!(ok.plugin_errors.is_empty(), "{:?}", ok.plugin_errors);
            if i == 499 {
                baseline = rss();
            }
        }
        println!(
            "LEAK-RESULT failures={failures} baseline={baseline} end={}",
            rss()
        );
    });
}

#[tokio::test]
async fn ten_thousand_contained_failures_leak_nothing() {
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "hostile::contained_failures_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GUARD_TEST_LEAK_CHILD", "1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("LEAK-RESULT").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("{stdout}"));
    let num = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(num("failures"), 10_500, "{line}");
    let growth = num("end").saturating_sub(num("baseline"));
    // 10,000 failures after the warm-up: memory stays where it was (a leak
    // of even 4 KiB per failure would show as 40 MB).
    assert!(
        growth < 16 << 20,
        "RSS grew by {} KiB over 10,000 contained failures ({line})",
        growth / 1024
    );
}

#[tokio::test]
async fn http_reaches_only_the_granted_host_and_follows_no_redirect_elsewhere() {
    let fake = crate::fake::Fake::start(false).await;
    fake.set_log("5", "the log");
    let mut config = quick();
    config.plugins.insert(
        "guest-hostile".into(),
        PluginConfig {
            grants: vec!["http:127.0.0.1".into()],
            ..PluginConfig::default()
        },
    );
    let rt = runtime_with(config, &[guests::GUEST_HOSTILE]).await;
    let port = fake.addr.port();
    let get = |f: &[(String, String)], k: &str| {
        f.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let ok = facts(
        &scan(
            &rt,
            &format!("http http://127.0.0.1:{port}/storage/logs/5"),
            "x\n",
        )
        .await,
    );
    assert_eq!(
        (get(&ok, "status").as_str(), get(&ok, "body").as_str()),
        ("200", "the log"),
        "{ok:?}"
    );
    // The fake answers this path with a redirect to `localhost`: another host, not followed.
    let redirect = facts(
        &scan(
            &rt,
            &format!("http http://127.0.0.1:{port}/repos/o/r/actions/jobs/5/logs"),
            "x\n",
        )
        .await,
    );
    assert_eq!(get(&redirect, "status"), "302", "{redirect:?}");
    assert_eq!(
        fake.seen()
            .iter()
            .filter(|s| s.path.starts_with("/storage/"))
            .count(),
        1
    );
    let denied = facts(
        &scan(
            &rt,
            &format!("http http://localhost:{port}/storage/logs/5"),
            "x\n",
        )
        .await,
    );
    assert!(get(&denied, "error").starts_with("denied"), "{denied:?}");
    let audit = rt.db().audit_records(100).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "http.send" && a.outcome.starts_with("done: 200")),
        "{audit:?}"
    );
}
