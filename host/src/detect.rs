//! The detection pipeline: read a log line by line in bounded memory,
//! normalise it, run the native rule scanner over every line, stream chunks
//! of normalised lines to the WASM detector plugins, locate where the job
//! died ([`locator`]), read the error region with the trained classifier
//! ([`classifier`]) and combine everything into a [`Diagnosis`].

pub mod baseline;
pub mod classifier;
pub mod diagnosis;
pub mod eval;
pub mod live;
pub mod locator;
pub mod markers;
pub mod normalize;
pub mod outcome;
pub mod reader;
pub mod scanner;

use std::collections::HashSet;
use std::io::BufRead;
use std::sync::Arc;

use serde::Serialize;

pub use diagnosis::Diagnosis;
use diagnosis::Position;
use scanner::{BlockLine, RuleError, RuleSet};

use crate::model::{Finding, Job};
use crate::runtime::detector::ScanSession;
use crate::runtime::{PluginKind, Runtime};

/// Errors that stop the analysis of one log (plugin failures do not: they
/// are reported in [`Report::plugin_errors`] and the others carry on).
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The log could not be read.
    #[error("cannot read the log: {0}")]
    Read(#[from] std::io::Error),
    /// The log has more lines than line numbers can hold.
    #[error("the log has more than {} lines", u32::MAX)]
    TooManyLines,
    /// The runtime shut down while a block of the log was being scanned.
    #[error("the analysis was cancelled (the runtime is shutting down)")]
    Cancelled,
}

/// The native half of the analysis, which needs every block in order: the
/// rule scan and the locator.
struct Native {
    scan: scanner::Scan,
    locator: locator::Locator,
}

impl Native {
    fn block(&mut self, text: &str, lines: &[BlockLine]) {
        self.scan.block(text, lines);
        self.locator.block(text, lines);
    }
}

/// A block of normalised lines, shared by the native scan's thread and the
/// detector plugins' feed.
struct Block {
    text: String,
    lines: Vec<BlockLine>,
}

/// Bytes of blocks a big log's native scan may lag behind the reading:
/// enough to even out blocks that cost the scanner more (its lazy automaton
/// grows on new text) without holding much of the log in memory, whatever
/// `[limits] chunk_bytes` is (one block at least, eight at most).
const NATIVE_QUEUE_BYTES: usize = 2 << 20;

/// The native half: here, or on a blocking thread taking blocks in order.
enum NativeSlot {
    Idle(Box<Native>),
    Running {
        blocks: tokio::sync::mpsc::Sender<Arc<Block>>,
        done: tokio::task::JoinHandle<Native>,
    },
}

impl NativeSlot {
    /// Has `block` scanned on the native thread (started on first need).
    async fn send(self, block: Arc<Block>) -> Result<NativeSlot, DetectError> {
        let (blocks, done) = match self {
            NativeSlot::Running { blocks, done } => (blocks, done),
            NativeSlot::Idle(mut native) => {
                let depth = (NATIVE_QUEUE_BYTES / block.text.len().max(1)).clamp(1, 8);
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Block>>(depth);
                let done = tokio::task::spawn_blocking(move || {
                    while let Some(b) = rx.blocking_recv() {
                        native.block(&b.text, &b.lines);
                    }
                    *native
                });
                (tx, done)
            }
        };
        match blocks.send(block).await {
            Ok(()) => Ok(NativeSlot::Running { blocks, done }),
            // The thread ended early: only a panic or a shutdown does that.
            Err(unsent) => {
                let mut native = NativeSlot::Running { blocks, done }.idle().await?;
                native.block(&unsent.0.text, &unsent.0.lines);
                Ok(NativeSlot::Idle(Box::new(native)))
            }
        }
    }

    /// The native half once it has scanned every block sent so far.
    async fn idle(self) -> Result<Native, DetectError> {
        match self {
            NativeSlot::Idle(n) => Ok(*n),
            NativeSlot::Running { blocks, done } => {
                drop(blocks);
                match done.await {
                    Ok(n) => Ok(n),
                    // A panic in the scanner is a bug: it surfaces as if the
                    // scan had run on this task.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => Err(DetectError::Cancelled),
                }
            }
        }
    }
}

