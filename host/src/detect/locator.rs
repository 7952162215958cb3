//! The failure locator: where a job died and what it printed just before.
//!
//! Rules recognise failures they were written for; the locator recognises
//! that a job *failed* at all, from the markers CI systems and wrappers print
//! when a command exits non-zero (GitHub Actions, GitLab CI, Jenkins, Travis,
//! Azure Pipelines, Buildkite, CircleCI, make, Go, docker, yarn, …), reads the
//! exit code's meaning (137 killed, 124 timed out, 127 missing tool, 130
//! cancelled) and keeps the *error region*: the lines before the marker that
//! look like errors (keywords, stack traces, failure summaries), weighted by
//! how near they are to the marker. A log with a failure marker therefore
//! never goes without a verdict, and the region is what the classifier reads.
//!
//! Memory is bounded: a ring of recent lines and a fixed number of markers.

use std::collections::{HashSet, VecDeque};

use super::markers::{ExitMeaning, Level, exit_meaning, failure_marker, is_kill_message};
use super::scanner::BlockLine;
use crate::model::Evidence;

/// Lines kept before a marker to look for its error region.
const RING: usize = 250;
/// Markers remembered per log (the first ones: where the job died first).
const MAX_MARKERS: usize = 8;
/// Region lines kept per marker (the best-scored).
const REGION_KEEP: usize = 40;
/// A step marker without a CI-level one counts only this near the end.
const STEP_NEAR_END: u32 = 60;
/// Lines kept as evidence when none before a marker looks like an error.
const LAST_WORDS: usize = 3;
/// Lines longer than this are not markers (markers are short).
const MARKER_MAX_LEN: usize = 400;

/// A line that says a command or job failed.
#[derive(Debug, Clone)]
pub struct Marker {
    /// 1-based line number.
    pub line: u32,
    /// The normalised text.
    pub text: String,
    /// Exit code, when the marker names one.
    pub exit_code: Option<i32>,
    /// CI-level or step-level.
    pub level: Level,
    /// The best-scored lines before it, in line order.
    pub region: Vec<RegionLine>,
}

/// A line of an error region with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionLine {
    /// 1-based line number.
    pub line: u32,
    /// The normalised text.
    pub text: String,
    /// How much it looks like the error (higher is more).
    pub score: f32,
}

/// The locator's answer for one log.
#[derive(Debug, Clone)]
pub struct Located {
    /// The marker where the job died.
    pub marker: Marker,
    /// What its exit code means, if anything.
    pub meaning: Option<ExitMeaning>,
}

impl Located {
    /// The error region's lines, best first, at most `n`.
    pub fn best_lines(&self, n: usize) -> Vec<&RegionLine> {
        let mut lines: Vec<&RegionLine> = self
            .marker
            .region
            .iter()
            .filter(|l| l.score > 0.0)
            .collect();
        lines.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.line.cmp(&a.line)));
        lines.truncate(n);
        lines
    }

    /// Evidence: the most telling region lines (best first), then the marker.
    pub fn evidence(&self, n: usize) -> Vec<Evidence> {
        let mut out: Vec<Evidence> = self
            .best_lines(n)
            .into_iter()
            .map(|l| Evidence {
                line: l.line,
                text: l.text.clone(),
            })
            .collect();
        out.push(Evidence {
            line: self.marker.line,
            text: self.marker.text.clone(),
        });
        out
    }

    /// The lines of the region (for the classifier and the rule ranking).
    pub fn span(&self) -> (u32, u32) {
        let first = self
            .marker
            .region
            .first()
            .map_or(self.marker.line, |l| l.line);
        (first, self.marker.line)
    }
}

/// Streams lines and remembers failure markers with their regions.
#[derive(Debug, Default)]
pub struct Locator {
    ring: VecDeque<(u32, String)>,
    markers: Vec<Marker>,
    /// The last step marker seen after the remembered ones (step markers
    /// that come late still matter when no CI-level marker exists).
    last_step: Option<Marker>,
    /// A time-limit message was seen (explains a kill).
    timeout_line: Option<u32>,
    /// A kill or OOM message was seen.
    killed_line: Option<u32>,
    /// Templates of a passing run of the same job: matching lines are
    /// discounted as evidence.
    baseline: Option<HashSet<u64>>,
}

