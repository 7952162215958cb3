//! Two daemon replicas on one PostgreSQL database (`[store] url`), each
//! with its own data directory, both taking webhooks; one is killed with
//! SIGKILL at a random point. Whatever the killed one never acknowledged
//! the platform redelivers (same delivery id) to the other. Every job ends
//! with exactly one record, none is re-run twice, and the breakers, budgets
//! and strategy statistics are those a single replica leaves after the same
//! deliveries.
//!
//! Skipped without PostgreSQL (see [`crate::pg`]). The seed is printed;
//! GUARD_CRASH_SEED replays it.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::crash::{Rng, body_for, daemon_args, post_job, status};
use crate::daemon::NET_LOG;
use crate::fake::Fake;
use crate::pg::PgServer;

/// Failed jobs per run: one repository and commit, one budget each (well
/// under the repository's 20 re-runs an hour).
const JOBS: u64 = 12;

/// `[server] lease_secs`: how long an event taken by a replica that died
/// stays out of the others' reach.
const LEASE_SECS: u64 = 5;

/// Time allowed for every event to be processed (leases of killed
/// replicas run out first).
const SETTLE: Duration = Duration::from_secs(120);

/// A `guard run` process (crash.rs's helper process).
struct Replica {
    name: &'static str,
    /// Index of its arguments (its own data directory).
    index: usize,
    process: tokio::process::Child,
    url: String,
    /// Its stderr, for failure messages.
    log: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    /// Starts `guard run` with `args` and `env` (GUARD_STORE_URL is set
    /// only when `env` sets it) and waits until it listens.
    async fn start(
        name: &'static str,
        index: usize,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Replica {
        let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "crash::daemon_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "GUARD_TEST_DAEMON_ARGS",
            serde_json::to_string(args).unwrap(),
        )
        .env_remove("GUARD_STORE_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut process = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(process.stderr.take().unwrap()).lines();
        let seen = log.clone();
        let started = tokio::time::timeout(Duration::from_secs(180), async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let url = line
                    .split("listening on ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_string);
                seen.lock().unwrap().push(line);
                if let Some(url) = url {
                    return Some((url, lines));
                }
            }
            None
        })
        .await;
        let Ok(Some((url, mut lines))) = started else {
            panic!(
                "replica {name} did not start listening:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        // Keep draining its stderr so it never blocks on a full pipe.
        let seen = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                seen.lock().unwrap().push(line);
            }
        });
        Replica {
            name,
            index,
            process,
            url,
            log,
        }
    }

    /// The end of its stderr.
    fn tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let from = log.len().saturating_sub(40);
        format!(
            "--- replica {} (the end of its stderr):\n{}",
            self.name,
            log[from..].join("\n")
        )
    }
}

/// One webhook delivery, as the platform would repeat it.
struct Delivery {
    id: String,
    body: Vec<u8>,
}

fn job_ids() -> Vec<u64> {
    (1..=JOBS).map(|i| 80_000 + i).collect()
}

/// The first phase: each job failed (a network error: a re-run is scheduled).
fn failed(jobs: &[u64]) -> Vec<Delivery> {
    jobs.iter()
        .map(|j| Delivery {
            id: format!("replicas-failed-{j}"),
            body: body_for(*j),
        })
        .collect()
}

/// The second phase: each job's re-run (a new job id, attempt 2) passed,
/// which settles its heal.
fn passed(jobs: &[u64]) -> Vec<Delivery> {
    jobs.iter()
        .map(|j| {
            let mut v: Value = serde_json::from_slice(&body_for(*j)).unwrap();
            v["workflow_job"]["id"] = (j + 1_000).into();
            v["workflow_job"]["run_attempt"] = 2.into();
            v["workflow_job"]["conclusion"] = "success".into();
            Delivery {
                id: format!("replicas-passed-{j}"),
                body: serde_json::to_vec(&v).unwrap(),
            }
        })
        .collect()
}

