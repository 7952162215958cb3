//! Required literals: for each rule, a few strings of which every match of
//! its pattern contains at least one (ASCII case folded). One Aho-Corasick
//! pass over a block then names the lines a rule can possibly match, and
//! only those lines meet the rule's own regex. Building that automaton
//! takes well under a millisecond for hundreds of rules, where a `RegexSet`
//! of the same rules costs tens of milliseconds at every start-up.
//!
//! The walk over the pattern's HIR keeps only what is certain: a literal
//! inside an optional part (`?`, `*`, `{0,n}`) requires nothing, an
//! alternation requires one of its branches' literals (or nothing when a
//! branch requires nothing), and a concatenation requires its most
//! selective run of literal pieces. A rule with no literal of at least
//! [`MIN_LEN`] bytes is searched the old way, by a `RegexSet` of such rules.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Shortest useful literal: shorter ones occur on almost every line.
pub const MIN_LEN: usize = 3;
/// Alternatives kept per requirement; more are not selective.
const MAX_ALTERNATIVES: usize = 64;
/// Characters of a class enumerated as alternatives.
const MAX_CLASS_CHARS: usize = 4;

/// Non-ASCII characters that Unicode simple case folding makes equal to
/// an ASCII letter: `ſ` (s) and the Kelvin sign (k). `(?i)s` matches `ſ`;
/// rather than doubling a literal's alternatives for every `s` and `k`,
/// the literals keep the ASCII letter and the rule is also a candidate on
/// any line holding one of these ([`Required::folds`]).
pub const FOLDS: [char; 2] = ['\u{17f}', '\u{212a}'];

/// What a rule requires of a line it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    /// One of these occurs in every match (ASCII case folded).
    pub literals: Vec<String>,
    /// Unless the match spells an `s` or `k` as one of [`FOLDS`].
    pub folds: bool,
}

/// What a sub-pattern requires.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Req {
    /// One of these occurs in every match (`None`: nothing certain).
    lits: Option<Vec<String>>,
    /// Every match is exactly one of `lits` (so neighbours may extend them).
    exact: bool,
    /// A class folded a [`FOLDS`] character into its ASCII letter.
    folds: bool,
}

impl Req {
    const ANY: Req = Req {
        lits: None,
        exact: false,
        folds: false,
    };

    fn exact(lits: Vec<String>) -> Req {
        Req {
            lits: Some(lits),
            exact: true,
            folds: false,
        }
    }
}

/// How selective a set of alternatives is: its shortest member's length,
/// then fewer alternatives.
fn score(lits: &[String]) -> (usize, std::cmp::Reverse<usize>) {
    (
        lits.iter().map(String::len).min().unwrap_or(0),
        std::cmp::Reverse(lits.len()),
    )
}

/// The literals every match of `hir` contains one of, lower-cased for an
/// ASCII-case-insensitive search; `None` when there is no useful one.
pub fn of_hir(hir: &Hir) -> Option<Required> {
    let req = walk(hir);
    let lits = req.lits?;
    // A literal holding a newline cannot be found within one line.
    let useful = !lits.is_empty()
        && lits
            .iter()
            .all(|l| l.len() >= MIN_LEN && !l.contains(['\n', '\r']));
    useful.then_some(Required {
        literals: lits,
        folds: req.folds,
    })
}

/// Bytes a compiled pattern is estimated to take: its NFA states, with
/// Unicode classes counted as the UTF-8 sequences they compile to and
/// counted repetitions multiplied out (what makes a small pattern costly).
/// Calibrated on regex-automata's NFA sizes for the standard pack's 466
/// rules and for costly `\w{20}`-style rules: about 1 KiB per NFA plus
/// 9 bytes per state comes within 0.9–4× of the real size (over, mostly).
/// Only a rule estimated over a limit is compiled to learn its real cost.
pub fn estimate(hir: &Hir) -> usize {
    states(hir).saturating_mul(9).saturating_add(1024)
}

