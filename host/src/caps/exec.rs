//! `guard:plugin/exec`: allow-listed programs. The program must be a bare
//! name granted as `exec:<name>`; it runs with a cleared environment (only
//! PATH, HOME, LANG, LC_ALL and TMPDIR pass through), in guard's working
//! directory, with stdin closed, a time cap and capped output.
//!
//! Under `guard exec` one more program may run without a grant: the
//! command the user wrapped, narrowed by the host to failed tests
//! (`rerun-tests`, see [`crate::heal::narrow`]). It runs as the wrapped
//! command ran — the user's environment, their working directory — because
//! it *is* their command; the plugin chooses only which tests.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::caps::grants::Grant;
use crate::heal::narrow::{self, NarrowError, Verdict};
use crate::runtime::bindings::exec::{Host, Output, TestRerun};
use crate::runtime::bindings::types::Error;
use crate::runtime::state::PluginState;

/// Variables passed through to the child.
const ENV_ALLOW: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"];
/// Bytes of stdout and of stderr kept.
const MAX_OUTPUT: usize = 1024 * 1024;
const MAX_ARGS: usize = 256;
const MAX_ARG: usize = 8 * 1024;
/// Narrowed test re-runs one heal may make.
pub const TEST_RERUNS_PER_HEAL: u32 = 2;

/// The command `guard exec` wraps, as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// Program first.
    pub argv: Vec<String>,
    /// Extra environment of the run being healed (a healer's earlier
    /// tuning); the rest is guard's own, as the wrapped command had it.
    pub env: Vec<(String, String)>,
}

impl Host for PluginState {
    async fn run(
        &mut self,
        program: String,
        args: Vec<String>,
    ) -> wasmtime::Result<Result<Output, Error>> {
        if program.is_empty() || program.contains(['/', '\\']) || program.contains('\0') {
            return Ok(Err(Error::Invalid(format!(
                "program must be a bare name granted as exec:<name>, not {program:?}"
            ))));
        }
        if let Err(e) = self.require(&Grant::Exec(program.clone())) {
            return Ok(Err(e));
        }
        if let Err(why) = self.ctx.grants.exec_args_allowed(&program, &args) {
            let detail = format!("{program} {}", crate::caps::grants::quote_args(&args));
            return Ok(Err(self.refuse(
                "denied",
                &format!("exec:{program}"),
                ("exec.run", &detail),
                why,
            )));
        }
        if args.len() > MAX_ARGS || args.iter().any(|a| a.len() > MAX_ARG || a.contains('\0')) {
            return Ok(Err(Error::Invalid(format!(
                "at most {MAX_ARGS} arguments of at most {MAX_ARG} bytes, without NUL"
            ))));
        }
        let detail = format!("{program} {}", args.join(" "));
        if self.ctx.dry_run {
            self.audit("exec.run", &detail, "dry-run");
            return Ok(Err(Error::Unavailable(
                "dry run: the program was not run".into(),
            )));
        }
        // Leave the plugin call some of its wall-clock budget to handle the result.
        let cap = Duration::from_millis(self.ctx.limits.call_timeout_ms.saturating_mul(8) / 10);
        let result = run_capped(&program, &args, cap, self.ctx.workdir.as_deref()).await;
        let outcome = match &result {
            Ok(o) => format!("exit {}", o.status),
            Err(e) => format!("failed: {e:?}"),
        };
        self.audit("exec.run", &detail, &outcome);
        Ok(result)
    }

    async fn wrapped_command(&mut self) -> wasmtime::Result<Option<Vec<String>>> {
        Ok(self.ctx.wrapped.as_ref().map(|w| w.argv.clone()))
    }

