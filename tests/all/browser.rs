//! The dashboard in a real browser: headless Chromium (Debian's package,
//! driven by playwright-core from tests/browser) against a daemon fed with
//! the real fixtures. The screenshot lands in target/artifacts/dashboard.png.
//!
//! Without Chromium the test says so and passes, unless
//! GUARD_REQUIRE_BROWSER is set (CI sets it: there it must run).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use guard::daemon::Daemon;
use guard::platform::Platforms;

use crate::daemon::{BUILD_LOG, NET_LOG, SECRET, config_for, fixture};
use crate::fake::Fake;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".into(),
        "/usr/bin/chromium-browser".into(),
    ];
    candidates
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_failed_jobs_diagnosis_and_evidence() {
    let required = std::env::var_os("GUARD_REQUIRE_BROWSER").is_some();
    let Some(chromium) = chromium() else {
        assert!(
            !required,
            "GUARD_REQUIRE_BROWSER is set but Chromium is not installed"
        );
        eprintln!("skipped: no Chromium (apt-get install chromium, or set CHROMIUM=path)");
        return;
    };
    if !browser_dir().join("node_modules/playwright-core").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(browser_dir())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "npm ci in tests/browser failed");
    }
    let fake = Fake::start(false).await;
    let config = config_for(&fake);
    let runtime = crate::util::runtime_with(config.clone(), &[]).await;
    let daemon = Daemon::new(runtime, Platforms::from_config(&config).unwrap(), false).unwrap();
    daemon.start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = guard::server::router(daemon.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });

    // Feed it: a GitHub network failure, a GitHub compile error, a GitLab job.
    fake.set_log("289782451", NET_LOG);
    fake.set_log("5001", BUILD_LOG);
    fake.set_log("1977", NET_LOG);
    let c = reqwest::Client::new();
    let github = |delivery: &str, body: Vec<u8>| {
        c.post(format!("{url}/webhooks/github"))
            .header("x-github-event", "workflow_job")
            .header("x-github-delivery", delivery)
            .header(
                "x-hub-signature-256",
                guard::intake::github::sign(&body, SECRET),
            )
            .body(body)
            .send()
    };
    assert_eq!(
        github("b-1", fixture("github/workflow_job.1.completed.json"))
            .await
            .unwrap()
            .status(),
        202
    );
    let mut build: serde_json::Value =
        serde_json::from_slice(&fixture("github/workflow_job.1.completed.json")).unwrap();
    build["workflow_job"]["id"] = 5001.into();
    build["workflow_job"]["name"] = "build".into();
    assert_eq!(
        github("b-2", serde_json::to_vec(&build).unwrap())
            .await
            .unwrap()
            .status(),
        202
    );
    let mut gl: serde_json::Value = serde_json::from_slice(&fixture("gitlab/build.json")).unwrap();
    gl["build_status"] = "failed".into();
    let r = c
        .post(format!("{url}/webhooks/gitlab"))
        .header("x-gitlab-token", "gl-secret")
        .body(serde_json::to_vec(&gl).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    for _ in 0..200 {
        if daemon.queue.jobs_count() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(daemon.queue.jobs_count(), 3);

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let url2 = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("dashboard.mjs")
            .args([
                &format!("{url2}/"),
                shot.to_str().unwrap(),
                "build",
                "error[E0308]: mismatched types",
            ])
            .env("CHROMIUM", chromium)
            .current_dir(browser_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "browser check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(artifacts.join("dashboard.png")).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot missing or blank ({} bytes)",
        png.len()
    );
}
