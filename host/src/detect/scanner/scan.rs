//! A scan over one log with a [`RuleSet`]: blocks of lines in, hits per
//! rule out — the small-log way (required literals) for the first
//! [`SET_AFTER_BYTES`], the big-log way (the one set) after, each hit
//! verified on its own line.

use super::{INDEX_BYTES, KEEP_FIRST, KEEP_LAST, MAX_FACTS, RuleSet, SET_AFTER_BYTES};
use std::sync::Arc;

/// Rules to compile before a second thread helps: a rule's check takes
/// 0.03–0.7 ms to compile in a fresh process (its ASCII engine or its full
/// regex, see `line_regex.rs`), a thread about 50 µs to start and join. A
/// small log's first block typically needs ten or twenty (ten for a
/// three-line npm log); on two cores the helper took about 0.2 ms off
/// their 1.4 ms.
const COMPILE_AHEAD_MIN: usize = 4;

use crate::model::{Evidence, Finding};

/// Matches of one rule in one log.
#[derive(Debug, Clone)]
pub struct RuleHit {
    /// Matching lines.
    pub count: u32,
    /// Matching lines that carried a CI error marker.
    pub marked: u32,
    /// First matches.
    pub first: Vec<Evidence>,
    /// Last matches (ring, oldest first after [`Scan::finish`]).
    pub last: Vec<Evidence>,
    /// Named captures.
    pub facts: Vec<(String, String)>,
}

/// A scan in progress.
#[derive(Debug)]
pub struct Scan {
    /// Shared, so a scan can move to another thread (a big log's blocks
    /// are scanned beside the detector plugins' work).
    set: Arc<RuleSet>,
    /// Hits by rule index.
    hits: Vec<Option<RuleHit>>,
    matched: Vec<usize>,
    /// (rule, line index) pairs the literal prefilter found in a block.
    candidates: Vec<(usize, usize)>,
    /// Bytes scanned so far.
    bytes: usize,
    /// Past this many bytes, the big-log way.
    pub(super) set_after: usize,
    /// Up to this many bytes, literals are found through the index.
    pub(super) index_until: usize,
}

/// A line of a block: its number in the original log, where it starts in
/// the block, and whether the CI marked it as an error.
#[derive(Debug, Clone, Copy)]
pub struct BlockLine {
    /// 1-based line number in the original log.
    pub number: u32,
    /// Byte offset of the line in the block.
    pub start: usize,
    /// Carried a CI error marker.
    pub error_marker: bool,
}

/// The index of the line holding byte `at` of a block.
fn line_at(lines: &[BlockLine], at: usize) -> usize {
    lines.partition_point(|l| l.start <= at).saturating_sub(1)
}

/// The text of line `li` of a block (without its newline).
fn line_text<'b>(block: &'b str, lines: &[BlockLine], li: usize) -> &'b str {
    let start = lines[li].start;
    let end = lines
        .get(li + 1)
        .map_or(block.len(), |next| next.start.saturating_sub(1));
    &block[start..end.max(start)]
}

impl Scan {
    /// A new scan with `set`.
    pub(super) fn new(set: Arc<RuleSet>) -> Scan {
        Scan {
            set,
            hits: Vec::new(),
            matched: Vec::new(),
            candidates: Vec::new(),
            bytes: 0,
            set_after: SET_AFTER_BYTES,
            index_until: INDEX_BYTES,
        }
    }

    /// Scans a block: normalised lines joined by `\n`, described by `lines`
    /// (in order, starting at offset 0).
    pub fn block(&mut self, block: &str, lines: &[BlockLine]) {
        if lines.is_empty() {
            return;
        }
        self.bytes = self.bytes.saturating_add(block.len());
        self.matched.clear();
        let big = self.bytes > self.set_after;
        match big.then(|| self.set.full_set()).flatten() {
            Some(set) => self.matched.extend(set.matches(block).iter()),
            None => {
                self.by_literals(block, lines);
                self.matched.extend(self.set.rest.iter().copied());
            }
        }
        // A handle of its own, so the rules stay borrowed while hits are
        // recorded in `self`.
        let set = Arc::clone(&self.set);
        for i in 0..self.matched.len() {
            let idx = self.matched[i];
            let Some(rule) = set.rules.get(idx) else {
                continue;
            };
            if !big && rule.block.get().is_none() && rule.regex.has_cheap_room(block.len()) {
                // A rule without a required literal, in a small block: each
                // line checked the cheap way costs less than compiling the
                // block regex that would find the lines to check.
                for li in 0..lines.len() {
                    self.verify_line(idx, block, lines, li);
                }
                continue;
            }
            let mut from = 0;
            while from <= block.len() {
                let Some(m) = rule.block().and_then(|b| b.find_at(block, from)) else {
                    break;
                };
                let li = line_at(lines, m.start());
                self.verify_line(idx, block, lines, li);
                // Continue at the next line, not at the match end, so a
                // match spanning lines can never hide one on the next line.
                match lines.get(li + 1) {
                    Some(next) => from = next.start,
                    None => break,
                }
            }
        }
    }

