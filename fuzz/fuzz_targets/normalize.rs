//! Log reading and normalisation: arbitrary bytes (invalid UTF-8, ANSI,
//! CR redraws, endless lines) through the line reader and the normaliser.
#![no_main]
use guard::detect::normalize::normalize_into;
use guard::detect::reader::LineReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = LineReader::new(data, 4096);
    let mut raw = Vec::new();
    let mut text = String::new();
    let mut lines = 0usize;
    while let Ok(true) = reader.next_line(&mut raw) {
        normalize_into(&raw, 1024, &mut text);
        // The normaliser keeps its promise: bounded, one line.
        assert!(text.len() <= 1024 + 64, "{} bytes", text.len());
        assert!(!text.contains('\n'));
        lines += 1;
    }
    assert!(lines <= data.len() + 1);
});
