//! `guard:plugin/exec`: allow-listed programs. The program must be a bare
//! name granted as `exec:<name>`; it runs with a cleared environment (only
//! PATH, HOME, LANG, LC_ALL and TMPDIR pass through), in guard's working
//! directory, with stdin closed, a time cap and capped output.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::caps::grants::Grant;
use crate::runtime::bindings::exec::{Host, Output};
use crate::runtime::bindings::types::Error;
use crate::runtime::state::PluginState;

/// Variables passed through to the child.
const ENV_ALLOW: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"];
/// Bytes of stdout and of stderr kept.
const MAX_OUTPUT: usize = 1024 * 1024;
const MAX_ARGS: usize = 256;
const MAX_ARG: usize = 8 * 1024;

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
}

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
