//! The native rule scanner: every pack rule (and learned rules) in one
//! [`RuleSet`]. A scan works on blocks of normalised lines (joined by
//! `\n`), two ways that find the same hits:
//!
//! - **Small logs** (the first [`SET_AFTER_BYTES`] of any log): one pass
//!   over the block finds the rules' required literals ([`literals`]),
//!   through an index that takes microseconds to build ([`literal_index`];
//!   a daemon later builds one Aho-Corasick automaton instead); a rule's
//!   own regex runs only on the lines holding one of its literals. Nothing
//!   else is compiled: a rule is compiled the first
//!   time a line could match it — only as far as that line needs (an ASCII
//!   line, the common case, takes a fifth of the full regex's compile time;
//!   see [`line_regex`]) — so a small `guard detect` starts in a few
//!   milliseconds instead of compiling hundreds of regexes.
//! - **Big logs** (past that): one multi-line `RegexSet` of every rule,
//!   built once on demand, says which rules match anywhere in a block — for
//!   almost every block, none — and only those are searched. Its build cost
//!   (tens of milliseconds) pays for itself within a few megabytes.
//!
//! Either way each hit is verified on its own line with the rule as
//! written (captures, `unless`), in line order.

mod line_regex;
mod literal_index;
mod literals;
pub mod plans;
mod scan;

pub use scan::{BlockLine, RuleHit, Scan};

use line_regex::LineRegex;

use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexSet, RegexSetBuilder};

use crate::model::Rule;

/// Longest accepted pattern, in bytes.
const MAX_PATTERN: usize = 4096;
/// Compiled program size allowed per rule.
const RULE_SIZE_LIMIT: usize = 1 << 20;
/// Compiled program size allowed for all active rules together (the one
/// budget of the scanner: many rules each under the per-rule limit must not
/// add up to gigabytes). The standard pack's 467 rules take about 4.4 MiB.
pub const TOTAL_SIZE_LIMIT: usize = 16 << 20;
/// Evidence lines kept from the start and from the end of a rule's matches.
const KEEP_FIRST: usize = 3;
const KEEP_LAST: usize = 3;
/// Facts kept per rule.
const MAX_FACTS: usize = 50;
/// Bytes of a log scanned the small-log way before the big-log set is
/// built: about where its build time is paid back.
pub const SET_AFTER_BYTES: usize = 4 << 20;

/// A rule that could not be compiled, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pack {pack}: rule {rule}: {message}")]
pub struct RuleError {
    /// The pack (or `learned`) it came from.
    pub pack: String,
    /// The rule id.
    pub rule: String,
    /// What is wrong.
    pub message: String,
}

/// A rule of the set. Only its syntax is checked when the set is built;
/// its own regexes are compiled the first time the set says it matched —
/// most rules never match a given log, and compiling hundreds of regexes up
/// front would dominate the start-up of every `guard detect`.
#[derive(Debug)]
struct CompiledRule {
    rule: Rule,
    source: String,
    /// What its compiled program is estimated to cost (bytes).
    cost: usize,
    /// Strings of which every match contains one (ASCII case folded).
    literals: Option<literals::Required>,
    /// Its pattern, checking one line.
    regex: LineRegex,
    /// Its pattern in a block of lines (`^`/`$` at line ends).
    block: OnceLock<Option<Regex>>,
    /// Its `unless` pattern, checking one line.
    unless: LineRegex,
}

impl CompiledRule {
    fn block(&self) -> Option<&Regex> {
        self.block
            .get_or_init(|| match line_regex::build(&multi_line(&self.rule.pattern)) {
                Ok(r) => Some(r),
                Err(e) => {
                    // Checked at load; only reachable if limits differ.
                    tracing::error!(rule = %self.rule.id, "rule regex failed to compile late: {e}");
                    None
                }
            })
            .as_ref()
    }
}