impl Locator {
    /// A locator that discounts lines whose template occurs in `baseline`.
    pub fn with_baseline(baseline: Option<HashSet<u64>>) -> Locator {
        Locator {
            baseline,
            ..Locator::default()
        }
    }

    /// Whether a baseline was given.
    pub fn has_baseline(&self) -> bool {
        self.baseline.is_some()
    }

    /// Whether `text`'s template occurs in the baseline.
    pub fn in_baseline(&self, text: &str) -> bool {
        self.baseline
            .as_ref()
            .is_some_and(|b| b.contains(&template_hash(text.trim())))
    }

    /// Notes one normalised line.
    pub fn line(&mut self, number: u32, text: &str) {
        self.note(number, text, true);
    }

    /// Notes a block of normalised lines joined by `\n` (as the scanner
    /// gets them): one pass over the block finds the few lines that may be
    /// markers, so the per-line work is a copy into the ring.
    pub fn block(&mut self, block: &str, lines: &[BlockLine]) {
        let mut candidates = super::markers::candidates(block).peekable();
        for (i, l) in lines.iter().enumerate() {
            let end = lines
                .get(i + 1)
                .map_or(block.len(), |n| n.start.saturating_sub(1));
            let text = block.get(l.start..end).unwrap_or("");
            let mut candidate = false;
            // Fragments hold no newline: a match belongs to the line it starts on.
            while let Some(&at) = candidates.peek() {
                if at >= end {
                    break;
                }
                candidate |= at >= l.start;
                candidates.next();
            }
            self.note(l.number, text, candidate);
        }
    }

    fn note(&mut self, number: u32, text: &str, candidate: bool) {
        let t = text.trim();
        if t.is_empty() {
            return;
        }
        let hints = if candidate && t.len() <= MARKER_MAX_LEN {
            super::markers::hints(t)
        } else {
            super::markers::Hints::default()
        };
        if hints.timeout {
            self.timeout_line = Some(number);
        }
        if hints.kill && is_kill_message(t) {
            self.killed_line = Some(number);
        }
        if hints.marker
            && let Some((level, exit_code)) = failure_marker(t)
        {
            let region = self.region();
            let marker = Marker {
                line: number,
                text: t.to_string(),
                exit_code,
                level,
                region,
            };
            // The region of the next marker starts after this one.
            self.ring.clear();
            if self.markers.len() < MAX_MARKERS {
                self.markers.push(marker);
            } else {
                self.last_step = Some(marker);
            }
            return;
        }
        // The ring's oldest line's buffer is reused: no allocation per line
        // once the ring is full.
        let mut s = if self.ring.len() == RING {
            self.ring.pop_front().map(|(_, s)| s).unwrap_or_default()
        } else {
            String::new()
        };
        s.clear();
        // Keep long lines bounded: a region line is read, not stored whole.
        let mut cut = t.len().min(1000);
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        s.push_str(&t[..cut]);
        self.ring.push_back((number, s));
    }

