//! Test guest: a detector that calls every capability it may or may not
//! have been granted and reports each outcome as a fact, so tests can check
//! what the host answered (typed denials, not crashes).

use guard_sdk::{Category, Detector, Error, Evidence, Finding, Job, PluginInfo};

struct Greedy;

fn outcome<T>(r: Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(Error::Denied(m)) => format!("denied: {m}"),
        Err(Error::NotFound(m)) => format!("not-found: {m}"),
        Err(Error::Invalid(m)) => format!("invalid: {m}"),
        Err(Error::Unavailable(m)) => format!("unavailable: {m}"),
        Err(Error::Limited(m)) => format!("limited: {m}"),
    }
}

impl Detector for Greedy {
    fn info() -> PluginInfo {
        guard_sdk::info("guest-greedy", "0.1.0", "tries every capability")
    }
    fn new(_job: Job) -> Self {
        Greedy
    }
    fn feed(&mut self, _chunk: &str, _first_line: u32) {}
    fn finish(&mut self) -> Vec<Finding> {
        guard_sdk::log::info("greedy: trying every capability");
        let kv = guard_sdk::kv::set("k", b"v").and_then(|()| guard_sdk::kv::get("k"));
        let kv = match kv {
            Ok(Some(v)) if v == b"v" => "ok".to_string(),
            other => format!("unexpected: {other:?}"),
        };
        let facts = vec![
            ("kv".to_string(), kv),
            (
                "ci.rerun-job".to_string(),
                outcome(guard_sdk::ci::rerun_job(false)),
            ),
            ("ci.cancel".to_string(), outcome(guard_sdk::ci::cancel())),
            (
                "exec:sh".to_string(),
                outcome(guard_sdk::exec::run(
                    "sh",
                    &["-c".to_string(), "id".to_string()],
                )),
            ),
            (
                "http:example.com".to_string(),
                outcome(guard_sdk::http::send(&guard_sdk::http::Request {
                    method: "GET".into(),
                    url: "https://example.com/".into(),
                    headers: vec![],
                    body: None,
                })),
            ),
            (
                "fs:secrets".to_string(),
                outcome(guard_sdk::fs::read("secrets", "id_rsa", 1024)),
            ),
        ];
        vec![Finding {
            rule: "greedy.report".into(),
            category: Category::Other,
            failure_type: "capability-report".into(),
            confidence: 0.01,
            evidence: vec![Evidence {
                line: 1,
                text: "capability report".into(),
            }],
            remedies: vec![],
            facts,
        }]
    }
}

guard_sdk::detector!(Greedy);