/// A compiled set of rules.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// The literal prefilter of the rules that have a required literal.
    prefilter: Option<Prefilter>,
    /// Rules without one (indices into `rules`), searched one by one in
    /// small logs.
    rest: Vec<usize>,
    /// Every rule in one set, for big logs (built on first need; `None`
    /// when it cannot be built within the budget: the small-log way goes on).
    set: OnceLock<Option<RegexSet>>,
}

/// Every rule's required literals: found through a [`literal_index`] in
/// the first [`INDEX_BYTES`] this rule set scans (every one-shot command's
/// log), then by one automaton over them all (a daemon, once its logs have
/// added up to that: built once, it serves every later scan).
#[derive(Debug)]
struct Prefilter {
    /// The literals, ASCII lower case (they match ASCII case-insensitively).
    literals: Vec<String>,
    /// The rules each literal (by pattern id) belongs to.
    owners: Vec<Vec<usize>>,
    /// The literals by their first bytes, for the first [`INDEX_BYTES`].
    index: literal_index::LiteralIndex,
    /// Built past [`INDEX_BYTES`]: about 9 ms for the standard pack's
    /// 1,700 literals, most of a small log's whole run.
    automaton: OnceLock<Option<AhoCorasick>>,
    /// Bytes searched through the index so far, by every scan of this set.
    index_bytes: std::sync::atomic::AtomicUsize,
}

/// How much the literals are searched through the index (see
/// [`Prefilter`]). The index costs nothing to build and a few nanoseconds
/// per byte; the automaton 9 ms, then less per byte. Measured whole-process
/// on logs of 0.3–3.3 MB, the index won at every size up to the 4 MiB where
/// the big-log set takes over (a 2.4 MB log: 49.6 → 36.0 ms), so a one-shot
/// command never builds the automaton.
pub const INDEX_BYTES: usize = 4 << 20;

