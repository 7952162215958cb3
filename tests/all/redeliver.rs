//! guard as a GitHub App: deliveries GitHub could not make while guard was
//! down are asked for again (signed as the App), and only those — not the
//! ones guard refused on purpose, nor the ones it received after all.
//! GitHub's redelivery then arrives as a webhook and is handled once.

use std::time::Duration;

use guard::config::GitHubApp;
use guard::daemon::Daemon;
use guard::platform::Platforms;
use guard::platform::timestamp::rfc3339;
use guard::store::now_ms;
use serde_json::{Value, json};

use crate::daemon::{Harness, NET_LOG, SECRET, config_for, failed_job};
use crate::fake::Fake;

/// A throwaway RSA key generated for these tests (`openssl genrsa`); it
/// signs nothing anywhere else.
fn key_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/github-app-test-key.pem")
}

fn delivery(id: u64, guid: &str, status_code: u16, minutes_ago: u64) -> Value {
    json!({
        "id": id,
        "guid": guid,
        "delivered_at": rfc3339(now_ms() - minutes_ago * 60_000),
        "redelivery": false,
        "duration": 0.1,
        "status": if status_code == 0 { "failed to connect" } else { "Invalid HTTP Response" },
        "status_code": status_code,
        "event": "workflow_job",
        "action": "completed",
        "installation_id": 7,
        "repository_id": 9
    })
}

/// The claims of a JWT, unverified (the fake is not GitHub).
fn claims(bearer: &str) -> (Value, Value) {
    use base64::Engine;
    let token = bearer.strip_prefix("Bearer ").unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let decode = |p: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    };
    (decode(parts[0]), decode(parts[1]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_app_deliveries_are_redelivered_once_and_handled_once() {
    let fake = Fake::start(false).await;
    fake.set_log("4242", NET_LOG);
    fake.set_app_deliveries(json!([
        // guard was down: no answer.
        delivery(101, "missed-1", 0, 5),
        // Refused on purpose (a bad signature): not worth sending again.
        delivery(102, "refused-1", 401, 6),
        // A server error, but guard has it from a later attempt.
        delivery(103, "got-later", 502, 7),
        // Answered: GitHub does not list it as failed.
        delivery(105, "fine", 202, 8),
        // Older than the look-back (newest first, as GitHub lists): the
        // listing stops here.
        delivery(104, "ancient", 0, 60 * 48),
    ]));
    let mut config = config_for(&fake);
    let github = config.github.as_mut().unwrap();
    github.app = Some(GitHubApp {
        id: 424_242,
        private_key: None,
        private_key_file: Some(key_file()),
    });
    // The test drives the passes.
    config.catch_up.interval_secs = 0;
    let runtime = crate::util::runtime_with(config.clone(), &[]).await;
    let daemon = Daemon::new(runtime, Platforms::from_config(&config).unwrap(), false).unwrap();
    daemon.start();
    let app = guard::server::router(daemon.clone());
    let h = Harness { daemon, app, fake };
    // The delivery guard did receive.
    let (s, _) = h
        .github(
            "workflow_job",
            "got-later",
            &failed_job(4343, "failure"),
            SECRET,
        )
        .await;
    assert!(s.is_success());

    let done = h.daemon.redeliver_missed().await.unwrap().unwrap();
    assert_eq!(done.listed, 3, "the failed deliveries of the last 24 h");
    assert_eq!(done.requested, ["missed-1"]);
    let asked: Vec<_> = h
        .fake
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/app/hook/deliveries"))
        .collect();
    assert_eq!(
        asked
            .iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect::<Vec<_>>(),
        [
            "GET /app/hook/deliveries",
            "POST /app/hook/deliveries/101/attempts"
        ]
    );
    assert!(
        asked[0].query.contains("status=failure"),
        "{}",
        asked[0].query
    );
    // Both as GitHub's OpenAPI description has them.
    let spec = crate::openapi::spec();
    let mut problems = Vec::new();
    for s in &asked {
        crate::openapi::check(&spec, s, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // Signed as the App: an RS256 token issued by its id, short-lived.
    for s in &asked {
        let auth = s.headers["authorization"].to_str().unwrap();
        let (header, body) = claims(auth);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(body["iss"], "424242");
        let (iat, exp) = (body["iat"].as_u64().unwrap(), body["exp"].as_u64().unwrap());
        assert!(exp > iat && exp - iat <= 600, "{body}");
    }

    // GitHub redelivers: the same delivery id, now received.
    let (s, v) = h
        .github(
            "workflow_job",
            "missed-1",
            &failed_job(4242, "failure"),
            SECRET,
        )
        .await;
    assert!(s.is_success(), "{v}");
    for _ in 0..400 {
        if h.daemon
            .queue
            .jobs(100)
            .unwrap()
            .iter()
            .any(|r| r.job.job_id == "4242")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let records = h.daemon.queue.jobs(100).unwrap();
    let r = records.iter().find(|r| r.job.job_id == "4242").unwrap();
    assert_eq!(r.category.as_deref(), Some("network"), "{r:?}");

    // The next pass asks for nothing: guard has every missed delivery now.
    let again = h.daemon.redeliver_missed().await.unwrap().unwrap();
    assert!(again.requested.is_empty(), "{again:?}");
    assert_eq!(
        h.fake.count("POST", "/attempts"),
        1,
        "one redelivery in all"
    );
}

#[tokio::test]
async fn a_key_that_is_not_rsa_pem_is_a_clear_configuration_error() {
    let fake = Fake::start(false).await;
    let mut config = config_for(&fake);
    config.github.as_mut().unwrap().app = Some(GitHubApp {
        id: 1,
        private_key: Some("not a key".into()),
        private_key_file: None,
    });
    let e = Platforms::from_config(&config).unwrap_err().to_string();
    assert!(e.contains("[github.app]") && e.contains("PEM"), "{e}");
    config.github.as_mut().unwrap().app = Some(GitHubApp {
        id: 1,
        private_key: None,
        private_key_file: None,
    });
    let e = Platforms::from_config(&config).unwrap_err().to_string();
    assert!(e.contains("exactly one"), "{e}");
}
