//! GitHub webhook parsing past authentication: the body is signed with the
//! secret, so the fuzzer reaches the JSON handling. The first byte picks the
//! event header.
#![no_main]
use axum::http::HeaderMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let event = ["workflow_job", "workflow_run", "ping", "push"][usize::from(pick) % 4];
    let mut h = HeaderMap::new();
    h.insert("x-github-event", event.parse().unwrap());
    h.insert("x-github-delivery", "fuzz".parse().unwrap());
    h.insert("x-hub-signature-256", guard::intake::github::sign(body, "s").parse().unwrap());
    if let Ok(p) = guard::intake::github::parse(&h, body, Some("s")) {
        for e in &p.events {
            let _ = e.fact_key();
        }
    }
    // Unsigned or wrongly signed: always refused.
    h.insert("x-hub-signature-256", "sha256=00".parse().unwrap());
    assert!(guard::intake::github::parse(&h, body, Some("s")).is_err());
});