impl Prefilter {
    fn build(rules: &[CompiledRule]) -> Option<Prefilter> {
        let mut literals: Vec<String> = Vec::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        for (i, rule) in rules.iter().enumerate() {
            let Some(required) = &rule.literals else {
                continue;
            };
            let folds = required
                .folds
                .then(|| literals::FOLDS.map(String::from))
                .into_iter()
                .flatten();
            for lit in required.literals.iter().cloned().chain(folds) {
                let lit = lit.to_ascii_lowercase();
                let id = *index.entry(lit.clone()).or_insert_with(|| {
                    literals.push(lit);
                    owners.push(Vec::new());
                    literals.len() - 1
                });
                if owners[id].last() != Some(&i) {
                    owners[id].push(i);
                }
            }
        }
        if literals.is_empty() {
            return None;
        }
        Some(Prefilter {
            index: literal_index::LiteralIndex::build(&literals),
            literals,
            owners,
            automaton: OnceLock::new(),
            index_bytes: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn automaton(&self) -> Option<&AhoCorasick> {
        self.automaton
            .get_or_init(|| {
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&self.literals)
                    .map_err(|e| {
                        tracing::warn!(
                            "literal automaton unavailable ({e}); literals are searched through the index"
                        );
                    })
                    .ok()
            })
            .as_ref()
    }

    /// Calls `f(literal id, offset)` for every occurrence of a literal in
    /// `block` (every line holding one is reported; overlapping occurrences
    /// of one literal may not be): through the index until this set has
    /// searched `index_until` bytes that way, then by the automaton.
    fn for_each_match(&self, block: &str, index_until: usize, mut f: impl FnMut(usize, usize)) {
        use std::sync::atomic::Ordering;
        let indexed = self.automaton.get().is_none()
            && self
                .index_bytes
                .fetch_add(block.len(), Ordering::Relaxed)
                .saturating_add(block.len())
                <= index_until;
        if !indexed && let Some(ac) = self.automaton() {
            for m in ac.find_overlapping_iter(block) {
                f(m.pattern().as_usize(), m.start());
            }
            return;
        }
        // ASCII lower case keeps every byte offset.
        let lower = block.to_ascii_lowercase();
        self.index
            .for_each_match(&self.literals, lower.as_bytes(), f);
    }
}

impl RuleSet {
    /// Compiles `(source, rule)` pairs. Invalid, oversized or duplicate rules
    /// are returned as errors; the rest form the set.
    pub fn compile<'a>(
        rules: impl IntoIterator<Item = (&'a str, &'a Rule)>,
    ) -> (Arc<RuleSet>, Vec<RuleError>) {
        RuleSet::compile_with(rules, &mut plans::Plans::default())
    }

    /// [`RuleSet::compile`], taking what it can from `plans` (and adding
    /// to them) rather than parsing every pattern (see `scanner/plans.rs`).
    pub fn compile_with<'a>(
        rules: impl IntoIterator<Item = (&'a str, &'a Rule)>,
        plans: &mut plans::Plans,
    ) -> (Arc<RuleSet>, Vec<RuleError>) {
        let mut compiled: Vec<CompiledRule> = Vec::new();
        let mut errors = Vec::new();
        // Where each accepted id was defined (a search of `compiled` per
        // rule was quadratic: 100,000 comparisons for the standard pack).
        let mut seen: std::collections::HashMap<&'a str, &'a str> = Default::default();
        for (source, rule) in rules {
            let err = |message: String| RuleError {
                pack: source.to_string(),
                rule: rule.id.clone(),
                message,
            };
            if rule.id.is_empty() {
                errors.push(err("empty rule id".into()));
                continue;
            }
            if let Some(prev) = seen.get(rule.id.as_str()) {
                errors.push(err(format!("duplicate id (already defined by {prev})")));
                continue;
            }
            let checked = match plans.get(rule) {
                // Its texts passed every check before; the confidence is
                // not part of the plan.
                Some(plan) if (0.0..=1.0).contains(&rule.confidence) => Ok(plan),
                _ => check(rule).and_then(|hir| {
                    // The estimate is generous; a rule it puts over the
                    // per-rule limit is compiled to know for sure.
                    let mut estimate = literals::estimate(&hir);
                    if estimate > RULE_SIZE_LIMIT {
                        estimate = cost(&multi_line(&rule.pattern))?;
                    }
                    let required = literals::of_hir(&hir);
                    plans.put(rule, estimate, &required);
                    Ok((estimate, required))
                }),
            };
            match checked {
                Ok((cost, literals)) => {
                    seen.insert(&rule.id, source);
                    compiled.push(CompiledRule {
                        rule: rule.clone(),
                        source: source.to_string(),
                        cost,
                        literals,
                        regex: LineRegex::default(),
                        block: OnceLock::new(),
                        unless: LineRegex::default(),
                    });
                }
                Err(message) => errors.push(err(message)),
            }
        }
        let estimated: usize = compiled
            .iter()
            .fold(0usize, |sum, c| sum.saturating_add(c.cost));
        if estimated > TOTAL_SIZE_LIMIT {
            // Over the budget: every rule alone is small enough (or it was
            // rejected above), so the costliest rules go until the rest fit
            // one budget — a pack of many cheap-looking rules cannot cost
            // gigabytes. The usual path never gets here, and only here is
            // every rule compiled to know its real cost.
            tracing::warn!(
                "rules estimated at {} MiB, over the scanner's budget; dropping the costliest",
                estimated >> 20
            );
            let mut costed: Vec<(usize, CompiledRule)> = Vec::new();
            for c in compiled.drain(..) {
                match cost(&multi_line(&c.rule.pattern)) {
                    Ok(n) => costed.push((n, c)),
                    Err(why) => errors.push(RuleError {
                        pack: c.source.clone(),
                        rule: c.rule.id.clone(),
                        message: why,
                    }),
                }
            }
            // Cheapest first: as many rules as fit are kept.
            costed.sort_by_key(|(n, _)| *n);
            let mut total = 0usize;
            for (n, mut c) in costed {
                if total.saturating_add(n) <= TOTAL_SIZE_LIMIT {
                    total += n;
                    c.cost = n;
                    compiled.push(c);
                } else {
                    errors.push(RuleError {
                        pack: c.source.clone(),
                        rule: c.rule.id.clone(),
                        message: format!(
                            "compiles to {} KiB; the active rules may take {} MiB in all (guard's scanner budget), and this one does not fit",
                            n / 1024,
                            TOTAL_SIZE_LIMIT >> 20
                        ),
                    });
                }
            }
        }
        let prefilter = Prefilter::build(&compiled);
        let rest: Vec<usize> = (0..compiled.len())
            .filter(|&i| prefilter.is_none() || compiled[i].literals.is_none())
            .collect();
        (
            Arc::new(RuleSet {
                rules: compiled,
                prefilter,
                rest,
                set: OnceLock::new(),
            }),
            errors,
        )
    }