    async fn rerun_tests(
        &mut self,
        tests: Vec<String>,
    ) -> wasmtime::Result<Result<TestRerun, Error>> {
        if let Err(e) = self.count_host_call() {
            return Ok(Err(e));
        }
        let Some(wrapped) = self.ctx.wrapped.clone() else {
            return Ok(Err(Error::Unavailable(
                "no wrapped command: only heals under `guard exec` can re-run the user's tests"
                    .into(),
            )));
        };
        if tests.len() > narrow::MAX_TESTS || tests.iter().any(|t| t.len() > narrow::MAX_NAME) {
            return Ok(Err(Error::Limited(format!(
                "at most {} test names of at most {} bytes",
                narrow::MAX_TESTS,
                narrow::MAX_NAME
            ))));
        }
        let narrowed = match narrow::narrow(&wrapped.argv, &tests) {
            Ok(n) => n,
            Err(e @ NarrowError::BadName { .. }) => {
                // A name that would be an option or a file elsewhere is an
                // attempt to run more than the user's tests.
                let detail: String = crate::caps::grants::quote_args(&tests)
                    .chars()
                    .take(512)
                    .collect();
                return Ok(Err(self.refuse(
                    "denied",
                    "exec.rerun-tests",
                    ("exec.rerun-tests", &detail),
                    e.to_string(),
                )));
            }
            Err(e) => return Ok(Err(Error::Invalid(e.to_string()))),
        };
        let detail = crate::caps::grants::quote_args(&narrowed.argv);
        if self
            .ctx
            .test_reruns_left
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_err()
        {
            return Ok(Err(Error::Limited(format!(
                "one heal may re-run tests {TEST_RERUNS_PER_HEAL} times"
            ))));
        }
        if self.ctx.dry_run {
            self.audit("exec.rerun-tests", &detail, "dry-run");
            return Ok(Err(Error::Unavailable(
                "dry run: the tests were not re-run".into(),
            )));
        }
        let cap = Duration::from_millis(self.ctx.limits.test_rerun_ms);
        let result = run_wrapped(
            &narrowed.argv,
            &wrapped.env,
            cap,
            self.ctx.workdir.as_deref(),
        )
        .await;
        let outcome = match &result {
            Ok(o) => format!("exit {}", o.status),
            Err(e) => format!("failed: {e:?}"),
        };
        self.audit("exec.rerun-tests", &detail, &outcome);
        let output = match result {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        if output.status == -1 {
            // Killed at the cap or by a signal: it says nothing either way.
            return Ok(Err(Error::Limited(format!(
                "`{detail}` did not finish ({})",
                output.stderr.chars().take(200).collect::<String>()
            ))));
        }
        let text = format!("{}\n{}", output.stdout, output.stderr);
        match narrow::judge(narrowed.runner, output.status, &text) {
            Verdict::NothingRan => {
                return Ok(Err(Error::NotFound(format!(
                    "`{detail}` ran none of the tests (exit {}): it says nothing about them",
                    output.status
                ))));
            }
            // What the host saw pass alone is all a heal may call flaky.
            Verdict::Passed => match self.ctx.passed_alone.lock() {
                Ok(mut v) => v.extend(tests.iter().cloned()),
                Err(p) => p.into_inner().extend(tests.iter().cloned()),
            },
            Verdict::Failed => {}
        }
        Ok(Ok(TestRerun {
            command: narrowed.argv,
            output,
        }))
    }
}

/// Runs the user's own (narrowed) command as the wrapped one ran: their
/// environment plus the run's extra variables, their working directory,
/// stdin closed, output capped, killed at `cap`.
async fn run_wrapped(
    argv: &[String],
    env: &[(String, String)],
    cap: Duration,
    workdir: Option<&std::path::Path>,
) -> Result<Output, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Invalid("empty command".into()));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = workdir {
        cmd.current_dir(dir);
    }
    collect(cmd, program, cap).await
}

/// Runs an allow-listed program with the cleared environment.
async fn run_capped(
    program: &str,
    args: &[String],
    cap: Duration,
    workdir: Option<&std::path::Path>,
) -> Result<Output, Error> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = workdir {
        cmd.current_dir(dir);
    }
    for var in ENV_ALLOW {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    collect(cmd, program, cap).await
}

/// Starts `cmd` and waits for it, keeping capped output; killed at `cap`.
async fn collect(
    mut cmd: tokio::process::Command,
    program: &str,
    cap: Duration,
) -> Result<Output, Error> {
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::NotFound(format!("program {program} not found on PATH"))
        }
        _ => Error::Unavailable(format!("cannot start {program}: {e}")),
    })?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let collect = async {
        let (o, e) = tokio::join!(read_capped(out.as_mut()), read_capped(err.as_mut()));
        let status = child.wait().await;
        (o, e, status)
    };
    match tokio::time::timeout(cap, collect).await {
        Ok(((stdout, t1), (stderr, t2), status)) => {
            let status =
                status.map_err(|e| Error::Unavailable(format!("waiting for {program}: {e}")))?;
            Ok(Output {
                status: status.code().unwrap_or(-1),
                stdout,
                stderr,
                truncated: t1 || t2,
            })
        }
        // `kill_on_drop` ends the child when `collect` is dropped here.
        Err(_) => Ok(Output {
            status: -1,
            stdout: String::new(),
            stderr: format!("killed after {} ms", cap.as_millis()),
            truncated: true,
        }),
    }
}

/// Reads a pipe to the end, keeping the first [`MAX_OUTPUT`] bytes.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(pipe: Option<&mut R>) -> (String, bool) {
    let Some(pipe) = pipe else {
        return (String::new(), false);
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut truncated = false;
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                if n > room {
                    truncated = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), truncated)
}
