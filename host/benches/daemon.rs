//! Webhook-to-decision latency of `guard run` at a sustained rate.
//!
//! A daemon on loopback (temporary database, embedded plugins) receives
//! signed `workflow_job` failures at a fixed rate; a loopback fake of the
//! GitHub API serves each job's log from memory ("the log already local")
//! and accepts the re-runs. Reported: the webhook's response time (client
//! side) and the decision latency (accepted → diagnosis and heal recorded,
//! from the job records), as p50/p90/p99/max, and the sustained rate.
//!
//! Run with `cargo bench -p guard --bench daemon`; `GUARD_BENCH_RATE`
//! (events/s, default 50) and `GUARD_BENCH_SECS` (default 10) change the load.
//! `GUARD_BENCH_STORE_URL=postgres://…` runs the daemon on PostgreSQL, and
//! `GUARD_BENCH_REPLICAS=2` runs that many daemons on it in this process,
//! each with its own listener, the webhooks spread round-robin.
//! `GUARD_BENCH_WORKERS` sets `[server] workers` (default: guard's, 16).
//! `GUARD_BENCH_BURST=N` sends the first N webhooks at once, before the
//! steady rate: N events in flight at the start. At most 64 requests are
//! open at once (as many connections), so what the figure counts is the
//! events held, not ten thousand sockets' buffers. Also reported:
//! the process's peak resident set, and the most events in flight (queued
//! or being processed) with the resident set then.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use guard::config::{Config, GitHub, GitHubAnnotate, Heal};
use guard::daemon::Daemon;
use guard::platform::Platforms;
use guard::runtime::Runtime;
use guard::store::Store;

const SECRET: &str = "bench-secret";

fn log() -> String {
    let mut log = String::new();
    for i in 0..300 {
        log.push_str(&format!(
            "2024-05-01T10:00:00.0000000Z added {i} packages in 1s\n"
        ));
    }
    log.push_str("npm ERR! code ECONNRESET\nnpm ERR! network read ECONNRESET\n##[error]Process completed with exit code 1.\n");
    log
}