    /// The set of every rule, built the first time a big log needs it.
    fn full_set(&self) -> Option<&RegexSet> {
        self.set
            .get_or_init(|| match build_set(self.rules.iter()) {
                Ok(set) => Some(set),
                Err(e) => {
                    tracing::warn!("rule set not built ({e}); scanning by literals");
                    None
                }
            })
            .as_ref()
    }

    /// Number of active rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The active rules with their sources.
    pub fn rules(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.rules.iter().map(|c| (c.source.as_str(), &c.rule))
    }

    /// A new scan over one log.
    pub fn scan(self: &Arc<Self>) -> Scan {
        Scan::new(Arc::clone(self))
    }
}

fn build_set<'a>(
    rules: impl ExactSizeIterator<Item = &'a CompiledRule>,
) -> Result<RegexSet, regex::Error> {
    let n = rules.len().max(1);
    RegexSetBuilder::new(rules.map(|c| multi_line(&c.rule.pattern)))
        // Each rule's share and one total.
        .size_limit(RULE_SIZE_LIMIT.saturating_mul(n).min(TOTAL_SIZE_LIMIT))
        .dfa_size_limit(64 << 20)
        .build()
}

/// What a pattern costs compiled (its NFA's heap size), or why it cannot
/// be compiled within the per-rule limit.
fn cost(pattern: &str) -> Result<usize, String> {
    use regex_automata::nfa::thompson;
    thompson::Compiler::new()
        .configure(thompson::Config::new().nfa_size_limit(Some(RULE_SIZE_LIMIT)))
        .build(pattern)
        .map(|nfa| nfa.memory_usage())
        .map_err(|e| {
            format!(
                "does not compile within {} KiB: {e}",
                RULE_SIZE_LIMIT / 1024
            )
        })
}

/// Checks a rule without compiling it: syntax (parsing is cheap), length,
/// and that the pattern cannot match an empty line. Returns the pattern's
/// HIR for the literal and cost analysis.
fn check(rule: &Rule) -> Result<regex_syntax::hir::Hir, String> {
    let parse = |p: &str, what: &str| -> Result<regex_syntax::hir::Hir, String> {
        if p.len() > MAX_PATTERN {
            return Err(format!(
                "{what} is {} bytes (at most {MAX_PATTERN})",
                p.len()
            ));
        }
        regex_syntax::ParserBuilder::new()
            .nest_limit(100)
            .build()
            .parse(p)
            .map_err(|e| {
                format!(
                    "{what} does not compile: {}",
                    e.to_string().lines().last().unwrap_or_default().trim()
                )
            })
    };
    let hir = parse(&rule.pattern, "pattern")?;
    if hir.properties().minimum_len().is_none_or(|n| n == 0) {
        return Err("pattern matches the empty line, so it would match every log".into());
    }
    if let Some(u) = &rule.unless {
        parse(u, "unless")?;
    }
    if !(0.0..=1.0).contains(&rule.confidence) {
        return Err(format!("confidence {} is outside 0.0–1.0", rule.confidence));
    }
    Ok(hir)
}