/// crash.rs's configuration (the fake, no backoff, two workers) with a
/// short lease, on the database `store` when given.
fn replica_args(fake: &Fake, dir: &Path, store: Option<&str>) -> Vec<String> {
    let args = daemon_args(fake, dir);
    // daemon_args's guard.toml ends in its [server] table.
    let extra = match store {
        Some(url) => format!("lease_secs = {LEASE_SECS}\n\n[store]\nurl = \"{url}\"\n"),
        None => format!("lease_secs = {LEASE_SECS}\n"),
    };
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("guard.toml"))
        .unwrap()
        .write_all(extra.as_bytes())
        .unwrap();
    args
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Delivers each in turn, round-robin over `urls`, 15 ms apart; returns
/// those not acknowledged with a 2xx (their replica was killed).
async fn send_all(
    c: reqwest::Client,
    urls: Vec<String>,
    deliveries: Vec<Delivery>,
) -> Vec<Delivery> {
    let mut unacknowledged = Vec::new();
    for (i, d) in deliveries.into_iter().enumerate() {
        let url = &urls[i % urls.len()];
        let acknowledged = post_job(&c, url, d.body.clone(), &d.id)
            .await
            .is_ok_and(|r| r.status().is_success());
        if !acknowledged {
            unacknowledged.push(d);
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    unacknowledged
}

/// Delivers each to `url` until it is acknowledged (as the platform
/// retries a delivery: the same id).
async fn deliver_until_acknowledged(c: &reqwest::Client, url: &str, deliveries: &[Delivery]) {
    for d in deliveries {
        let mut last = String::new();
        let mut acknowledged = false;
        for _ in 0..10 {
            match post_job(c, url, d.body.clone(), &d.id).await {
                Ok(r) if r.status().is_success() => {
                    acknowledged = true;
                    break;
                }
                Ok(r) => last = r.status().to_string(),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(acknowledged, "delivery {} was refused: {last}", d.id);
    }
}

/// Waits until the database holds `expected` job records and nothing is
/// queued; every live replica must see the same. Returns the status.
async fn wait_processed(c: &reqwest::Client, live: &[Replica], expected: usize) -> Value {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let st = status(c, &live[0].url).await;
        if st["queue_depth"] == 0 && st["jobs_processed"] == expected {
            for r in &live[1..] {
                let other = status(c, &r.url).await;
                assert_eq!(
                    other["jobs_processed"],
                    expected,
                    "replica {} does not see the shared database: {other}\n{}",
                    r.name,
                    r.tail()
                );
            }
            return st;
        }
        if tokio::time::Instant::now() > deadline {
            let tails: Vec<String> = live.iter().map(Replica::tail).collect();
            panic!(
                "{expected} events not all processed within {SETTLE:?}: {st}\n{}",
                tails.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (up to 70 s) until every job was re-run once; one cut off
/// mid-call may never be, which [`check_reruns`] bounds.
async fn wait_reruns(fake: &Fake, jobs: &[u64]) {
    for _ in 0..350 {
        if jobs
            .iter()
            .all(|j| fake.count("POST", &format!("/actions/jobs/{j}/rerun")) >= 1)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A second firing of the same re-run would come right after the first.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Every job's failure and its passed re-run have exactly one record each.
async fn check_records(c: &reqwest::Client, url: &str, jobs: &[u64]) {
    let records: Vec<Value> = c
        .get(format!("{url}/api/jobs?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for id in jobs.iter().flat_map(|j| [*j, j + 1_000]) {
        let n = records
            .iter()
            .filter(|r| {
                r["job"]["job_id"]
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    == Some(id)
            })
            .count();
        assert_eq!(n, 1, "job {id} has {n} records");
    }
    assert_eq!(records.len(), 2 * jobs.len(), "{records:#?}");
}

/// No job re-run twice; only a re-run cut off mid-call by a kill may be
/// missing (each kill interrupts at most one heal per worker and one
/// firing re-run).
fn check_reruns(fake: &Fake, jobs: &[u64], kills: usize) {
    let mut missed = 0;
    for j in jobs {
        let reruns = fake.count("POST", &format!("/actions/jobs/{j}/rerun"));
        assert!(reruns <= 1, "job {j} was re-run {reruns} times");
        missed += usize::from(reruns == 0);
        let passed_reruns = fake.count("POST", &format!("/actions/jobs/{}/rerun", j + 1_000));
        assert_eq!(passed_reruns, 0, "the passed re-run of job {j} was re-run");
    }
    assert!(
        missed <= kills * 3,
        "{missed} jobs never re-run after {kills} kill(s)"
    );
}

/// What the runs learned, compared across them (order-insensitive).
#[derive(Debug)]
struct Learned {
    breakers: Value,
    budgets: Value,
    stats: Value,
}

fn learned(st: &Value) -> Learned {
    let sorted = |v: &Value| {
        let mut items = v
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("not an array: {v}"));
        items.sort_by_key(|i| i.to_string());
        Value::Array(items)
    };
    Learned {
        breakers: sorted(&st["breakers"]),
        budgets: sorted(&st["budgets"]),
        stats: sorted(&st["stats"]),
    }
}

/// Two replicas on a fresh database `database` take both phases, each
/// phase's deliveries alternating between them. With `restart`, one of
/// them is killed at a random point in each phase and started again;
/// without, one is killed in a random phase and the other carries on alone.
async fn two_replicas(pg: &PgServer, database: &str, restart: bool, rng: &mut Rng) -> Learned {
    let fake = Fake::start(false).await;
    let jobs = job_ids();
    for j in &jobs {
        fake.set_log(&j.to_string(), NET_LOG);
    }
    let url = pg.fresh_database(database);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let args: Vec<Vec<String>> = dirs
        .iter()
        .map(|d| replica_args(&fake, d.path(), Some(url.as_str())))
        .collect();
    let c = client();
    // At once, as the replicas of a deployment start: the schema made once.
    let (a, b) = tokio::join!(
        Replica::start("A", 0, &args[0], &[]),
        Replica::start("B", 1, &args[1], &[])
    );
    let mut live = vec![a, b];
    let lone_kill = rng.next(2) as usize;
    let mut kills = 0;
    for (phase, deliveries) in [failed(&jobs), passed(&jobs)].into_iter().enumerate() {
        let urls: Vec<String> = live.iter().map(|r| r.url.clone()).collect();
        let sender = tokio::spawn(send_all(c.clone(), urls, deliveries));
        if live.len() == 2 && (restart || phase == lone_kill) {
            // During intake, processing or a heal, wherever the delay puts it.
            let delay = 10 + rng.next(700);
            let victim = rng.next(2) as usize;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let mut dead = live.remove(victim);
            dead.process.kill().await.unwrap();
            kills += 1;
            println!(
                "phase {phase}: replica {} killed after {delay} ms",
                dead.name
            );
            if restart {
                // On its own data directory again; it takes work at once.
                live.push(Replica::start(dead.name, dead.index, &args[dead.index], &[]).await);
            }
        }
        let unacknowledged = sender.await.unwrap();
        println!(
            "phase {phase}: {} deliveries redelivered to replica {}",
            unacknowledged.len(),
            live[0].name
        );
        deliver_until_acknowledged(&c, &live[0].url, &unacknowledged).await;
        wait_processed(&c, &live, (phase + 1) * jobs.len()).await;
        if phase == 0 {
            wait_reruns(&fake, &jobs).await;
        }
    }
    check_records(&c, &live[0].url, &jobs).await;
    check_reruns(&fake, &jobs, kills);
    let st = status(&c, &live[0].url).await;
    assert_eq!(st["dead_letters"], serde_json::json!([]), "{st}");
    learned(&st)
}

/// The same deliveries through one replica on a fresh database
/// `database`, named by GUARD_STORE_URL (no `[store]` in its guard.toml).
async fn single_replica(pg: &PgServer, database: &str) -> Learned {
    let fake = Fake::start(false).await;
    let jobs = job_ids();
    for j in &jobs {
        fake.set_log(&j.to_string(), NET_LOG);
    }
    let url = pg.fresh_database(database);
    let dir = tempfile::tempdir().unwrap();
    let args = replica_args(&fake, dir.path(), None);
    let c = client();
    let one = Replica::start("single", 0, &args, &[("GUARD_STORE_URL", url.as_str())]).await;
    for (phase, deliveries) in [failed(&jobs), passed(&jobs)].into_iter().enumerate() {
        deliver_until_acknowledged(&c, &one.url, &deliveries).await;
        wait_processed(&c, std::slice::from_ref(&one), (phase + 1) * jobs.len()).await;
        if phase == 0 {
            wait_reruns(&fake, &jobs).await;
        }
    }
    check_records(&c, &one.url, &jobs).await;
    check_reruns(&fake, &jobs, 0);
    let tables = pg.psql(
        database,
        "select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')",
    );
    assert_ne!(
        tables, "0",
        "GUARD_STORE_URL named the database, yet guard made no table in it"
    );
    let st = status(&c, &one.url).await;
    let l = learned(&st);
    // Something to compare: a budget spent and a breaker that learned, per job.
    assert_eq!(l.budgets.as_array().unwrap().len(), jobs.len(), "{st}");
    assert_eq!(l.breakers.as_array().unwrap().len(), jobs.len(), "{st}");
    l
}

fn assert_same(replicated: &Learned, single: &Learned) {
    assert_eq!(
        replicated.breakers, single.breakers,
        "breakers: two replicas under SIGKILL vs one replica"
    );
    assert_eq!(
        replicated.budgets, single.budgets,
        "budgets: two replicas under SIGKILL vs one replica"
    );
    assert_eq!(
        replicated.stats, single.stats,
        "strategy statistics: two replicas under SIGKILL vs one replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_one_killed_and_restarted_lose_and_repeat_nothing() {
    let Some(pg) = PgServer::start().await else {
        return;
    };
    let mut rng = Rng::seeded("replica");
    let replicated = two_replicas(&pg, "killed_and_restarted", true, &mut rng).await;
    let single = single_replica(&pg, "single_replica").await;
    assert_same(&replicated, &single);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_one_killed_for_good_lose_and_repeat_nothing() {
    let Some(pg) = PgServer::start().await else {
        return;
    };
    let mut rng = Rng::seeded("replica");
    let replicated = two_replicas(&pg, "killed_for_good", false, &mut rng).await;
    let single = single_replica(&pg, "single_replica").await;
    assert_same(&replicated, &single);
}