    /// Checks rule `idx` on line `li` of a block.
    fn verify_line(&mut self, idx: usize, block: &str, lines: &[BlockLine], li: usize) {
        let line = lines[li];
        self.verify(
            idx,
            line.number,
            line_text(block, lines, li),
            line.error_marker,
        );
    }

    /// The small-log way: the lines holding a rule's required literal, and
    /// only those, meet the rule's regex (in line order per rule).
    fn by_literals(&mut self, block: &str, lines: &[BlockLine]) {
        let Some(p) = &self.set.prefilter else {
            return;
        };
        self.candidates.clear();
        let candidates = &mut self.candidates;
        p.for_each_match(block, self.index_until, |pattern, at| {
            let li = line_at(lines, at);
            for &rule in &p.owners[pattern] {
                candidates.push((rule, li));
            }
        });
        self.candidates.sort_unstable();
        self.candidates.dedup();
        let cheap = self.cheapness(block, lines);
        let ahead: Vec<(usize, bool)> = cheap
            .iter()
            .copied()
            .filter(|&(rule, cheap)| {
                self.set
                    .rules
                    .get(rule)
                    .is_some_and(|r| !r.regex.is_ready(cheap))
            })
            .collect();
        let set = Arc::clone(&self.set);
        std::thread::scope(|scope| {
            if ahead.len() >= COMPILE_AHEAD_MIN {
                // The candidates are verified in rule order here; the
                // helper compiles from the other end, and the two meet in
                // the middle (an engine being compiled by one is waited for
                // by the other). No thread, no help: this one compiles all.
                let _ = std::thread::Builder::new()
                    .name("guard-compile".into())
                    .spawn_scoped(scope, || {
                        for &(rule, cheap) in ahead.iter().rev() {
                            if let Some(r) = set.rules.get(rule) {
                                r.regex.prepare(&r.rule.pattern, &r.rule.id, cheap);
                            }
                        }
                    });
            }
            let mut cheapness = cheap.iter();
            let mut last = None;
            for i in 0..self.candidates.len() {
                let (rule, li) = self.candidates[i];
                if last != Some(rule) {
                    last = Some(rule);
                    // Decided for the block as a whole: a rule whose
                    // candidate lines would outrun its cheap share compiles
                    // its full regex now rather than after paying for both.
                    if let (Some(&(_, false)), Some(r)) = (cheapness.next(), set.rules.get(rule)) {
                        r.regex.prepare(&r.rule.pattern, &r.rule.id, false);
                    }
                }
                self.verify_line(rule, block, lines, li);
            }
        });
    }

    /// Per candidate rule, in order: whether its candidate lines in this
    /// block are checked the cheap way (see `line_regex.rs`).
    fn cheapness(&self, block: &str, lines: &[BlockLine]) -> Vec<(usize, bool)> {
        let mut out: Vec<(usize, bool)> = Vec::new();
        let mut i = 0;
        while let Some(&(rule, _)) = self.candidates.get(i) {
            let (mut bytes, mut ascii) = (0usize, true);
            while let Some(&(r, li)) = self.candidates.get(i)
                && r == rule
            {
                let line = line_text(block, lines, li);
                bytes = bytes.saturating_add(line.len());
                ascii &= line.is_ascii();
                i += 1;
            }
            let cheap = self
                .set
                .rules
                .get(rule)
                .is_some_and(|r| r.regex.would_be_cheap(bytes, ascii));
            out.push((rule, cheap));
        }
        out
    }

    /// Scans a single line (a block of one).
    pub fn line(&mut self, number: u32, text: &str, error_marker: bool) {
        self.block(
            text,
            &[BlockLine {
                number,
                start: 0,
                error_marker,
            }],
        );
    }

    /// Checks rule `idx` on one line and records the hit.
    fn verify(&mut self, idx: usize, number: u32, text: &str, error_marker: bool) {
        // A handle of its own: the groups found borrow from the rule while
        // the hit is recorded in `self`.
        let set = Arc::clone(&self.set);
        let Some(rule) = set.rules.get(idx) else {
            return;
        };
        let Some(groups) = rule.regex.captures(&rule.rule.pattern, &rule.rule.id, text) else {
            return;
        };
        if let Some(unless) = rule.rule.unless.as_deref()
            && rule.unless.is_match(unless, &rule.rule.id, text)
        {
            return;
        }
        if self.hits.len() <= idx {
            self.hits.resize(self.set.rules.len(), None);
        }
        let hit = self.hits[idx].get_or_insert_with(|| RuleHit {
            count: 0,
            marked: 0,
            first: Vec::new(),
            last: Vec::new(),
            facts: Vec::new(),
        });
        hit.count += 1;
        if error_marker {
            hit.marked += 1;
        }
        let ev = Evidence {
            line: number,
            text: text.to_string(),
        };
        if hit.first.len() < KEEP_FIRST {
            hit.first.push(ev);
        } else {
            if hit.last.len() == KEEP_LAST {
                hit.last.remove(0);
            }
            hit.last.push(ev);
        }
        for (name, text) in groups {
            if hit.facts.len() >= MAX_FACTS {
                break;
            }
            let fact = (
                name.trim_end_matches(|c: char| c.is_ascii_digit())
                    .to_string(),
                text.to_string(),
            );
            if !hit.facts.contains(&fact) {
                hit.facts.push(fact);
            }
        }
    }

