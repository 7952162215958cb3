//! Durability with a real process: a daemon killed with SIGKILL while it
//! processes events, restarted on the same data directory, processes every
//! accepted event exactly once and acts on each exactly once.

use std::process::Stdio;
use std::time::Duration;

use guard::intake::github::sign;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::daemon::{NET_LOG, SECRET, fixture};
use crate::fake::Fake;

/// Not a test: the daemon process the crash and replica tests start and
/// kill. It does nothing unless started by one of them (with its arguments
/// in the environment).
#[test]
#[ignore = "helper process for a_killed_daemon_loses_and_repeats_nothing"]
fn daemon_process() {
    let Ok(args) = std::env::var("GUARD_TEST_DAEMON_ARGS") else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cli =
        guard::cli::parse_args(std::iter::once("guard").chain(args.iter().map(String::as_str)))
            .unwrap();
    let code = rt.block_on(guard::cli::execute(
        cli,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    ));
    std::process::exit(i32::from(code));
}

struct Child {
    process: tokio::process::Child,
    url: String,
}

async fn start(args: &[String]) -> Child {
    let mut process = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
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
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(process.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("the daemon exited before listening");
    })
    .await
    .expect("the daemon did not start listening");
    // Keep draining its stderr so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Child { process, url }
}

pub(crate) async fn status(c: &reqwest::Client, url: &str) -> Value {
    c.get(format!("{url}/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A guard.toml pointing at `fake` (no backoff, two workers) in `dir`, and
/// the `guard run` arguments using it with `dir/data`.
pub(crate) fn daemon_args(fake: &Fake, dir: &std::path::Path) -> Vec<String> {
    let config = dir.join("guard.toml");
    std::fs::write(
        &config,
        format!(
            "[github]\napi_url = \"{}\"\ntoken = \"t\"\nwebhook_secret = \"{SECRET}\"\n\n[heal]\nbackoff_base_secs = 0\n\n[server]\nworkers = 2\n",
            fake.url()
        ),
    )
    .unwrap();
    let data = dir.join("data");
    [
        "--data",
        data.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "run",
        "--listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub(crate) fn body_for(job_id: u64) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&fixture("github/workflow_job.1.completed.json")).unwrap();
    v["workflow_job"]["id"] = job_id.into();
    // Distinct jobs: one job name would share one retry budget (2 per commit).
    v["workflow_job"]["name"] = format!("job-{job_id}").into();
    serde_json::to_vec(&v).unwrap()
}

/// POSTs a signed `workflow_job` webhook with this body and delivery id.
pub(crate) async fn post_job(
    c: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    delivery: &str,
) -> reqwest::Result<reqwest::Response> {
    c.post(format!("{url}/webhooks/github"))
        .header("x-github-event", "workflow_job")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sign(&body, SECRET))
        .body(body)
        .send()
        .await
}

async fn deliver(c: &reqwest::Client, url: &str, job_id: u64) -> reqwest::StatusCode {
    post_job(c, url, body_for(job_id), &format!("crash-{job_id}"))
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_loses_and_repeats_nothing() {
    let fake = Fake::start(true).await;
    let jobs: Vec<u64> = (1..=6).map(|i| 60_000 + i).collect();
    for j in &jobs {
        fake.set_log(&j.to_string(), NET_LOG);
    }
    let dir = tempfile::tempdir().unwrap();
    let args = daemon_args(&fake, dir.path());
    let c = reqwest::Client::new();

    let mut first = start(&args).await;
    for j in &jobs {
        assert_eq!(
            deliver(&c, &first.url, *j).await,
            reqwest::StatusCode::ACCEPTED
        );
    }
    // Both workers are inside a log download the fake holds: mid-processing.
    fake.wait_for("two log downloads in flight", |s| {
        s.iter().filter(|s| s.path.starts_with("/storage/")).count() >= 2
    })
    .await;
    first.process.kill().await.unwrap();
    assert_eq!(fake.count("POST", "/rerun"), 0);
    fake.open_gate();

    let second = start(&args).await;
    let mut last = Value::Null;
    for _ in 0..600 {
        last = status(&c, &second.url).await;
        if last["queue_depth"] == 0 && last["jobs_processed"] == jobs.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["jobs_processed"], jobs.len(), "{last}");
    fake.wait_for("one re-run per job", |s| {
        s.iter().filter(|s| s.path.ends_with("/rerun")).count() >= jobs.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for j in &jobs {
        assert_eq!(
            fake.count("POST", &format!("/actions/jobs/{j}/rerun")),
            1,
            "job {j}"
        );
    }
    let records: Vec<Value> = c
        .get(format!("{}/api/jobs", second.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<String> = records
        .iter()
        .map(|r| r["job"]["job_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), jobs.len(), "one record per event: {records:?}");
    // The deliveries are remembered across the restart.
    for j in &jobs {
        assert_eq!(deliver(&c, &second.url, *j).await, reqwest::StatusCode::OK);
    }
    // SIGTERM: a graceful stop with status 0.
    let pid = second.process.id().unwrap();
    let mut second = second;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(40), second.process.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// A small deterministic generator: the seed is printed, so a failing run
/// can be replayed with GUARD_CRASH_SEED.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// Seeded from `GUARD_CRASH_SEED`, else the clock; the seed is printed
    /// so a failing run of `harness` can be replayed.
    pub(crate) fn seeded(harness: &str) -> Rng {
        let seed = std::env::var("GUARD_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("{harness} harness seed {seed} (GUARD_CRASH_SEED={seed} replays it)");
        Rng(seed)
    }

    pub(crate) fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_nothing_and_repeats_nothing() {
    let mut rng = Rng::seeded("crash");
    let fake = Fake::start(false).await;
    let jobs: Vec<u64> = (1..=24).map(|i| 70_000 + i).collect();
    for j in &jobs {
        fake.set_log(&j.to_string(), NET_LOG);
    }
    let dir = tempfile::tempdir().unwrap();
    let args = daemon_args(&fake, dir.path());
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut unacknowledged: Vec<u64> = jobs.clone();
    let rounds = 4;
    for round in 0..rounds {
        let mut child = start(&args).await;
        let url = child.url.clone();
        let to_send = unacknowledged.clone();
        let c2 = c.clone();
        // Deliver while the clock runs; the kill lands during intake,
        // processing or a heal, wherever the random delay puts it.
        let sender = tokio::spawn(async move {
            let mut acked = Vec::new();
            for j in to_send {
                let r = post_job(&c2, &url, body_for(j), &format!("harness-{j}")).await;
                match r {
                    Ok(r) if r.status().is_success() => acked.push(j),
                    _ => break,
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            acked
        });
        let delay = 30 + rng.next(400);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.process.kill().await.unwrap();
        let acked = sender.await.unwrap();
        println!(
            "round {round}: killed after {delay} ms, {} deliveries acknowledged",
            acked.len()
        );
        unacknowledged.retain(|j| !acked.contains(j));
    }
    // The platform redelivers what was never acknowledged; the daemon
    // finishes everything.
    let last = start(&args).await;
    for j in &unacknowledged {
        assert!(deliver(&c, &last.url, *j).await.is_success());
    }
    let mut st = Value::Null;
    for _ in 0..600 {
        st = status(&c, &last.url).await;
        if st["queue_depth"] == 0 && st["jobs_processed"] == jobs.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        st["jobs_processed"],
        jobs.len(),
        "every accepted event processed once: {st}"
    );
    let records: Vec<Value> = c
        .get(format!("{}/api/jobs?limit=1000", last.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for j in &jobs {
        let n = records
            .iter()
            .filter(|r| {
                r["job"]["job_id"]
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    == Some(*j)
            })
            .count();
        assert_eq!(n, 1, "job {j} has {n} records");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut missed = 0;
    for j in &jobs {
        let reruns = fake.count("POST", &format!("/actions/jobs/{j}/rerun"));
        assert!(reruns <= 1, "job {j} was re-run {reruns} times");
        missed += usize::from(reruns == 0);
    }
    // Only an action cut off mid-call may be dropped (at most once, never twice):
    // each kill interrupts at most one heal per worker and one scheduled re-run.
    assert!(missed <= rounds * 3, "{missed} jobs never re-run");
    // Budgets were spent and survive: one per re-run-scheduled job.
    let scheduled = records
        .iter()
        .filter(|r| r["outcome"] == "rerun-scheduled")
        .count();
    let budgets = st["budgets"].as_array().unwrap().len();
    assert!(
        budgets >= scheduled,
        "{budgets} budgets for {scheduled} scheduled re-runs"
    );
    // The re-runs pass: breakers and statistics learn it, and that survives a kill too.
    for j in jobs.iter().take(3) {
        let mut v: Value = serde_json::from_slice(&body_for(*j)).unwrap();
        v["workflow_job"]["id"] = (j + 1_000).into();
        v["workflow_job"]["run_attempt"] = 2.into();
        v["workflow_job"]["conclusion"] = "success".into();
        let r = post_job(
            &c,
            &last.url,
            serde_json::to_vec(&v).unwrap(),
            &format!("passed-{j}"),
        )
        .await
        .unwrap();
        assert!(r.status().is_success());
    }
    for _ in 0..100 {
        if status(&c, &last.url).await["jobs_processed"] == jobs.len() + 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = status(&c, &last.url).await;
    let mut last = last;
    last.process.kill().await.unwrap();
    let after_restart = start(&args).await;
    let after = status(&c, &after_restart.url).await;
    assert!(
        !before["breakers"].as_array().unwrap().is_empty(),
        "{before}"
    );
    assert_eq!(before["breakers"], after["breakers"]);
    assert_eq!(before["budgets"], after["budgets"]);
    assert_eq!(before["stats"], after["stats"]);
}
