//! Per-call sandbox limits: linear memory (a `ResourceLimiter`), CPU (epoch
//! ticks counted per call), captured stdout/stderr (capped, never failing
//! the guest), and the classification of a failed call into a reason people
//! can act on.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime::ResourceLimiter;

use super::engine::EPOCH_TICK;

/// Why a plugin call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It ran for longer than its CPU budget.
    CpuLimit {
        /// The budget, in milliseconds.
        ms: u64,
    },
    /// It tried to grow its memory past the limit.
    MemoryLimit {
        /// The limit, in MiB.
        mib: u64,
    },
    /// The call took longer than the wall-clock timeout (host calls included).
    Timeout {
        /// The timeout, in milliseconds.
        ms: u64,
    },
    /// Its calls on one log (or one heal) took longer than the deadline in
    /// all; its answer was dropped.
    Deadline {
        /// `scan` or `heal`.
        what: &'static str,
        /// The deadline, in milliseconds.
        ms: u64,
    },
    /// Recursion deeper than the wasm stack.
    StackOverflow,
    /// The plugin trapped (panic, unreachable, bad memory access…).
    Trap(String),
    /// It returned something the host refuses (too large, malformed).
    BadOutput(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::CpuLimit { ms } => write!(
                f,
                "stopped after exceeding its CPU limit of {ms} ms ([limits] cpu_ms)"
            ),
            Failure::MemoryLimit { mib } => write!(
                f,
                "stopped after trying to grow memory past {mib} MiB ([limits] memory_mib)"
            ),
            Failure::Timeout { ms } => write!(
                f,
                "stopped after {ms} ms without returning ([limits] call_timeout_ms)"
            ),
            Failure::Deadline { what, ms } => write!(
                f,
                "passed the {what} deadline of {ms} ms in all; its answer was dropped ([limits] {what}_deadline_ms)"
            ),
            Failure::StackOverflow => {
                f.write_str("stopped: wasm call stack exhausted (runaway recursion)")
            }
            Failure::Trap(m) => write!(f, "trapped: {m}"),
            Failure::BadOutput(m) => write!(f, "returned unusable output: {m}"),
        }
    }
}

/// Memory and table limits of one store; remembers whether a limit was hit
/// so the resulting trap can be reported as what it is.
#[derive(Debug)]
pub struct Limiter {
    memory_bytes: usize,
    /// Set when a growth request was refused.
    pub memory_exceeded: bool,
}

/// Table elements allowed per table; generous for real code, small enough
/// that a table bomb cannot exhaust host memory.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl Limiter {
    /// A limiter allowing `mib` MiB of linear memory per instance.
    pub fn new(mib: u64) -> Limiter {
        Limiter {
            memory_bytes: (mib as usize).saturating_mul(1024 * 1024),
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exceeded = true;
            // Err traps at once with this message; Ok(false) would hand the
            // guest a failed `memory.grow`, and most guests then abort with
            // a less helpful message.
            return Err(wasmtime::format_err!(
                "memory limit: growing to {desired} bytes exceeds {} bytes",
                self.memory_bytes
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        // A component instantiates a handful of core instances.
        64
    }

    fn memories(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        64
    }
}

/// CPU accounting for the current call, in epoch ticks.
#[derive(Debug, Default)]
pub struct CpuMeter {
    /// Ticks observed while wasm ran during this call.
    pub ticks: u64,
    /// Budget in ticks.
    pub max_ticks: u64,
    /// Set when the budget ran out.
    pub exceeded: bool,
}

impl CpuMeter {
    /// A meter for a budget of `ms` milliseconds.
    pub fn new(ms: u64) -> CpuMeter {
        let tick = EPOCH_TICK.as_millis().max(1) as u64;
        CpuMeter {
            ticks: 0,
            max_ticks: ms.div_ceil(tick).max(1),
            exceeded: false,
        }
    }

    /// Called on every epoch deadline: another tick of wasm execution.
    /// Returns false when the budget is exhausted.
    pub fn tick(&mut self) -> bool {
        self.ticks += 1;
        if self.ticks > self.max_ticks {
            self.exceeded = true;
        }
        !self.exceeded
    }
}

/// Captured stdout or stderr of a plugin: keeps the first `cap` bytes and
/// silently drops the rest, so a chatty plugin is never failed for printing.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    buf: Arc<Mutex<Vec<u8>>>,
    cap: usize,
}

impl CappedOutput {
    /// An empty pipe keeping at most `cap` bytes.
    pub fn new(cap: usize) -> CappedOutput {
        CappedOutput {
            buf: Arc::new(Mutex::new(Vec::new())),
            cap,
        }
    }

    /// What was captured, lossily decoded.
    pub fn contents(&self) -> String {
        match self.buf.lock() {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(poisoned) => String::from_utf8_lossy(&poisoned.into_inner()).into_owned(),
        }
    }
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Ok(mut b) = self.buf.lock() {
            let room = self.cap.saturating_sub(b.len());
            b.extend_from_slice(&data[..data.len().min(room)]);
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl wasmtime_wasi::cli::IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Classifies the error of a failed call.
pub fn classify(
    error: &wasmtime::Error,
    cpu: &CpuMeter,
    limiter: &Limiter,
    cpu_ms: u64,
    memory_mib: u64,
) -> Failure {
    if cpu.exceeded {
        return Failure::CpuLimit { ms: cpu_ms };
    }
    if limiter.memory_exceeded {
        return Failure::MemoryLimit { mib: memory_mib };
    }
    // The trap is the root cause under wasmtime's backtrace context.
    let trap = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<wasmtime::Trap>());
    if let Some(trap) = trap {
        match trap {
            wasmtime::Trap::StackOverflow => return Failure::StackOverflow,
            wasmtime::Trap::Interrupt => return Failure::CpuLimit { ms: cpu_ms },
            _ => {}
        }
    }
    // The backtrace goes to the debug log; the reason is the root cause.
    let full = format!("{error:#}");
    tracing::debug!("plugin trap detail: {full}");
    let root = error
        .chain()
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "unknown error".into());
    let first = root.lines().next().unwrap_or("unknown error").to_string();
    Failure::Trap(first)
}
