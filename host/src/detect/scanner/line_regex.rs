//! A rule's pattern as it checks single lines, compiled no further than
//! the lines it meets need.
//!
//! A rule's full regex (Unicode classes turned into UTF-8 automata, a
//! reverse program, a lazy DFA) takes 0.1–0.7 ms to compile in a fresh
//! process, and a small log's literals make a dozen rules candidates, most
//! of which then fail on their line: that compiling was most of a one-shot
//! `guard detect` after start-up. On a line of ASCII text the same pattern
//! compiled without Unicode — `\w`, `\s`, `\d`, `\b`, `.` and case folding
//! reduced to ASCII — matches exactly where the Unicode one does, with the
//! same groups at the same offsets: every character it meets is ASCII, and
//! on ASCII each of those constructs means the same either way. Its NFA
//! compiles about five times faster, and a PikeVM over it needs nothing
//! else. So a rule's first lines are checked that way while they are ASCII
//! and few: the PikeVM is slow per byte and the full regex fast once built,
//! so past [`CHEAP_BYTES`] of lines — a big log, or a daemon's hundredth
//! small one — the full regex is compiled and kept. Any other line, or a
//! pattern that cannot compile without Unicode (a `\p{…}` class, or a
//! non-ASCII character in a class), gets the full regex.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use regex::{Regex, RegexBuilder};
use regex_automata::PatternID;
use regex_automata::nfa::thompson::{self, pikevm::PikeVM};
use regex_automata::util::syntax;

use super::RULE_SIZE_LIMIT;

/// Bytes of lines a pattern checks the cheap way, over every scan of its
/// rule set, before its full regex is compiled. The PikeVM checks log lines
/// at about 50 MB/s, and the full regex takes 0.15–0.3 ms to compile: 8 KiB
/// of PikeVM costs about one compile, so no log pays more than twice what
/// the better choice in hindsight would have cost, and a small log's few
/// candidate lines never pay for a compile.
pub(super) const CHEAP_BYTES: usize = 8 << 10;

/// One pattern's engines, each compiled on first need.
#[derive(Debug, Default)]
pub(super) struct LineRegex {
    full: OnceLock<Option<Regex>>,
    ascii: OnceLock<Option<PikeVM>>,
    /// Bytes checked by `ascii` so far.
    cheap_bytes: AtomicUsize,
}

/// The named groups of a match that took part in it: (name, text).
pub(super) type Groups<'r, 'l> = Vec<(&'r str, &'l str)>;

impl LineRegex {
    /// The full regex of `pattern`; `None` if it does not compile (checked
    /// when the rule was loaded, so only reachable if limits differ).
    pub(super) fn full(&self, pattern: &str, rule: &str) -> Option<&Regex> {
        self.full
            .get_or_init(|| match build(pattern) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(rule, "rule regex failed to compile late: {e}");
                    None
                }
            })
            .as_ref()
    }

    /// Whether the full regex was compiled (or found broken): then it is
    /// what every later line uses, being the faster of the two.
    pub(super) fn has_full(&self) -> bool {
        self.full.get().is_some()
    }

    /// Whether `bytes` more of ASCII lines would still be checked the
    /// cheap way.
    pub(super) fn has_cheap_room(&self, bytes: usize) -> bool {
        !self.has_full()
            && self
                .cheap_bytes
                .load(Ordering::Relaxed)
                .saturating_add(bytes)
                <= CHEAP_BYTES
    }

    /// Whether lines of `bytes` in all, all ASCII or not (`ascii`), would
    /// be checked the cheap way: else the full regex is the better buy.
    pub(super) fn would_be_cheap(&self, bytes: usize, ascii: bool) -> bool {
        ascii && self.has_cheap_room(bytes)
    }

    /// Whether the engine `cheap` names is compiled.
    pub(super) fn is_ready(&self, cheap: bool) -> bool {
        self.has_full() || (cheap && self.ascii.get().is_some())
    }

    /// Compiles the engine `cheap` names (the full regex if the ASCII one
    /// cannot be built). Once the full regex exists every line uses it.
    pub(super) fn prepare(&self, pattern: &str, rule: &str, cheap: bool) {
        if !(cheap && self.ascii(pattern).is_some()) {
            self.full(pattern, rule);
        }
    }

    /// The ASCII-only engine; `None` if the pattern needs Unicode.
    fn ascii(&self, pattern: &str) -> Option<&PikeVM> {
        self.ascii
            .get_or_init(|| {
                PikeVM::builder()
                    .syntax(syntax::Config::new().unicode(false).utf8(false))
                    .thompson(
                        thompson::Config::new()
                            .utf8(false)
                            .nfa_size_limit(Some(RULE_SIZE_LIMIT)),
                    )
                    .build(pattern)
                    .ok()
            })
            .as_ref()
    }

    /// The first match of `pattern` in `line` with its named groups, or
    /// `None` (by either engine: the answer is the same).
    pub(super) fn captures<'r, 'l>(
        &'r self,
        pattern: &str,
        rule: &str,
        line: &'l str,
    ) -> Option<Groups<'r, 'l>> {
        if let Some(vm) = self.cheap_engine(pattern, line) {
            let mut cache = vm.create_cache();
            let mut caps = vm.create_captures();
            vm.captures(&mut cache, line.as_bytes(), &mut caps);
            if !caps.is_match() {
                return None;
            }
            let names = vm.get_nfa().group_info().pattern_names(PatternID::ZERO);
            let groups = names
                .enumerate()
                .filter_map(|(i, name)| {
                    let span = caps.get_group(i)?;
                    // ASCII: every offset is a character boundary.
                    Some((name?, line.get(span.range())?))
                })
                .collect();
            return Some(groups);
        }
        let regex = self.full(pattern, rule)?;
        let caps = regex.captures(line)?;
        let groups = regex
            .capture_names()
            .flatten()
            .filter_map(|name| Some((name, caps.name(name)?.as_str())))
            .collect();
        Some(groups)
    }

    /// Whether `pattern` matches anywhere in `line` (the engine chosen as
    /// by [`LineRegex::captures`]).
    pub(super) fn is_match(&self, pattern: &str, rule: &str, line: &str) -> bool {
        if let Some(vm) = self.cheap_engine(pattern, line) {
            let mut cache = vm.create_cache();
            return vm.is_match(&mut cache, line.as_bytes());
        }
        self.full(pattern, rule).is_some_and(|r| r.is_match(line))
    }

    /// The ASCII engine, when it may check `line` (counted as checked).
    /// The line must be ASCII: that is what makes the answers the same.
    fn cheap_engine(&self, pattern: &str, line: &str) -> Option<&PikeVM> {
        if !line.is_ascii() || self.has_full() {
            return None;
        }
        let before = self.cheap_bytes.fetch_add(line.len(), Ordering::Relaxed);
        if before.saturating_add(line.len()) > CHEAP_BYTES {
            return None;
        }
        self.ascii(pattern)
    }
}