    /// The findings of this scan, one per matching rule, with the scan
    /// statistics diagnosis needs.
    pub fn finish(self) -> Vec<(Finding, RuleHit)> {
        let mut out = Vec::new();
        for (idx, hit) in self.hits.into_iter().enumerate() {
            let Some(hit) = hit else { continue };
            let Some(rule) = self.set.rules.get(idx) else {
                continue;
            };
            // Chronological: the first matches (usually the root cause; later
            // ones tend to be summaries), then the last ones.
            let mut evidence: Vec<Evidence> = hit.first.clone();
            evidence.extend(hit.last.iter().cloned());
            let finding = Finding {
                rule: rule.rule.id.clone(),
                source: rule.source.clone(),
                category: rule.rule.category,
                failure_type: rule.rule.failure_type.clone(),
                confidence: rule.rule.confidence,
                evidence,
                remedies: rule.rule.remedies.clone(),
                facts: hit.facts.clone(),
            };
            out.push((finding, hit));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::RuleSet;
    use crate::model::{Category, Rule};

    /// Enough candidate rules in one block that a second thread compiles
    /// half of them: every rule is still found, on its own line, with its
    /// capture, whichever thread compiled its regex.
    #[test]
    fn rules_compiled_ahead_on_a_second_thread_find_what_they_did() {
        let rules: Vec<Rule> = (0..24)
            .map(|i| Rule {
                id: format!("r{i}"),
                category: Category::Network,
                failure_type: "t".into(),
                pattern: format!(r"fault{i:02} in (?P<unit>\w+)\b"),
                unless: None,
                confidence: 0.9,
                remedies: vec![],
                description: String::new(),
            })
            .collect();
        let (set, errors) = RuleSet::compile(rules.iter().map(|r| ("p", r)));
        assert!(errors.is_empty(), "{errors:?}");
        // Later rules on earlier lines: the two threads meet in the middle.
        let text: String = (0..24)
            .rev()
            .map(|i| format!("fault{i:02} in unit{i}\n"))
            .collect();
        let text = text.trim_end();
        let lines = super::super::block_lines(text, 1);
        let mut scan = set.scan();
        scan.block(text, &lines);
        let found = scan.finish();
        assert_eq!(found.len(), 24);
        for (finding, _) in &found {
            let i: u32 = finding.rule[1..].parse().unwrap();
            assert_eq!(finding.evidence[0].line, 24 - i, "{finding:?}");
            assert_eq!(
                finding
                    .facts
                    .iter()
                    .find(|(k, _)| k == "unit")
                    .map(|(_, v)| v.as_str()),
                Some(format!("unit{i}").as_str()),
                "{finding:?}"
            );
        }
    }

    /// A block mixing ASCII lines, lines with Unicode words, and more
    /// candidate lines than a rule checks the cheap way: every hit and
    /// every capture is what the rule as written finds.
    #[test]
    fn cheap_and_full_checks_find_what_the_rule_as_written_finds() {
        let rule = |id: &str, pattern: &str| Rule {
            id: id.into(),
            category: Category::Test,
            failure_type: "t".into(),
            pattern: pattern.into(),
            unless: Some(r"(?i)ignored\b".into()),
            confidence: 0.9,
            remedies: vec![],
            description: String::new(),
        };
        let rules = [
            rule("word", r"fault in (?P<unit>\w+)"),
            rule("many", r"retry (?P<n>\d+) of"),
        ];
        let (set, errors) = RuleSet::compile(rules.iter().map(|r| ("p", r)));
        assert!(errors.is_empty(), "{errors:?}");
        let mut text =
            String::from("fault in módulo_1\nfault in core_2\nfault in x IGNORED\nretry ٣ of 3");
        // Past the cheap share of `many`, some lines not ASCII.
        for i in 0..400 {
            text.push_str(&format!("\nretry {i} of 400 {}", "·".repeat(i % 2)));
        }
        let lines = super::super::block_lines(&text, 1);
        let mut scan = set.scan();
        scan.block(&text, &lines);
        let found = scan.finish();
        let by = |id: &str| found.iter().find(|(f, _)| f.rule == id).unwrap();
        let (word, hit) = by("word");
        assert_eq!(hit.count, 2, "{word:?}");
        let units: Vec<&str> = word.facts.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(units, ["módulo_1", "core_2"]);
        let (many, hit) = by("many");
        assert_eq!(hit.count, 401);
        assert_eq!(many.evidence.last().map(|e| e.line), Some(404));
        assert!(many.facts.iter().any(|(_, v)| v == "٣"), "{:?}", many.facts);
    }
}
