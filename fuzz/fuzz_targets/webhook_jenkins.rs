//! Jenkins notification parsing past the token check.
#![no_main]
use axum::http::HeaderMap;
use guard::platform::jenkins::JobPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = HeaderMap::new();
    if let Ok(p) = guard::intake::jenkins::parse(&h, Some("t"), data, Some("t")) {
        for e in &p.events {
            // A parsed Jenkins job path never climbs out of the job tree:
            // `job/NAME` pairs whose names, once Jenkins decodes them, are
            // neither `.` nor `..` and hold no `/` or `\`. (`repository` is
            // the name shown to people and may say anything.)
            let path = e.job().api_id.as_deref().unwrap_or_default();
            let segments: Vec<&str> = path.split('/').collect();
            assert!(segments.len().is_multiple_of(2), "{path}");
            for pair in segments.chunks(2) {
                assert_eq!(pair[0], "job", "{path}");
                let name = pair[1];
                assert!(!name.is_empty() && name != "." && name != "..", "{path}");
                assert!(!name.contains("%2F") && !name.contains("%5C"), "{path}");
                assert!(!name.contains(['?', '#', '\\']), "{path}");
            }
            // The path is already as Jenkins spells it.
            assert_eq!(JobPath::parse(path).map(|p| p.url_path()).as_deref(), Ok(path));
        }
    }
});
