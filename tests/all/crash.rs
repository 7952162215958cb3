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

/// Not a test: the daemon process the crash test starts and kills. It does
/// nothing unless started by that test (with its arguments in the environment).
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

async fn status(c: &reqwest::Client, url: &str) -> Value {
    c.get(format!("{url}/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn body_for(job_id: u64) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&fixture("github/workflow_job.1.completed.json")).unwrap();
    v["workflow_job"]["id"] = job_id.into();
    // Distinct jobs: one job name would share one retry budget (2 per commit).
    v["workflow_job"]["name"] = format!("job-{job_id}").into();
    serde_json::to_vec(&v).unwrap()
}

async fn deliver(c: &reqwest::Client, url: &str, job_id: u64) -> reqwest::StatusCode {
    let body = body_for(job_id);
    c.post(format!("{url}/webhooks/github"))
        .header("x-github-event", "workflow_job")
        .header("x-github-delivery", format!("crash-{job_id}"))
        .header("x-hub-signature-256", sign(&body, SECRET))
        .body(body)
        .send()
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
    let config = dir.path().join("guard.toml");
    std::fs::write(
        &config,
        format!(
            "[github]\napi_url = \"{}\"\ntoken = \"t\"\nwebhook_secret = \"{SECRET}\"\n\n[heal]\nbackoff_base_secs = 0\n\n[server]\nworkers = 2\n",
            fake.url()
        ),
    )
    .unwrap();
    let args: Vec<String> = [
        "--data",
        dir.path().join("data").to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "run",
        "--listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
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