    fn region(&self) -> Vec<RegionLine> {
        let n = self.ring.len().max(1) as f32;
        let mut scored: Vec<RegionLine> = self
            .ring
            .iter()
            .enumerate()
            .filter_map(|(i, (line, text))| {
                let mut score = line_score(text);
                if score <= 0.0 {
                    return None;
                }
                // Nearer the marker weighs more: 0.4 at the ring's start, 1.0 last.
                score *= 0.4 + 0.6 * ((i + 1) as f32 / n);
                if self
                    .baseline
                    .as_ref()
                    .is_some_and(|b| b.contains(&template_hash(text)))
                {
                    score *= 0.15;
                }
                Some(RegionLine {
                    line: *line,
                    text: text.clone(),
                    score,
                })
            })
            .collect();
        if scored.is_empty() {
            // No line looks like an error: the job's last words before the
            // marker are the best evidence there is.
            scored = self
                .ring
                .iter()
                .rev()
                .take(LAST_WORDS)
                .map(|(line, text)| RegionLine {
                    line: *line,
                    text: text.clone(),
                    score: 0.1,
                })
                .collect();
        }
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.line.cmp(&a.line)));
        scored.truncate(REGION_KEEP);
        scored.sort_by_key(|l| l.line);
        scored
    }

    /// Where the job died, given the log's length and the line up to which
    /// errors were survived (a later success marker).
    /// `failed` says the job is known to have failed: then a log with no
    /// marker still gets one (its last error line, or its last line).
    pub fn finish(
        mut self,
        total_lines: u32,
        survived_until: Option<u32>,
        failed: bool,
    ) -> Option<Located> {
        let alive = |m: &Marker| survived_until.is_none_or(|s| m.line > s);
        if self.markers.is_empty() && self.last_step.is_none() && survived_until.is_none() {
            // No marker (a log cut short, a wrapper that prints none): a
            // strong error line among the last ones is where the job died.
            let tail = self.tail_error(TAIL, TAIL_MIN_SCORE);
            self.markers.extend(tail);
        }
        if failed && !self.markers.iter().chain(&self.last_step).any(alive) {
            // The job failed, whatever the log says: its last words are the
            // evidence (errors printed before a success marker included —
            // the success was not the end of it).
            let fallback = self
                .tail_error(RING, 0.1)
                .or_else(|| self.last_line_marker());
            return fallback.map(|marker| Located {
                meaning: exit_meaning(
                    None,
                    self.killed_line.is_some(),
                    self.timeout_line.is_some(),
                ),
                marker,
            });
        }
        let mut markers: Vec<Marker> = self.markers.into_iter().filter(alive).collect();
        if let Some(m) = self.last_step.filter(alive) {
            markers.push(m);
        }
        // The first CI-level marker is where the job (or its first failing
        // step) died; without one, a step marker near the end.
        let marker = match markers.iter().position(|m| m.level == Level::Job) {
            Some(i) => {
                let mut m = markers.swap_remove(i);
                // A CI marker right after a step marker ("make: *** Error 2"
                // then "The command exited with 2") has an empty region: the
                // error lines are in front of the step marker.
                if m.region.iter().all(|l| l.score < 2.0)
                    && let Some(step) = markers
                        .iter()
                        .filter(|s| s.level == Level::Step && s.line < m.line)
                        .max_by_key(|s| s.line)
                {
                    let mut region = step.region.clone();
                    region.push(RegionLine {
                        line: step.line,
                        text: step.text.clone(),
                        score: 1.0,
                    });
                    region.extend(m.region);
                    m.region = region;
                    if m.exit_code.is_none() {
                        m.exit_code = step.exit_code;
                    }
                }
                m
            }
            None => markers
                .into_iter()
                .rfind(|m| m.line + STEP_NEAR_END >= total_lines)?,
        };
        let meaning = exit_meaning(
            marker.exit_code,
            self.killed_line.is_some_and(|k| k <= marker.line),
            self.timeout_line.is_some_and(|t| t <= marker.line),
        );
        Some(Located { marker, meaning })
    }
}

impl Locator {
    /// The last line among the last `tail` ones scoring at least `min` as
    /// an error, as a step marker with the lines before it as its region.
    fn tail_error(&mut self, tail: usize, min: f32) -> Option<Marker> {
        let tail_start = self.ring.len().saturating_sub(tail);
        let at = (tail_start..self.ring.len())
            .rev()
            .find(|&i| line_score(&self.ring[i].1) >= min)?;
        let (line, text) = self.ring[at].clone();
        self.ring.truncate(at);
        Some(Marker {
            line,
            text,
            exit_code: None,
            level: Level::Step,
            region: self.region(),
        })
    }
}

impl Locator {
    /// The log's last line as a marker (a failed job that printed no error).
    fn last_line_marker(&mut self) -> Option<Marker> {
        let (line, text) = self.ring.pop_back()?;
        Some(Marker {
            line,
            text,
            exit_code: None,
            level: Level::Step,
            region: self.region(),
        })
    }
}

/// Lines at the end of a log searched for an error when it has no marker.
const TAIL: usize = 12;
/// How strongly such a line must look like an error.
const TAIL_MIN_SCORE: f32 = 4.5;