/// What the caller knows about a log besides its text.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Line templates of a passing run of the same job (see
    /// [`locator::templates`]): error lines the passing run printed too are
    /// discounted as evidence.
    pub baseline: Option<HashSet<u64>>,
    /// The job is known to have failed (the platform said so, the wrapped
    /// command exited non-zero): the verdict is never "no failure", even
    /// when the log has no failure marker (a log cut short, a runner that
    /// prints none) — the locator falls back to the log's last error lines.
    pub failed: bool,
}

/// The result of analysing one log.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The verdict.
    #[serde(flatten)]
    pub diagnosis: Diagnosis,
    /// Lines read.
    pub lines: u32,
    /// Bytes read.
    pub bytes: u64,
    /// Plugins that failed on this log (contained; their findings are missing).
    pub plugin_errors: Vec<String>,
}

/// Runs the pipeline with a runtime's packs and detectors.
#[derive(Debug)]
pub struct Analyzer {
    runtime: Arc<Runtime>,
    rules: Arc<RuleSet>,
    model: Option<Arc<classifier::Model>>,
    mode: diagnosis::Mode,
}

impl Analyzer {
    /// Compiles the rules of every loaded pack and the learned rules in the
    /// database. Rules that do not compile
    /// are returned, each naming its pack and rule; the rest are active.
    pub fn new(runtime: Arc<Runtime>) -> (Analyzer, Vec<RuleError>) {
        let packs: Vec<_> = runtime.plugins_of(PluginKind::Pack).cloned().collect();
        // Learned rules join the same single pass as the packs' rules.
        let learned: Vec<crate::model::Rule> = match crate::learn::rules::all(runtime.db()) {
            Ok(l) => l.into_iter().map(|l| l.rule).collect(),
            Err(e) => {
                tracing::warn!("learned rules unreadable: {e}");
                Vec::new()
            }
        };
        let mut plans = scanner::plans::Plans::load(runtime.cache_dir());
        let (rules, errors) = RuleSet::compile_with(
            packs
                .iter()
                .flat_map(|p| p.rules.iter().map(move |r| (p.id(), r)))
                .chain(learned.iter().map(|r| (crate::learn::rules::SOURCE, r))),
            &mut plans,
        );
        plans.save();
        for e in &errors {
            tracing::warn!("rule rejected: {e}");
        }
        // The model trained here (`guard train`) and the first pack's.
        let shipped = packs.iter().find_map(|p| p.model.get());
        let model = match crate::learn::examples::model(runtime.db()) {
            // Trained on corpora: it stands alone.
            Ok(Some(m)) if m.standalone => Some(Arc::new(m)),
            // Corrections: they add to the shipped model.
            Ok(Some(m)) => Some(Arc::new(match &shipped {
                Some(s) => s.merged(&m),
                None => m,
            })),
            Ok(None) => shipped,
            Err(e) => {
                tracing::warn!("trained classifier unreadable: {e}");
                shipped
            }
        };
        (
            Analyzer {
                runtime,
                rules,
                model,
                mode: diagnosis::Mode::Combined,
            },
            errors,
        )
    }

    /// The same analyzer with another classifier model (or none).
    pub fn with_model(mut self, model: Option<Arc<classifier::Model>>) -> Analyzer {
        self.model = model;
        self
    }

    /// The same analyzer deciding by rules, model or both.
    pub fn with_mode(mut self, mode: diagnosis::Mode) -> Analyzer {
        self.mode = mode;
        self
    }

    /// The classifier model in use.
    pub fn model(&self) -> Option<&Arc<classifier::Model>> {
        self.model.as_ref()
    }