fn states(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 1,
        HirKind::Literal(lit) => lit.0.len(),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| regex_syntax::utf8::Utf8Sequences::new(r.start(), r.end()).count() * 2)
            .fold(1usize, usize::saturating_add),
        HirKind::Class(Class::Bytes(c)) => c.ranges().len().max(1),
        HirKind::Capture(cap) => states(&cap.sub).saturating_add(2),
        HirKind::Repetition(rep) => {
            let copies = rep.max.unwrap_or(rep.min).max(rep.min).max(1) as usize + 1;
            states(&rep.sub).saturating_mul(copies)
        }
        HirKind::Concat(parts) | HirKind::Alternation(parts) => parts
            .iter()
            .map(states)
            .fold(parts.len(), usize::saturating_add),
    }
}

fn walk(hir: &Hir) -> Req {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Req::exact(vec![String::new()]),
        HirKind::Literal(lit) => match std::str::from_utf8(&lit.0) {
            Ok(s) => Req::exact(vec![s.to_ascii_lowercase()]),
            Err(_) => Req::ANY,
        },
        HirKind::Class(class) => match class_chars(class) {
            Some(chars) => {
                // `ſ` and the Kelvin sign fold to `s` and `k`: keep the
                // ASCII letter, and say the rule needs the fold lines too.
                let folds_to = |c: char| match c {
                    '\u{17f}' => Some('s'),
                    '\u{212a}' => Some('k'),
                    _ => None,
                };
                let mut folds = false;
                let kept: Vec<char> = chars
                    .iter()
                    .copied()
                    .filter(|&c| match folds_to(c) {
                        Some(ascii) if chars.iter().any(|d| d.to_ascii_lowercase() == ascii) => {
                            folds = true;
                            false
                        }
                        _ => true,
                    })
                    .collect();
                let mut alts: Vec<String> = kept
                    .iter()
                    .map(|c| c.to_ascii_lowercase().to_string())
                    .collect();
                alts.sort();
                alts.dedup();
                Req {
                    folds,
                    ..Req::exact(alts)
                }
            }
            None => Req::ANY,
        },
        HirKind::Capture(cap) => walk(&cap.sub),
        HirKind::Repetition(rep) => {
            if rep.min == 0 {
                return Req::ANY;
            }
            let sub = walk(&rep.sub);
            Req {
                exact: sub.exact && rep.min == 1 && rep.max == Some(1),
                lits: sub.lits,
                folds: sub.folds,
            }
        }
        HirKind::Alternation(branches) => {
            let mut all: Vec<String> = Vec::new();
            let mut exact = true;
            let mut folds = false;
            for b in branches {
                let r = walk(b);
                let Some(lits) = r.lits else {
                    return Req::ANY;
                };
                exact &= r.exact;
                folds |= r.folds;
                all.extend(lits);
                if all.len() > MAX_ALTERNATIVES {
                    return Req::ANY;
                }
            }
            all.sort();
            all.dedup();
            Req {
                lits: Some(all),
                exact,
                folds,
            }
        }
        HirKind::Concat(parts) => concat(parts),
    }
}

/// The most selective requirement of a concatenation: runs of exact parts
/// are joined into longer literals; an inexact part ends a run and offers
/// its own requirement.
fn concat(parts: &[Hir]) -> Req {
    let mut best: Option<Vec<String>> = None;
    let offer = |lits: Vec<String>, best: &mut Option<Vec<String>>| {
        if best.as_ref().is_none_or(|b| score(&lits) > score(b)) {
            *best = Some(lits);
        }
    };
    let mut run: Option<Vec<String>> = Some(vec![String::new()]);
    let mut all_exact = true;
    // Over-flagging is safe: it only adds candidate lines.
    let mut folds = false;
    for part in parts {
        let r = walk(part);
        folds |= r.folds;
        match (r.exact, r.lits) {
            (true, Some(lits)) => {
                let current = run.take().unwrap_or_else(|| vec![String::new()]);
                if current.len() * lits.len() > MAX_ALTERNATIVES {
                    // Too many combinations: keep what the run has so far
                    // and start a new run with this part.
                    offer(current, &mut best);
                    all_exact = false;
                    run = Some(lits);
                } else {
                    run = Some(
                        current
                            .iter()
                            .flat_map(|a| lits.iter().map(move |b| format!("{a}{b}")))
                            .collect(),
                    );
                }
            }
            (_, lits) => {
                all_exact = false;
                if let Some(current) = run.take() {
                    offer(current, &mut best);
                }
                if let Some(lits) = lits {
                    offer(lits, &mut best);
                }
            }
        }
    }
    if all_exact && let Some(current) = run {
        return Req {
            folds,
            ..Req::exact(current)
        };
    }
    if let Some(current) = run {
        offer(current, &mut best);
    }
    Req {
        lits: best,
        exact: false,
        folds,
    }
}