/// How much a line looks like an error. Zero for lines that say nothing.
pub fn line_score(text: &str) -> f32 {
    let t = text.trim();
    // A tool's error prefix with nothing after it says nothing.
    let bare = t
        .trim_start_matches(['[', ']', ' '])
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .trim_start_matches([']', ':', ' ']);
    if t.len() < 3 || bare.is_empty() {
        return 0.0;
    }
    let l = t.to_ascii_lowercase();
    // Lines that report zero problems, and the shell echoing a command.
    if l.contains("0 errors")
        || l.contains("0 failures")
        || l.contains(" 0 failed")
        || l.contains("no errors")
        || l.starts_with("$ ")
        || l.starts_with("+ ")
        || l.starts_with("travis_")
    {
        return 0.0;
    }
    let mut s = 0.0f32;
    for (word, weight) in [
        ("error", 3.0),
        ("fail", 3.0),
        ("fatal", 3.0),
        ("panic", 3.0),
        ("exception", 2.5),
        ("traceback", 2.0),
        ("assert", 2.0),
        ("cannot ", 2.0),
        ("can't ", 2.0),
        ("could not", 2.0),
        ("couldn't", 2.0),
        ("unable to", 2.0),
        ("not found", 2.0),
        ("not exist", 2.0),
        ("giving up", 1.5),
        ("gave up", 1.5),
        ("no such", 2.0),
        ("denied", 2.0),
        ("refused", 2.0),
        ("missing", 1.5),
        ("undefined", 1.5),
        ("unexpected", 1.5),
        ("invalid", 1.5),
        ("expected", 1.0),
        ("killed", 2.0),
        ("timed out", 2.0),
        ("timeout", 1.5),
        ("abort", 2.0),
        ("broken", 1.0),
        ("violation", 1.5),
        ("segmentation fault", 3.0),
        ("not ok", 2.5),
    ] {
        if l.contains(word) {
            s += weight;
        }
    }
    if s == 0.0 {
        // Structure without keywords: stack frames and diff lines.
        if t.starts_with("at ") || t.starts_with("File \"") {
            return 0.5;
        }
        return 0.0;
    }
    if l.contains("warning") || l.contains("deprecat") {
        s *= 0.4;
    }
    // Advice a tool prints after its error ("re-run with -X", "for more
    // information see …", "[Help 1]") repeats error words but explains nothing.
    if l.contains("re-run")
        || l.contains("for more information")
        || l.contains("full stack trace")
        || l.contains("[help")
        || l.contains("see the")
        || l.contains("to see ")
        || l.contains("enable debug")
        || l.contains("--stacktrace")
        || l.contains("--debug")
    {
        s *= 0.2;
    }
    // Lines a tool prints as its error (prefix) weigh more than prose.
    if l.starts_with("error")
        || l.starts_with("[error]")
        || l.starts_with("fatal")
        || l.starts_with("e ")
        || l.starts_with("failed")
        || l.starts_with("fail")
        || l.contains(": error")
        || l.contains("error:")
    {
        s += 1.5;
    }
    s
}

/// A line's template (numbers, hex, quoted strings and paths masked),
/// hashed: two runs of the same job print the same templates for the lines
/// that do not matter.
pub fn template_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for token in text.split_whitespace() {
        let masked = token.chars().any(|c| c.is_ascii_digit())
            || token.contains('/')
            || token.contains('\\')
            || token.len() > 40;
        if masked {
            "<*>".hash(&mut h);
        } else {
            token.hash(&mut h);
        }
    }
    h.finish()
}

