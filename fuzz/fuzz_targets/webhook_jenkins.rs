//! Jenkins notification parsing past the token check.
#![no_main]
use axum::http::HeaderMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = HeaderMap::new();
    if let Ok(p) = guard::intake::jenkins::parse(&h, Some("t"), data, Some("t")) {
        for e in &p.events {
            // A parsed Jenkins job path never climbs out of the job tree.
            assert!(!e.job().repository.contains(".."));
        }
    }
});