/// The characters of a small class (`[Ee]`, `[kKK]`, `\.`), else `None`.
fn class_chars(class: &Class) -> Option<Vec<char>> {
    let mut out = Vec::new();
    match class {
        Class::Unicode(c) => {
            for r in c.ranges() {
                for ch in r.start()..=r.end() {
                    out.push(ch);
                    if out.len() > MAX_CLASS_CHARS {
                        return None;
                    }
                }
            }
        }
        Class::Bytes(c) => {
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    if !b.is_ascii() {
                        return None;
                    }
                    out.push(char::from(b));
                    if out.len() > MAX_CLASS_CHARS {
                        return None;
                    }
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hir(p: &str) -> Hir {
        regex_syntax::ParserBuilder::new().build().parse(p).unwrap()
    }

    fn req(p: &str) -> Option<Vec<String>> {
        of_hir(&hir(p)).map(|r| r.literals)
    }

    fn v(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn the_most_selective_certain_run_is_required() {
        assert_eq!(
            req(r"npm ERR! code E(NOTFOUND|AI_AGAIN)"),
            v(&["npm err! code eai_again", "npm err! code enotfound"])
        );
        assert_eq!(req(r"^\s*error\[E\d+\]: (?P<msg>.+)"), v(&["error[e"]));
        assert_eq!(
            req(r"(?i)connection (refused|reset)"),
            v(&["connection refused", "connection reset"])
        );
        // `(?i)s` also matches the long s `ſ`: such rules also need the
        // lines holding one.
        assert!(of_hir(&hir(r"(?i)connection reset")).unwrap().folds);
        assert!(!of_hir(&hir(r"connection reset")).unwrap().folds);
        assert_eq!(req(r"(?i)\bkilled\b"), v(&["killed"]));
    }

    #[test]
    fn optional_parts_and_open_branches_require_nothing() {
        assert_eq!(
            req(r"(?:fatal: )?unable to access"),
            v(&["unable to access"])
        );
        assert_eq!(req(r"timed? out"), v(&["time"]));
        assert_eq!(req(r"(foo|\d+) bar"), v(&[" bar"]));
        assert_eq!(req(r"\d+ (?:ab|\w+)"), None);
        assert_eq!(req(r"[A-Z]+Error:"), v(&["error:"]));
        assert_eq!(req(r"a.b"), None);
    }

    /// Every match of a pattern contains one of its required literals
    /// (case folded): the prefilter never hides a match.
    #[test]
    fn every_match_contains_a_required_literal() {
        let cases = [
            (
                r"(?i)out of memory|OOM[- ]?killed",
                &[
                    "Out Of Memory here",
                    "oomkilled",
                    "OOM-killed x",
                    "oom \u{212a}illed",
                ][..],
            ),
            (
                r"ERROR: (?:No matching distribution|Could not find a version) for (?P<pkg>\S+)",
                &["ERROR: No matching distribution for x"],
            ),
            (
                r"exit (?:code|status) (?P<code>1\d\d)",
                &["exit status 137"],
            ),
        ];
        for (pattern, lines) in cases {
            let required = of_hir(&hir(pattern));
            let re = regex::Regex::new(pattern).unwrap();
            for line in lines {
                assert!(re.is_match(line), "{pattern} on {line}");
                let folded = line.to_ascii_lowercase();
                assert!(
                    required.as_ref().is_none_or(|r| {
                        r.literals.iter().any(|l| folded.contains(l.as_str()))
                            || (r.folds && line.contains(FOLDS))
                    }),
                    "{pattern}: {required:?} not in {line}"
                );
            }
        }
    }
}