/// The pattern with `^` and `$` matching at line boundaries, for searching
/// a block of lines. Every match of the pattern on a line is also a match
/// of this in the block; the converse may fail (`\s` can cross a newline),
/// which is why block hits are verified per line.
///
/// Word boundaries become ASCII ones: a Unicode `\\b` stops the lazy DFA at
/// the first non-ASCII byte and drops the whole set to the slow PikeVM (a
/// 1000× slowdown on logs with a single `✓`). The per-line verification
/// keeps the pattern's exact semantics.
fn multi_line(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    out.push_str("(?m:");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('b') => out.push_str("(?-u:\\b)"),
                Some('B') => out.push_str("(?-u:\\B)"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out.push(')');
    out
}

/// The [`BlockLine`]s of `text` (lines joined by `\n`), numbered from
/// `first`, none error-marked (tests build blocks this way).
#[cfg(test)]
fn block_lines(text: &str, first: u32) -> Vec<BlockLine> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, l) in text.split('\n').enumerate() {
        lines.push(BlockLine {
            number: i as u32 + first,
            start,
            error_marker: false,
        });
        start += l.len() + 1;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Category;

    fn rule(id: &str, pattern: &str, unless: Option<&str>) -> Rule {
        Rule {
            id: id.into(),
            category: Category::Network,
            failure_type: "t".into(),
            pattern: pattern.into(),
            unless: unless.map(Into::into),
            confidence: 0.9,
            remedies: vec![],
            description: String::new(),
        }
    }

    #[test]
    fn many_small_costly_rules_share_one_budget() {
        // Each rule is valid and under the per-rule limit; together they
        // would cost far more than the scanner's budget.
        let rules: Vec<Rule> = (0..150)
            .map(|i| rule(&format!("r{i}"), &format!(r"\w{{20}}zq{i}N"), None))
            .collect();
        let mut rules_and_a_cheap_one = rules.clone();
        rules_and_a_cheap_one.push(rule("cheap", "plain words", None));
        let (set, errors) =
            RuleSet::compile(rules_and_a_cheap_one.iter().map(|r| ("hostile-pack", r)));
        assert!(!errors.is_empty(), "the budget must reject some rules");
        assert!(
            errors
                .iter()
                .all(|e| e.pack == "hostile-pack" && e.message.contains("budget")),
            "{errors:?}"
        );
        assert!(
            set.rules().any(|(_, r)| r.id == "cheap"),
            "cheap rules are kept first"
        );
        assert!(set.len() + errors.len() == 151);
    }

    #[test]
    fn block_patterns_use_ascii_word_boundaries() {
        assert_eq!(multi_line(r"a\bb\\b"), r"(?m:a(?-u:\b)b\\b)");
    }

    #[test]
    fn matches_are_found_on_every_line_of_a_block() {
        let rules = [
            rule("w", r"\bfoo\s+bar\b", None),
            rule("t", r"^done ✓$", None),
        ];
        let (set, errors) = RuleSet::compile(rules.iter().map(|r| ("p", r)));
        assert!(errors.is_empty(), "{errors:?}");
        let text = "foo\nfoo bar ✓\ndone ✓\nfoo  bar";
        let lines = block_lines(text, 10);
        let mut scan = set.scan();
        scan.block(text, &lines);
        let found = scan.finish();
        let w = found.iter().find(|(f, _)| f.rule == "w").unwrap();
        // "foo\nfoo bar" matches across the newline in the block; only the
        // lines that match on their own count.
        assert_eq!(
            w.0.evidence.iter().map(|e| e.line).collect::<Vec<_>>(),
            [11, 13]
        );
        let t = found.iter().find(|(f, _)| f.rule == "t").unwrap();
        assert_eq!(t.0.evidence[0].line, 12);
    }

    #[test]
    fn bad_rules_are_rejected_one_by_one() {
        let rules = [
            rule("ok", "ENOTFOUND (?P<host>\\S+)", None),
            rule("bad", "(unclosed", None),
            rule("empty", "x*", None),
            rule("ok", "dup", None),
            rule("huge", "a{1000}{1000}", None),
        ];
        let (set, errors) = RuleSet::compile(rules.iter().map(|r| ("p", r)));
        assert_eq!(set.len(), 1);
        let names: Vec<_> = errors.iter().map(|e| e.rule.as_str()).collect();
        assert_eq!(names, ["bad", "empty", "ok", "huge"]);
        assert!(errors[0].to_string().starts_with("pack p: rule bad:"));
    }

    /// The small-log ways (the literal index, then one automaton) and
    /// the big-log way (one set) find the same hits, with the same
    /// evidence, on every line.
    #[test]
    fn both_ways_find_the_same_hits() {
        let rules = [
            rule("dns", r"ENOTFOUND (?P<host>\S+)", Some("retrying")),
            rule("oom", r"(?i)out of memory|OOM[- ]?killed", None),
            rule("exit", r"exit (?:code|status) (?P<code>1\d\d)", None),
            rule("noliteral", r"^\d+:\d+ \+\d+ -[1-9]", None),
            rule("word", r"\bfoo\s+bar\b", None),
        ];
        let (set, errors) = RuleSet::compile(rules.iter().map(|r| ("p", r)));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            set.rest.len() == 1,
            "one rule has no literal: {:?}",
            set.rest
        );
        let text = "getaddrinfo ENOTFOUND a.example retrying\nOut Of Memory\n00:12 +3 -1: x\nfoo\nfoo bar\noom \u{212a}illed\nexit status 137\ngetaddrinfo ENOTFOUND b.example\nnothing";
        let mut lines = block_lines(text, 1);
        lines[6].error_marker = true;
        type Hit = (String, Vec<u32>, Vec<(String, String)>, u32);
        let found = |set_after: usize, index_until: usize| {
            let mut scan = set.scan();
            scan.set_after = set_after;
            scan.index_until = index_until;
            scan.block(text, &lines);
            let mut out: Vec<Hit> = scan
                .finish()
                .into_iter()
                .map(|(f, h)| {
                    (
                        f.rule,
                        f.evidence.iter().map(|e| e.line).collect(),
                        f.facts,
                        h.marked,
                    )
                })
                .collect();
            out.sort();
            out
        };
        let small = found(usize::MAX, usize::MAX);
        let automaton = found(usize::MAX, 0);
        let big = found(0, 0);
        assert_eq!(small, automaton);
        assert_eq!(small, big);
        let rules_found: Vec<&str> = small.iter().map(|(r, ..)| r.as_str()).collect();
        assert_eq!(rules_found, ["dns", "exit", "noliteral", "oom", "word"]);
        let oom = small.iter().find(|(r, ..)| r == "oom").unwrap();
        assert_eq!(oom.1, [2, 6], "the Kelvin-sign spelling is found too");
    }

    #[test]
    fn captures_unless_and_evidence_order() {
        let rules = [rule("dns", "ENOTFOUND (?P<host>\\S+)", Some("retrying"))];
        let (set, _) = RuleSet::compile(rules.iter().map(|r| ("p", r)));
        let mut scan = set.scan();
        scan.line(1, "getaddrinfo ENOTFOUND a.example retrying", false);
        scan.line(2, "getaddrinfo ENOTFOUND b.example", false);
        scan.line(9, "getaddrinfo ENOTFOUND c.example", true);
        let found = scan.finish();
        assert_eq!(found.len(), 1);
        let (f, hit) = &found[0];
        assert_eq!(hit.count, 2);
        assert_eq!(hit.marked, 1);
        assert_eq!(f.evidence[0].line, 2);
        assert_eq!(
            f.facts,
            vec![
                ("host".to_string(), "b.example".to_string()),
                ("host".to_string(), "c.example".to_string())
            ]
        );
    }
}