async fn fake_github() -> SocketAddr {
    let log = Arc::new(log());
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let log = log.clone();
        async move {
            if req.uri().path().ends_with("/logs") {
                (*log).clone().into_response()
            } else {
                (axum::http::StatusCode::CREATED, "{}").into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

fn percentiles(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<34} n={:<5} p50 {:>8.2} ms  p90 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
        v.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        v[v.len() - 1]
    );
}

/// The process's resident set (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Events the daemons of this process finished (the `done` of
/// `guard_events_total`).
fn processed() -> u64 {
    guard::metrics::get()
        .events
        .get_or_create(&guard::metrics::labels(&[("result", "done")]))
        .get()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rate: u64 = std::env::var("GUARD_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let secs: u64 = std::env::var("GUARD_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async move {
        let fake = fake_github().await;
        let config = Config {
            github: Some(GitHub {
                api_url: format!("http://{fake}"),
                token: Some("t".into()),
                webhook_secret: Some(SECRET.into()),
                annotate: GitHubAnnotate::CommitComment,
                repositories: Vec::new(),
                app: None,
            }),
            heal: Heal { backoff_base_secs: 0, ..Heal::default() },
            // One client sends everything: the per-client limit would be the bottleneck.
            server: guard::config::Server {
                rate_limit_per_minute: 10_000_000,
                workers: std::env::var("GUARD_BENCH_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(guard::config::Server::default().workers),
                ..Default::default()
            },
            ..Config::default()
        };
        let cache = tempfile::tempdir().expect("tempdir");
        let data = tempfile::tempdir().expect("tempdir");
        let store_url = std::env::var("GUARD_BENCH_STORE_URL").ok().filter(|u| !u.is_empty());
        let replicas: usize = std::env::var("GUARD_BENCH_REPLICAS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
        assert!(replicas == 1 || store_url.is_some(), "replicas share a PostgreSQL store: set GUARD_BENCH_STORE_URL");
        let mut daemons = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..replicas {
            let store = match &store_url {
                Some(u) => Store::connect(u).expect("PostgreSQL"),
                None => Store::open(data.path()).expect("db"),
            };
            let mut runtime = Runtime::new(Arc::new(config.clone()), store, Some(cache.path().to_path_buf()))
                .expect("runtime");
            assert!(runtime.load_embedded().await.is_empty());
            let daemon = Daemon::new(Arc::new(runtime), Platforms::from_config(&config).expect("platforms"), false).expect("daemon");
            daemon.start();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            urls.push(format!("http://{}/webhooks/github", listener.local_addr().expect("addr")));
            let app = guard::server::router(daemon.clone());
            tokio::spawn(async move {
                axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.expect("serve")
            });
            daemons.push(daemon);
        }
        let daemon = daemons[0].clone();
        // A shared database may hold earlier runs' records: count from here,
        // with ids of this run's own.
        let before = daemon.queue.jobs_count();
        // Progress is read from the daemon's counters, not by counting
        // records: sled counts a tree by reading it whole, and doing that
        // every few milliseconds over a backlog took the CPU the daemon
        // needed to work it off.
        let done_before = processed();
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        println!("store: {} ({replicas} replica(s))", daemon.runtime.db().describe());
        let template: serde_json::Value = serde_json::json!({
            "action": "completed",
            "workflow_job": { "id": 0, "run_id": 1, "name": "build", "run_attempt": 1, "conclusion": "failure",
                               "head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625", "head_branch": "main" },
            "repository": { "full_name": "bench/repo" }
        });
        let client = reqwest::Client::new();
        let burst: u64 = std::env::var("GUARD_BENCH_BURST").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let total = (rate * secs).max(burst);
        // Memory while events are in flight: every 50 ms the process's
        // resident set and the events queued or being processed. The load
        // generator and the fake GitHub live in this process too, so the
        // figure is an upper bound for the daemon alone.
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = {
            let (accepted, sampling) = (accepted.clone(), sampling.clone());
            tokio::spawn(async move {
                let mut peak = (0u64, 0usize); // (RSS at the most in flight, most in flight)
                let mut peak_rss = 0u64;
                while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                    let rss = rss_bytes();
                    let in_flight = accepted
                        .load(std::sync::atomic::Ordering::Relaxed)
                        .saturating_sub(processed() - done_before) as usize;
                    peak_rss = peak_rss.max(rss);
                    if in_flight > peak.1 {
                        peak = (rss, in_flight);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (peak_rss, peak)
            })
        };
        let interval = Duration::from_micros(1_000_000 / rate.max(1));
        let started = Instant::now();
        // Finished senders are reaped as the run goes: a finished task's
        // memory lasts until it is joined, and sixty thousand of them would
        // count against the daemon's figure.
        let mut senders = tokio::task::JoinSet::new();
        let open = Arc::new(tokio::sync::Semaphore::new(64));
        let mut response_ms = Vec::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0..total {
            if i >= burst {
                tick.tick().await;
            }
            let mut body = template.clone();
            body["workflow_job"]["id"] = (run * 10_000_000 + i).into();
            // One repository per event: budgets per repository would otherwise
            // turn most heals into "budget spent" after the first twenty.
            body["repository"]["full_name"] = format!("bench/repo-{run}-{i}").into();
            let bytes = serde_json::to_vec(&body).expect("json");
            let sig = guard::intake::github::sign(&bytes, SECRET);
            let (client, url, open, accepted) = (client.clone(), urls[i as usize % urls.len()].clone(), open.clone(), accepted.clone());
            while let Some(done) = senders.try_join_next() {
                response_ms.push(done.expect("join"));
            }
            senders.spawn(async move {
                // Timed from here: waiting for one of the 64 counts too.
                let t = Instant::now();
                let _open = open.acquire_owned().await.expect("semaphore");
                let r = client
                    .post(&url)
                    .header("x-github-event", "workflow_job")
                    .header("x-github-delivery", format!("bench-{run}-{i}"))
                    .header("x-hub-signature-256", sig)
                    .body(bytes)
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status(), 202);
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                t.elapsed().as_secs_f64() * 1000.0
            });
        }
        while let Some(done) = senders.join_next().await {
            response_ms.push(done.expect("join"));
        }
        let sent_in = started.elapsed();
        let deadline = Instant::now() + Duration::from_secs(120);
        while processed() - done_before < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let decided = daemon.queue.jobs_count() - before;
        if decided < total as usize {
            let waiting = daemon.queue.waiting(3).unwrap_or_default();
            let dead = daemon.queue.dead_letters(3).unwrap_or_default();
            println!(
                "LOSS: {decided} of {total} decided after 120 s; {} waiting, {} dead; errors: {:?}",
                daemon.queue.depth(),
                daemon.queue.dead_count(),
                waiting.iter().chain(dead.iter()).filter_map(|e| e.last_error.clone()).collect::<Vec<_>>()
            );
            return;
        }
        let drained_in = started.elapsed();
        // Before this bench reads every record back (its own memory).
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        let (peak_rss, (rss_at_most, most)) = sampler.await.expect("sampler");
        let records = daemon.queue.jobs(total as usize).expect("jobs");
        let decision: Vec<f64> = records.iter().map(|r| (r.processed_ms - r.received_ms) as f64).collect();
        let reruns = records.iter().filter(|r| r.outcome == "rerun-scheduled").count();
        println!(
            "offered {rate}/s for {secs} s: {total} webhooks sent in {:.2} s, all decided after {:.2} s ({:.0} events/s sustained); {reruns} re-runs scheduled",
            sent_in.as_secs_f64(),
            drained_in.as_secs_f64(),
            total as f64 / drained_in.as_secs_f64()
        );
        println!(
            "memory: peak RSS {} MB; {} MB with the most events in flight ({most} queued or being processed)",
            peak_rss >> 20,
            rss_at_most >> 20
        );
        percentiles("webhook response (202, queued)", response_ms);
        percentiles("decision (accepted -> recorded)", decision);
    });
}
