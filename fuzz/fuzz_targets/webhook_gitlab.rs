//! GitLab webhook parsing past the token check.
#![no_main]
use axum::http::HeaderMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut h = HeaderMap::new();
    h.insert("x-gitlab-token", "t".parse().unwrap());
    if let Ok(p) = guard::intake::gitlab::parse(&h, data, Some("t")) {
        for e in &p.events {
            let _ = e.fact_key();
        }
    }
});
