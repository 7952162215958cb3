//! Generalising a failure line into a regex: the variable parts (timestamps,
//! URLs, paths, quoted strings, hex ids, versions, numbers) are masked, the
//! rest is kept literally, runs of blanks match any blanks.

use std::sync::OnceLock;

use regex::Regex;

/// Masks in priority order: (what it matches, the regex that replaces it).
const MASKS: &[(&str, &str)] = &[
    (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
        r"\S+(?: \S+)?",
    ),
    (r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?", r"[\d:.,]+"),
    (r#"https?://[^\s'"`)\]]+"#, r"https?://\S+"),
    (r"'[^']*'", r"'[^']*'"),
    (r#""[^"]*""#, r#""[^"]*""#),
    (r"`[^`]*`", r"`[^`]*`"),
    (
        r"(?:[A-Za-z]:)?(?:\.{0,2}/|\\)[\w.@+~-]+(?:[/\\][\w.@+~-]+)*/?",
        r"\S+",
    ),
    (r"\b[\w.-]+(?:/[\w.@+-]+)+\b", r"\S+"),
    (
        r"\bv?\d+(?:\.\d+){1,3}(?:[-+][\w.]+)?\b",
        r"v?\d+(?:\.\d+)+\S*",
    ),
    (
        r"\b(?:0x)?[0-9a-fA-F]*\d[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b(?:0x)?[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\d[0-9a-fA-F]*\b",
        r"[0-9a-fA-Fx]+",
    ),
    (r"\d+", r"\d+"),
];

fn masks() -> &'static Vec<(Regex, &'static str)> {
    static M: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    M.get_or_init(|| {
        MASKS
            .iter()
            .filter_map(|(p, r)| Regex::new(p).ok().map(|re| (re, *r)))
            .collect()
    })
}

/// Hex-looking words shorter than this stay literal (`cafe`, `add`, `bad1`).
const MIN_HEX: usize = 7;

/// The generalised regex for `line`.
pub fn generalize(line: &str) -> String {
    let line = line.trim();
    let mut out = String::new();
    let mut pos = 0;
    while pos < line.len() {
        // The earliest mask match from here (first mask wins ties).
        let mut best: Option<(usize, usize, &str)> = None;
        for (re, replacement) in masks() {
            if let Some(m) = re.find_at(line, pos) {
                let is_short_hex = *replacement == r"[0-9a-fA-Fx]+" && m.len() < MIN_HEX;
                if is_short_hex {
                    continue;
                }
                if best.is_none_or(|(s, _, _)| m.start() < s) {
                    best = Some((m.start(), m.end(), replacement));
                }
            }
        }
        match best {
            Some((start, end, replacement)) => {
                push_literal(&mut out, &line[pos..start]);
                out.push_str(replacement);
                pos = end.max(start + 1).min(line.len());
            }
            None => {
                push_literal(&mut out, &line[pos..]);
                break;
            }
        }
    }
    out
}

/// Escapes literal text, letting any run of blanks match any run of blanks.
fn push_literal(out: &mut String, text: &str) {
    let mut first = true;
    for part in text.split([' ', '\t']) {
        if !first && !out.ends_with(r"\s+") {
            out.push_str(r"\s+");
        }
        first = false;
        out.push_str(&regex::escape(part));
    }
}

/// Words that make a line a likely failure line.
const FAILURE_WORDS: &[&str] = &[
    "error",
    "fail",
    "fatal",
    "exception",
    "denied",
    "refused",
    "timeout",
    "timed out",
    "cannot",
    "unable",
    "panic",
    "rejected",
    "abort",
];

/// Generic trailers that say a step failed without saying why.
const TRAILERS: &[&str] = &[
    "process completed with exit code",
    "build failure",
    "finished: failure",
    "error: job failed",
    "build failed",
    "exited with code",
    "exit status",
];

/// The best candidate failure line: the last line with a failure word that
/// is not a generic trailer. `lines` are normalised.
pub fn best_line<'a>(lines: impl IntoIterator<Item = (u32, &'a str)>) -> Option<(u32, &'a str)> {
    let mut best = None;
    for (n, text) in lines {
        let t = text.trim();
        if t.len() < 10 || t.len() > 600 {
            continue;
        }
        let lower = t.to_ascii_lowercase();
        if TRAILERS.iter().any(|w| lower.contains(w)) {
            continue;
        }
        if FAILURE_WORDS.iter().any(|w| lower.contains(w)) {
            best = Some((n, t));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_parts_are_masked() {
        let line = "2024-05-01T10:00:00Z ACME fetch of https://acme.example/a/b.tgz failed for build 12345 in /var/cache/acme/8f3a9c21 (v1.2.3, id 9f86d081884c7d65)";
        let re = Regex::new(&generalize(line)).unwrap();
        assert!(re.is_match(line));
        let other = "2025-12-31T23:59:59Z ACME fetch of https://acme.example/x.tgz failed for build 7 in /tmp/acme/cafe (v10.0.1, id deadbeef00112233)";
        assert!(re.is_match(other), "{}", generalize(line));
        assert!(!re.is_match("ACME fetch of https://acme.example/x.tgz succeeded for build 7"));
    }

    #[test]
    fn quoted_and_regex_special_characters() {
        let line = "E: Package 'libfoo-dev' has no candidate (see [docs] *.md?)";
        let g = generalize(line);
        assert!(
            Regex::new(&g)
                .unwrap()
                .is_match("E: Package 'libbar' has no candidate (see [docs] *.md?)"),
            "{g}"
        );
    }

    #[test]
    fn best_line_skips_trailers() {
        let lines = [
            (1, "Run build"),
            (2, "ACME registry rejected the upload: quota"),
            (3, "Process completed with exit code 1."),
        ];
        assert_eq!(
            best_line(lines.iter().map(|(n, t)| (*n, *t))),
            Some((2, "ACME registry rejected the upload: quota"))
        );
    }
}
