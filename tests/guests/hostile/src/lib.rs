//! Test guest: a detector that misbehaves in the way its job's name asks
//! (`job.job_name`), so one component covers the hostile-plugin suite:
//!
//! - `loop-new`, `loop-feed`, `loop-finish`: an infinite loop in that export;
//! - `recurse`: unbounded recursion in `feed` (stack exhaustion);
//! - `panic`: a Rust panic in `feed` (a trap);
//! - `grow`: allocate without bound in `finish`;
//! - `huge-string`: a finding whose evidence is a 1 GiB string;
//! - `many-findings`: a million findings;
//! - `flood`: host calls (kv) in a tight loop, reporting what stopped it;
//! - `escape`: `fs.read` with `..`, an absolute path and a symlink out of
//!   its root, reporting each answer;
//! - `boom-or-ok`: traps when a chunk contains `boom`, finds nothing otherwise;
//! - `http URL`: GETs URL and reports the status and body (or the error);
//! - `special`: `fs.read` of a FIFO, a socket and a directory in its root
//!   (none may block or be read), reporting each answer;
//! - `sleep-feed MS`: sleeps MS milliseconds in every `feed` (no CPU spent),
//!   so only a deadline over the whole log stops it;
//! - `remember`: reports how many bytes of a 768 KiB static area (many
//!   pages of its linear memory) an earlier instance left non-zero, then
//!   writes all of it: a reused pool slot must never show them.

use std::sync::atomic::{AtomicU8, Ordering};

use guard_sdk::{Category, Detector, Error, Evidence, Finding, Job, PluginInfo};

/// Zero in a fresh instance (it lives in the module's zeroed data).
static SCRIBBLE: [AtomicU8; 768 << 10] = [const { AtomicU8::new(0) }; 768 << 10];

struct Hostile {
    mode: String,
}

fn finding(facts: Vec<(String, String)>, text: String) -> Finding {
    Finding {
        rule: "hostile.report".into(),
        category: Category::Other,
        failure_type: "hostile".into(),
        confidence: 0.01,
        evidence: vec![Evidence { line: 1, text }],
        remedies: vec![],
        facts,
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64, pad: [u64; 64]) -> u64 {
    let mut local = pad;
    local[(depth % 64) as usize] = depth;
    recurse(depth + 1, std::hint::black_box(local)) + local[0]
}

fn describe<T>(r: Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(Error::Denied(m)) => format!("denied: {m}"),
        Err(Error::NotFound(m)) => format!("not-found: {m}"),
        Err(Error::Invalid(m)) => format!("invalid: {m}"),
        Err(Error::Unavailable(m)) => format!("unavailable: {m}"),
        Err(Error::Limited(m)) => format!("limited: {m}"),
    }
}

impl Detector for Hostile {
    fn info() -> PluginInfo {
        guard_sdk::info("guest-hostile", "0.1.0", "misbehaves on request")
    }
    fn new(job: Job) -> Self {
        if job.job_name == "loop-new" {
            spin();
        }
        Hostile { mode: job.job_name }
    }
    fn feed(&mut self, chunk: &str, _first_line: u32) {
        if let Some(ms) = self.mode.strip_prefix("sleep-feed ") {
            let ms: u64 = ms.parse().unwrap_or(100);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            return;
        }
        match self.mode.as_str() {
            "loop-feed" => spin(),
            "recurse" => {
                std::hint::black_box(recurse(0, [0; 64]));
            }
            "panic" => panic!("hostile guest panics on purpose"),
            "boom-or-ok" if chunk.contains("boom") => panic!("boom"),
            _ => {}
        }
    }
    fn finish(&mut self) -> Vec<Finding> {
        match self.mode.as_str() {
            "loop-finish" => spin(),
            "grow" => {
                let mut keep: Vec<Vec<u8>> = Vec::new();
                loop {
                    keep.push(vec![7u8; 1 << 20]);
                    std::hint::black_box(&keep);
                }
            }
            "huge-string" => vec![finding(Vec::new(), "x".repeat(1 << 30))],
            "many-findings" => (0..1_000_000)
                .map(|i| finding(Vec::new(), format!("finding {i}")))
                .collect(),
            "flood" => {
                let mut calls = 0u64;
                let stopped = loop {
                    calls += 1;
                    if let Err(e) = guard_sdk::kv::set("k", b"v") {
                        break describe::<()>(Err(e));
                    }
                    if calls > 10_000_000 {
                        break "never stopped".into();
                    }
                };
                vec![finding(
                    vec![
                        ("calls".into(), calls.to_string()),
                        ("stopped".into(), stopped),
                    ],
                    "flood".into(),
                )]
            }
            "special" => {
                let facts = ["fifo", "socket", "subdir", "inside.txt"]
                    .iter()
                    .map(|p| {
                        (
                            p.to_string(),
                            describe(guard_sdk::fs::read("root", p, 4096)),
                        )
                    })
                    .collect();
                vec![finding(facts, "special".into())]
            }
            "escape" => {
                let facts = [
                    "../outside.txt",
                    "/etc/passwd",
                    "link-out/outside.txt",
                    "inside.txt",
                ]
                .iter()
                .map(|p| {
                    (
                        p.to_string(),
                        describe(guard_sdk::fs::read("root", p, 4096)),
                    )
                })
                .collect();
                vec![finding(facts, "escape".into())]
            }
            m if m.starts_with("http ") => {
                let r = guard_sdk::http::send(&guard_sdk::http::Request {
                    method: "GET".into(),
                    url: m["http ".len()..].to_string(),
                    headers: vec![],
                    body: None,
                });
                let facts = match r {
                    Ok(resp) => vec![
                        ("status".to_string(), resp.status.to_string()),
                        (
                            "body".to_string(),
                            String::from_utf8_lossy(&resp.body).into_owned(),
                        ),
                    ],
                    Err(e) => vec![("error".to_string(), describe::<()>(Err(e)))],
                };
                vec![finding(facts, "http".into())]
            }
            "remember" => {
                let dirty = SCRIBBLE
                    .iter()
                    .filter(|b| b.load(Ordering::Relaxed) != 0)
                    .count();
                for b in &SCRIBBLE {
                    b.store(0xAA, Ordering::Relaxed);
                }
                vec![finding(
                    vec![("dirty".into(), dirty.to_string())],
                    "remember".into(),
                )]
            }
            _ => Vec::new(),
        }
    }
}

guard_sdk::detector!(Hostile);