/// The templates of a (passing) log, for [`Locator::with_baseline`].
pub fn templates<'a>(lines: impl IntoIterator<Item = &'a str>) -> HashSet<u64> {
    lines
        .into_iter()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(template_hash)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Category;

    fn locate(log: &str) -> Option<Located> {
        let mut l = Locator::default();
        let mut n = 0;
        for (i, line) in log.lines().enumerate() {
            n = i as u32 + 1;
            l.line(n, line);
        }
        l.finish(n, None, false)
    }

    #[test]
    fn region_holds_the_error_lines_before_the_marker() {
        let log = "$ ./configure\nchecking for gcc... yes\nsome progress\n\
                   src/a.zz:3: error: something broke here\n  while doing things\n\
                   The command \"make\" exited with 2.\n\nDone. Your build exited with 1.\n";
        let at = locate(log).expect("a failure is located");
        assert_eq!(at.marker.line, 6);
        assert_eq!(at.marker.exit_code, Some(2));
        let ev = at.evidence(3);
        assert_eq!(ev[0].line, 4, "{ev:?}");
        assert_eq!(ev.last().map(|e| e.line), Some(6));
    }

    #[test]
    fn the_first_job_marker_wins_and_a_kill_is_a_resource_failure() {
        let log = "$ mvn install\n[INFO] Downloading\n/home/ci/build.sh: line 3:  4242 Killed  mvn install\n\
                   The command \"mvn install\" failed and exited with 137 during .\n\
                   Your build has been stopped.\n";
        let at = locate(log).expect("located");
        assert_eq!(at.meaning.map(|m| m.category), Some(Category::Resource));
    }

    #[test]
    fn passing_logs_and_survived_failures_have_no_marker() {
        assert!(locate("building\nall good\nDone. Your build exited with 0.\n").is_none());
        let mut l = Locator::default();
        l.line(1, "exit status 1");
        l.line(2, "[INFO] BUILD SUCCESS");
        assert!(l.finish(2, Some(2), false).is_none());
        // A step marker far from the end of a long log says nothing.
        let mut l = Locator::default();
        l.line(1, "exit status 1");
        assert!(l.finish(1000, None, false).is_none());
    }

    #[test]
    fn a_job_known_to_have_failed_always_gets_a_place() {
        let lines = [
            "compiling",
            "linking",
            "error: the linker hit a snag",
            "cleaning up",
        ];
        let mut l = Locator::default();
        for (i, t) in lines.iter().enumerate() {
            l.line(i as u32 + 1, t);
        }
        let at = l
            .finish(4, None, true)
            .expect("a failed job is never silent");
        assert_eq!(at.marker.line, 3);
        // Nothing error-like at all: the last line.
        let mut l = Locator::default();
        l.line(1, "OK (12 tests)");
        l.line(2, "done");
        assert_eq!(l.finish(2, Some(1), true).map(|a| a.marker.line), Some(2));
        // Unknown outcome: no marker, no verdict.
        let mut l = Locator::default();
        l.line(1, "done");
        assert!(l.finish(1, None, false).is_none());
    }

    #[test]
    fn blocks_and_lines_locate_the_same() {
        let log = "a\nerror: one thing\nmake: *** [all] Error 2\nx\nThe command \"make\" exited with 2.\nz";
        let mut by_line = Locator::default();
        let mut starts = Vec::new();
        let mut at = 0;
        for (i, t) in log.split('\n').enumerate() {
            by_line.line(i as u32 + 1, t);
            starts.push(BlockLine {
                number: i as u32 + 1,
                start: at,
                error_marker: false,
            });
            at += t.len() + 1;
        }
        let mut by_block = Locator::default();
        by_block.block(log, &starts);
        let (a, b) = (
            by_line.finish(6, None, false),
            by_block.finish(6, None, false),
        );
        let (a, b) = (a.expect("located"), b.expect("located"));
        assert_eq!((a.marker.line, a.marker.exit_code), (5, Some(2)));
        assert_eq!((b.marker.line, b.marker.exit_code), (5, Some(2)));
        assert_eq!(a.evidence(5), b.evidence(5));
    }

    #[test]
    fn baseline_lines_are_discounted() {
        let passing = ["WARNING: cache miss error 42 for key abc"];
        let mut l = Locator::with_baseline(Some(templates(passing)));
        l.line(1, "WARNING: cache miss error 17 for key abc");
        l.line(2, "error: the real one");
        l.line(3, "Process completed with exit code 1.");
        let at = l.finish(3, None, false).expect("located");
        assert_eq!(at.best_lines(1)[0].line, 2);
    }

    #[test]
    fn scores() {
        assert!(
            line_score("error: cannot find symbol") > line_score("a warning: deprecated error")
        );
        assert_eq!(line_score("Tests run: 10, 0 failures"), 0.0);
        assert_eq!(line_score("$ make test"), 0.0);
        assert_eq!(line_score("Compiling foo v1"), 0.0);
        assert_eq!(line_score("[ERROR] "), 0.0);
        assert!(
            line_score("[ERROR] Re-run Maven using the -X switch to enable full debug logging.")
                < line_score(
                    "[ERROR] /src/A.java:[3,4] incompatible types: int cannot be converted"
                )
        );
    }
}