/// The full regex of a pattern, within the per-rule limit.
pub(super) fn build(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(RULE_SIZE_LIMIT)
        .dfa_size_limit(RULE_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            format!(
                "does not compile: {}",
                e.to_string().lines().last().unwrap_or_default().trim()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterns whose Unicode and ASCII readings differ somewhere, each
    /// with lines: the ASCII engine must answer every ASCII line as the
    /// full regex does, and never be asked about another.
    #[test]
    fn the_ascii_engine_answers_ascii_lines_as_the_full_regex_does() {
        let cases: &[(&str, &[&str])] = &[
            (
                r"error in (?P<unit>\w+)\b",
                &["error in core_2 now", "error in módulo", "error in "],
            ),
            (
                r"(?i)KELVIN (?P<n>\d+)\s+(?P<rest>\S+)",
                &["kelvin 12  x/y", "\u{212A}ELVIN 3 z", "Kelvin ４ z"],
            ),
            (
                r"^(?P<who>[^:]+): (?:failed|FAILED)(?: \((?P<why>.*)\))?$",
                &[
                    "npm: failed (exit 1)",
                    "npm: failed",
                    "npm: ok",
                    "ñpm: failed",
                ],
            ),
            (r"\bdone\b", &["well done.", "undone", "dóne done"]),
            (r"[\p{Greek}]+ fault", &["αβ fault", "ab fault"]),
        ];
        for (pattern, lines) in cases {
            let full = build(pattern).unwrap();
            for line in *lines {
                let lr = LineRegex::default();
                let got = lr.captures(pattern, "r", line);
                // Only a line the ASCII engine may not check (or a pattern
                // it cannot compile) builds the full regex.
                assert_eq!(
                    lr.has_full(),
                    !line.is_ascii() || pattern.contains(r"\p"),
                    "{pattern} on {line}"
                );
                let want = full.captures(line).map(|c| {
                    full.capture_names()
                        .flatten()
                        .filter_map(|n| Some((n, c.name(n)?.as_str())))
                        .collect::<Vec<_>>()
                });
                assert_eq!(got, want, "{pattern} on {line}");
                let m = LineRegex::default().is_match(pattern, "r", line);
                assert_eq!(m, full.is_match(line), "{pattern} on {line}");
            }
        }
    }

    /// Past its share of cheap lines a pattern compiles its full regex and
    /// keeps it; the answers stay the same throughout.
    #[test]
    fn the_full_regex_takes_over_once_the_cheap_lines_are_spent() {
        let lr = LineRegex::default();
        let line = "x1 ".repeat(1000);
        let mut checked = 0;
        while !lr.has_full() {
            assert_eq!(
                lr.captures(r"x(?P<n>\d)", "r", &line),
                Some(vec![("n", "1")])
            );
            checked += line.len();
            assert!(checked <= CHEAP_BYTES + line.len(), "never took over");
        }
        assert!(checked > CHEAP_BYTES - line.len());
        assert_eq!(
            lr.captures(r"x(?P<n>\d)", "r", "x2"),
            Some(vec![("n", "2")])
        );
        assert!(!lr.has_cheap_room(1));
    }
}