    /// The compiled rules.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Analyses one log. `progress` is told the bytes read so far.
    pub async fn analyze<R: BufRead>(
        &self,
        input: R,
        job: &Job,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Report, DetectError> {
        self.analyze_with(input, job, Known::default(), progress)
            .await
    }

    /// Analyses one log with what the caller knows about it (see [`Known`]).
    pub async fn analyze_with<R: BufRead>(
        &self,
        input: R,
        job: &Job,
        known: Known,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Report, DetectError> {
        let Known { baseline, failed } = known;
        let limits = self.runtime.config().limits.clone();
        let mut plugin_errors = Vec::new();
        let mut sessions: Vec<ScanSession> = Vec::new();
        for plugin in self.runtime.plugins_of(PluginKind::Detector) {
            match self.runtime.start_scan(plugin, job).await {
                Ok(s) => sessions.push(s),
                Err(e) => plugin_errors.push(e.to_string()),
            }
        }
        let mut reader = reader::LineReader::new(input, limits.max_line_bytes.saturating_mul(4));
        let mut native = NativeSlot::Idle(Box::new(Native {
            scan: self.rules.scan(),
            locator: locator::Locator::with_baseline(baseline),
        }));
        let mut raw = Vec::new();
        let mut text = String::new();
        // One block of normalised lines serves both the native scanner and
        // the detector plugins' `feed`.
        let mut chunk = String::new();
        let mut lines: Vec<BlockLine> = Vec::new();
        let mut number: u32 = 0;
        let mut marked_lines: Vec<u32> = Vec::new();
        let mut outcome = outcome::Outcome::default();
        let mut last_progress = 0u64;
        while reader.next_line(&mut raw)? {
            number = number.checked_add(1).ok_or(DetectError::TooManyLines)?;
            let marker = normalize::normalize_into(&raw, limits.max_line_bytes, &mut text);
            if marker && marked_lines.len() < 10_000 {
                marked_lines.push(number);
            }
            outcome.line(number, &text);
            if !lines.is_empty() {
                chunk.push('\n');
            }
            lines.push(BlockLine {
                number,
                start: chunk.len(),
                error_marker: marker,
            });
            chunk.push_str(&text);
            if chunk.len() >= limits.chunk_bytes {
                // A full block and more to come: a big log. Its native scan
                // runs on a blocking thread while this task feeds the same
                // block to the detector plugins and reads the next one, so
                // a big log keeps two cores busy (a small log, one block,
                // is scanned inline below: a thread hand-off would cost
                // more than its scan).
                let block = Block {
                    text: std::mem::replace(&mut chunk, String::with_capacity(limits.chunk_bytes)),
                    lines: std::mem::take(&mut lines),
                };
                native = self
                    .hand_off(native, block, &mut sessions, &mut plugin_errors)
                    .await?;
            }
            if reader.bytes - last_progress >= 1 << 20 {
                last_progress = reader.bytes;
                progress(reader.bytes);
            }
        }
        progress(reader.bytes);
        // The last block of a big log goes to the native thread too: its
        // automata are warm there, cold on this one.
        if matches!(native, NativeSlot::Running { .. }) && !lines.is_empty() {
            let block = Block {
                text: std::mem::take(&mut chunk),
                lines: std::mem::take(&mut lines),
            };
            native = self
                .hand_off(native, block, &mut sessions, &mut plugin_errors)
                .await?;
        }
        let mut native = native.idle().await?;
        if let Some(first) = lines.first() {
            native.block(&chunk, &lines);
            self.feed_all(&mut sessions, &chunk, first.number, &mut plugin_errors)
                .await;
        }
        let Native { scan, locator } = native;
        let mut findings: Vec<(Finding, Position)> = scan
            .finish()
            .into_iter()
            .map(|(f, hit)| {
                let last_line = f.evidence.iter().map(|e| e.line).max().unwrap_or(0);
                (
                    f,
                    Position {
                        last_line,
                        marked: hit.marked > 0,
                        count: hit.count,
                        in_baseline: false,
                    },
                )
            })
            .collect();
        for session in sessions {
            let id = session.plugin().id().to_string();
            match session.finish(&self.runtime).await {
                Ok(found) => {
                    for f in found {
                        let last_line = f.evidence.iter().map(|e| e.line).max().unwrap_or(0);
                        let marked = f
                            .evidence
                            .iter()
                            .any(|e| marked_lines.binary_search(&e.line).is_ok());
                        let count = f.evidence.len() as u32;
                        findings.push((
                            f,
                            Position {
                                last_line,
                                marked,
                                count,
                                in_baseline: false,
                            },
                        ));
                    }
                }
                Err(e) => {
                    tracing::debug!(plugin = %id, "detector failed: {e}");
                    plugin_errors.push(e.to_string());
                }
            }
        }
        // What a passing run of the same job printed too did not make this
        // one fail: such findings weigh less, and such lines leave the
        // evidence of findings that have others.
        if locator.has_baseline() {
            for (f, pos) in findings.iter_mut() {
                let seen = |e: &crate::model::Evidence| locator.in_baseline(&e.text);
                if !f.evidence.is_empty() && f.evidence.iter().all(seen) {
                    pos.in_baseline = true;
                } else {
                    f.evidence.retain(|e| !seen(e));
                }
            }
        }
        // Errors followed by a success marker were survived; they do not
        // explain a failure.
        let survived = outcome.survived_until();
        if let Some(until) = survived {
            findings.retain(|(_, pos)| pos.last_line > until);
        }
        let located = locator.finish(number, survived, failed);
        let prediction = match (&self.model, &located) {
            (Some(model), Some(at)) => model.predict(&region_tokens(at)),
            _ => None,
        };
        let cx = diagnosis::Context {
            located: located.as_ref(),
            prediction: prediction.as_ref(),
            mode: self.mode,
        };
        Ok(Report {
            diagnosis: diagnosis::diagnose(findings, number, cx),
            lines: number,
            bytes: reader.bytes,
            plugin_errors,
        })
    }

    /// The classifier's document for a log: the tokens of its located error
    /// region (`None` when no failure marker was found).
    pub async fn region_tokens<R: BufRead>(
        &self,
        input: R,
    ) -> Result<Option<Vec<String>>, DetectError> {
        let limits = self.runtime.config().limits.clone();
        let mut reader = reader::LineReader::new(input, limits.max_line_bytes.saturating_mul(4));
        let (mut raw, mut text) = (Vec::new(), String::new());
        let mut outcome = outcome::Outcome::default();
        let mut locator = locator::Locator::default();
        let mut number: u32 = 0;
        while reader.next_line(&mut raw)? {
            number = number.checked_add(1).ok_or(DetectError::TooManyLines)?;
            normalize::normalize_into(&raw, limits.max_line_bytes, &mut text);
            outcome.line(number, &text);
            locator.line(number, &text);
        }
        Ok(locator
            .finish(number, outcome.survived_until(), false)
            .map(|at| region_tokens(&at)))
    }

    /// Sends a block of a big log to the native thread and feeds it to the
    /// detector plugins here meanwhile.
    async fn hand_off(
        &self,
        native: NativeSlot,
        block: Block,
        sessions: &mut Vec<ScanSession>,
        errors: &mut Vec<String>,
    ) -> Result<NativeSlot, DetectError> {
        let block = Arc::new(block);
        let native = native.send(Arc::clone(&block)).await?;
        if let Some(first) = block.lines.first() {
            self.feed_all(sessions, &block.text, first.number, errors)
                .await;
        }
        Ok(native)
    }

    async fn feed_all(
        &self,
        sessions: &mut Vec<ScanSession>,
        chunk: &str,
        first: u32,
        errors: &mut Vec<String>,
    ) {
        let mut i = 0;
        while i < sessions.len() {
            match sessions[i].feed(&self.runtime, chunk, first).await {
                Ok(()) => i += 1,
                // A failed detector is dropped for the rest of this log; its
                // store (and any runaway state) goes with it.
                Err(e) => {
                    errors.push(e.to_string());
                    sessions.remove(i);
                }
            }
        }
    }
}

/// The classifier reads the best lines of the error region and the marker
/// (which names the command that failed).
fn region_tokens(at: &locator::Located) -> Vec<String> {
    let lines = at.best_lines(20);
    classifier::tokens(
        lines
            .iter()
            .map(|l| l.text.as_str())
            .chain(std::iter::once(at.marker.text.as_str())),
    )
}
