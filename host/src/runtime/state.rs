//! What a plugin's store holds: a deny-all WASI context, the limits of the
//! current call, and the [`CallContext`] through which capability host
//! functions (in `caps/`) check grants and reach guard's state.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::limits::{CappedOutput, CpuMeter, Limiter};
use crate::caps::grants::Grants;
use crate::config::Limits;
use crate::model::Job;
use crate::store::Store as Db;

/// Everything a call needs to know about who is calling and what it may do.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The plugin's id.
    pub plugin: String,
    /// What it was granted.
    pub grants: Arc<Grants>,
    /// guard's database (kv namespaces, audit, security events).
    pub db: Db,
    /// The job being worked on, when there is one; `ci` calls are scoped to it.
    pub job: Option<Job>,
    /// When true, actions are recorded but not performed.
    pub dry_run: bool,
    /// Limits for every call.
    pub limits: Limits,
    /// Working directory for `exec` (guard's own when unset).
    pub workdir: Option<std::path::PathBuf>,
    /// Where `ci` actions go: the platform's API (the daemon) or the
    /// local loop of `guard exec`; none for calls that heal nothing.
    pub backend: Option<Arc<dyn crate::caps::ci::CiBackend>>,
    /// The command `guard exec` wraps, which `exec.rerun-tests` may re-run
    /// narrowed to failed tests without a grant.
    pub wrapped: Option<Arc<crate::caps::exec::Wrapped>>,
    /// Why the host refuses re-runs in this call, whatever the strategy
    /// declared (a build failure, the attempt cap, a spent budget, an open
    /// breaker); `None` when a re-run may be asked for.
    pub rerun_refused: Option<String>,
    /// Re-runs this call may still ask for (one per heal).
    pub reruns_left: Arc<std::sync::atomic::AtomicU32>,
    /// Narrowed test re-runs this call may still make.
    pub test_reruns_left: Arc<std::sync::atomic::AtomicU32>,
    /// Tests the host itself saw pass when re-run alone in this call: the
    /// only tests a heal under `guard exec` may call flaky.
    pub passed_alone: Arc<std::sync::Mutex<Vec<String>>>,
}

/// The data of one plugin store.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) cpu: CpuMeter,
    pub(crate) ctx: Arc<CallContext>,
    pub(crate) stdout: CappedOutput,
    pub(crate) stderr: CappedOutput,
    /// Log messages accepted during the current call (rate limit).
    pub(crate) logs_this_call: u32,
    /// Host calls made during the current call (rate limit).
    pub(crate) host_calls_this_call: u32,
    /// When the current call began (plugin call latency metric).
    pub(crate) call_started: std::time::Instant,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl PluginState {
    /// The call context.
    pub fn context(&self) -> &CallContext {
        &self.ctx
    }
}

/// A fresh store for `ctx`: memory limiter, epoch deadline with async yield
/// and per-call CPU accounting, deny-all WASI.
pub fn new_store(engine: &Engine, ctx: Arc<CallContext>) -> Store<PluginState> {
    let limits = &ctx.limits;
    let stdout = CappedOutput::new(limits.plugin_output_bytes);
    let stderr = CappedOutput::new(limits.plugin_output_bytes);
    // No env, args, preopens, sockets or inherited stdio: a plugin reaches
    // the world only through guard's capability interfaces.
    let wasi = WasiCtxBuilder::new()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_blocking_current_thread(false)
        .build();
    let state = PluginState {
        wasi,
        table: ResourceTable::new(),
        limiter: Limiter::new(limits.memory_mib),
        cpu: CpuMeter::new(limits.cpu_ms),
        stdout,
        stderr,
        logs_this_call: 0,
        host_calls_this_call: 0,
        call_started: std::time::Instant::now(),
        ctx,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
        if cx.data_mut().cpu.tick() {
            // Yield to tokio at every tick so one busy plugin never starves
            // the executor (or the outer timeout).
            Ok(UpdateDeadline::Yield(1))
        } else {
            Err(wasmtime::format_err!("cpu limit exceeded"))
        }
    });
    store
}

/// Resets per-call accounting before the next export call on `store`.
pub fn begin_call(store: &mut Store<PluginState>) {
    let ms = store.data().ctx.limits.cpu_ms;
    let data = store.data_mut();
    data.cpu = CpuMeter::new(ms);
    data.logs_this_call = 0;
    data.host_calls_this_call = 0;
    data.call_started = std::time::Instant::now();
    store.set_epoch_deadline(1);
}
