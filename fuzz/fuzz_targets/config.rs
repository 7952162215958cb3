//! guard.toml parsing, interpolation and validation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = |name: &str| (name.len() < 8).then(|| format!("v-{name}"));
    let _ = guard::config::Config::parse(text, std::path::Path::new("fuzz.toml"), &env);
});
