//! The daemon under hostile traffic and hostile logs: slow clients, floods,
//! broken UTF-8, megabyte lines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use guard::config::Config;
use guard::daemon::Daemon;
use guard::platform::Platforms;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::daemon::{NET_LOG, SECRET, config_for, fixture};
use crate::fake::Fake;

async fn serve(config: Config) -> (Arc<Daemon>, String) {
    let runtime = crate::util::runtime_with(config.clone(), &[]).await;
    let daemon = Daemon::new(runtime, Platforms::from_config(&config).unwrap(), false).unwrap();
    daemon.start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = guard::server::router(daemon.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    (daemon, addr.to_string())
}

fn job_body(id: u64) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github/workflow_job.1.completed.json")).unwrap();
    v["workflow_job"]["id"] = id.into();
    v["workflow_job"]["name"] = format!("job-{id}").into();
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_cut_off() {
    let fake = Fake::start(false).await;
    let mut config = config_for(&fake);
    config.server.request_timeout_secs = 1;
    let (_daemon, addr) = serve(config).await;
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Headers promise a body that never comes.
    s.write_all(b"POST /webhooks/github HTTP/1.1\r\nhost: guard\r\ncontent-length: 100000\r\nx-github-event: workflow_job\r\n\r\n{\"action\":")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("the server kept the slow client")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_rate_limited_and_every_accepted_event_is_processed() {
    let fake = Fake::start(false).await;
    let mut config = config_for(&fake);
    config.server.rate_limit_per_minute = 60; // bursts of 6
    let (daemon, addr) = serve(config).await;
    let c = reqwest::Client::new();
    let (mut accepted, mut limited) = (0usize, 0usize);
    for i in 0..40u64 {
        fake.set_log(&(90_000 + i).to_string(), NET_LOG);
        let body = job_body(90_000 + i);
        let r = c
            .post(format!("http://{addr}/webhooks/github"))
            .header("x-github-event", "workflow_job")
            .header("x-github-delivery", format!("flood-{i}"))
            .header(
                "x-hub-signature-256",
                guard::intake::github::sign(&body, SECRET),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            202 => accepted += 1,
            429 => {
                assert!(r.headers().contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        limited > 0 && accepted >= 6,
        "accepted {accepted}, limited {limited}"
    );
    for _ in 0..200 {
        if daemon.queue.jobs_count() == accepted && daemon.queue.depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(daemon.queue.jobs_count(), accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_utf8_and_megabyte_lines_in_a_log_still_get_a_diagnosis() {
    let fake = Fake::start(false).await;
    let (daemon, addr) = serve(config_for(&fake)).await;
    let mut log = Vec::new();
    log.extend_from_slice(b"Run npm ci\n\xff\xfe\xc3( broken bytes \x80\x81\n");
    log.extend(std::iter::repeat_n(b'a', 5 << 20));
    log.push(b'\n');
    log.extend_from_slice(NET_LOG.as_bytes());
    fake.set_log_bytes("91001", log);
    let body = job_body(91_001);
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/github"))
        .header("x-github-event", "workflow_job")
        .header(
            "x-hub-signature-256",
            guard::intake::github::sign(&body, SECRET),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    let id = v["queued"][0].as_u64().unwrap();
    let mut record = None;
    for _ in 0..200 {
        record = daemon.queue.job(id).unwrap();
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = record.expect("processed");
    assert_eq!(r.category.as_deref(), Some("network"), "{r:?}");
    assert!(
        r.evidence.iter().all(|e| e.text.len() < 10_000),
        "evidence lines are cut"
    );
    assert!(r.log_bytes > 5 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_status_asks_a_running_daemon() {
    let fake = Fake::start(false).await;
    let (_daemon, addr) = serve(config_for(&fake)).await;
    let (code, out, err) =
        crate::util::guard_cli(&["status", "--json", "--server", &format!("http://{addr}")]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["queue_depth"], 0);
    assert!(v["dead_letters"].as_array().unwrap().is_empty());
    let (code, _, err) =
        crate::util::guard_cli(&["status", "--server", "http://127.0.0.1:9"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("127.0.0.1:9"), "{err}");
}
