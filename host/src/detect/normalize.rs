//! Log normalisation that keeps line numbers: one output line per input
//! line, with ANSI escape sequences, GitHub timestamp prefixes and
//! `##[group]`/`##[error]` markers, GitLab section markers, carriage-return
//! progress redraws and CRLF removed, and over-long lines cut. Linear in the
//! input, no regex: this runs on every byte of every log.

/// A normalised line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based number in the original log.
    pub number: u32,
    /// The cleaned text.
    pub text: String,
    /// The CI marked this line as an error (`##[error]`, `::error`).
    pub error_marker: bool,
}

/// Normalises one raw line (without its `\n`) into `out`, keeping at most
/// `max_bytes` bytes of text. Returns whether the line carried an error marker.
pub fn normalize_into(raw: &[u8], max_bytes: usize, out: &mut String) -> bool {
    out.clear();
    let mut raw = raw;
    if let [rest @ .., b'\r'] = raw {
        raw = rest;
    }
    // A bare CR redraws the line (progress bars): what is visible is the
    // last non-empty segment.
    if raw.contains(&b'\r') {
        raw = raw
            .split(|&b| b == b'\r')
            .rev()
            .find(|seg| !strip_ansi_is_blank(seg))
            .unwrap_or(&[]);
    }
    let text = String::from_utf8_lossy(raw);
    let mut s: &str = &text;
    s = strip_timestamp(s);
    let mut error_marker = false;
    if let Some(rest) = s.strip_prefix("##[") {
        if let Some(end) = rest.find(']') {
            let marker = &rest[..end];
            error_marker = marker == "error";
            s = &rest[end + 1..];
        }
    } else if let Some(rest) = s.strip_prefix("::error") {
        // Workflow command: "::error file=x,line=1::message"
        error_marker = true;
        s = rest.split_once("::").map(|(_, m)| m).unwrap_or(rest);
    }
    strip_ansi_into(s, max_bytes, out);
    // GitLab: "section_start:1700000000:step_script\r\e[0KExecuting…" — the CR
    // split above already dropped the marker part; a line that is only a
    // section marker becomes empty.
    if out.starts_with("section_start:") || out.starts_with("section_end:") {
        out.clear();
    }
    error_marker
}

fn strip_ansi_is_blank(seg: &[u8]) -> bool {
    let mut i = 0;
    while i < seg.len() {
        if seg[i] == 0x1b {
            i = skip_escape(seg, i);
            continue;
        }
        if !seg[i].is_ascii_whitespace() {
            return false;
        }
        i += 1;
    }
    true
}

/// Index just past the escape sequence starting at `i` (which is ESC).
fn skip_escape(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    match b.get(j) {
        // CSI: ESC [ params… final byte in 0x40..=0x7e
        Some(b'[') => {
            j += 1;
            while j < b.len() && !(0x40..=0x7e).contains(&b[j]) {
                j += 1;
            }
            (j + 1).min(b.len())
        }
        // OSC: ESC ] … BEL or ESC \
        Some(b']') => {
            j += 1;
            while j < b.len() {
                if b[j] == 0x07 {
                    return j + 1;
                }
                if b[j] == 0x1b && b.get(j + 1) == Some(&b'\\') {
                    return j + 2;
                }
                j += 1;
            }
            b.len()
        }
        Some(_) => j + 1,
        None => j,
    }
}

fn strip_ansi_into(s: &str, max_bytes: usize, out: &mut String) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        if b[i] == 0x1b {
            push_capped(out, &s[start..i], max_bytes);
            i = skip_escape(b, i);
            // Escape sequences are ASCII, so `i` is a char boundary unless a
            // malformed sequence swallowed part of a multi-byte character.
            while i < b.len() && !s.is_char_boundary(i) {
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
        if out.len() >= max_bytes {
            return;
        }
    }
    push_capped(out, &s[start.min(s.len())..], max_bytes);
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
}

fn push_capped(out: &mut String, piece: &str, max_bytes: usize) {
    let room = max_bytes.saturating_sub(out.len());
    if piece.len() <= room {
        out.push_str(piece);
    } else {
        let mut cut = room;
        while !piece.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&piece[..cut]);
    }
}

/// Normalises a whole in-memory log (learning and mining work on single
/// files; detection streams instead). One entry per `\n`-separated line.
pub fn normalized_lines(bytes: &[u8], max_bytes: usize) -> Vec<String> {
    let mut text = String::new();
    bytes
        .split(|&b| b == b'\n')
        .map(|raw| {
            normalize_into(raw, max_bytes, &mut text);
            text.clone()
        })
        .collect()
}

/// Strips a leading `2024-01-02T03:04:05.1234567Z ` (GitHub Actions) prefix.
fn strip_timestamp(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() < 21
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return s;
    }
    if !b[..4].iter().all(u8::is_ascii_digit) {
        return s;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if b.get(i) == Some(&b'Z') {
        i += 1;
    }
    if b.get(i) == Some(&b' ') {
        return &s[i + 1..];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> (String, bool) {
        let mut out = String::new();
        let e = normalize_into(raw.as_bytes(), 100, &mut out);
        (out, e)
    }

    #[test]
    fn github_prefixes_and_markers() {
        assert_eq!(
            norm("2024-05-01T10:00:00.1234567Z ##[error]Process completed with exit code 1."),
            ("Process completed with exit code 1.".into(), true)
        );
        assert_eq!(
            norm("2024-05-01T10:00:00.1234567Z ##[group]Run npm ci"),
            ("Run npm ci".into(), false)
        );
        assert_eq!(
            norm("::error file=a.rs,line=3::boom"),
            ("boom".into(), true)
        );
    }

    #[test]
    fn ansi_crlf_and_progress() {
        assert_eq!(norm("\x1b[1;31mERROR\x1b[m] x\r").0, "ERROR] x");
        assert_eq!(norm("10%\r50%\r100% done").0, "100% done");
        assert_eq!(
            norm("section_start:1700000000:build\r\x1b[0Ksection_start:1:x").0,
            ""
        );
        assert_eq!(norm("\x1b]0;title\x07visible").0, "visible");
    }

    #[test]
    fn long_lines_are_cut_at_char_boundaries() {
        let long = "é".repeat(200);
        let (out, _) = norm(&long);
        assert!(out.len() <= 100 && out.chars().all(|c| c == 'é'));
    }

    #[test]
    fn malformed_input_does_not_panic() {
        for raw in [
            &b"\x1b"[..],
            b"\x1b[",
            b"\x1b]",
            b"\xff\xfe\x1b[31",
            b"\r\r\r",
            b"2024-01-01T00:00:00",
        ] {
            let mut out = String::new();
            normalize_into(raw, 10, &mut out);
        }
    }
}
