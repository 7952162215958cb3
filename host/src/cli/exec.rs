//! `guard exec [--max-attempts N] [--dry-run] [--report FILE] -- CMD ARGS…`:
//! wrap one CI step. The command's output streams through unchanged; on
//! failure the heal [`Session`] — the daemon's too — diagnoses the log and
//! heals through the local backend (a re-run runs the command again, after
//! the backoff). The exit status is the final run's, except that failures
//! proven flaky (the failed tests passed when re-run alone) exit 0 unless
//! `--fail-on-flaky`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::Global;
use crate::caps::ci::CiBackend;
use crate::caps::exec::Wrapped;
use crate::detect::Analyzer;
use crate::heal::local::LocalBackend;
use crate::heal::planner::Plan;
use crate::heal::session::{Failure, Healing};
use crate::heal::{Outcome, Session};
use crate::model::{Job, Platform};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs of the command at most, the first included (budgets may stop earlier).
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Show the diagnosis, the plan and every action it would take; do none.
    #[arg(long)]
    dry_run: bool,
    /// Write a JSON report of every attempt to FILE.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Directory of extra plugins.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Working directory of the command (and of programs healers run).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Keep the failed exit status when the only failures were tests that
    /// passed when re-run alone (by default such a step exits 0 and the
    /// report names the flaky tests).
    #[arg(long)]
    fail_on_flaky: bool,
    /// Accepted for older scripts: flaky-only failures exit 0 by default now.
    #[arg(long, hide = true)]
    flaky_ok: bool,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// One run of the command: what the heal session made of it (outcome in
/// the words the daemon's job records use, diagnosis, strategy, actions,
/// notes).
#[derive(Debug, Serialize)]
struct Attempt {
    attempt: u32,
    exit_code: i32,
    duration_ms: u64,
    #[serde(flatten)]
    heal: Healing,
    backoff_secs: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Report {
    command: Vec<String>,
    /// `passed`, `healed`, `flaky` or `failed`.
    outcome: &'static str,
    exit_code: i32,
    dry_run: bool,
    attempts: Vec<Attempt>,
    flaky_tests: Vec<String>,
    plan: Option<Plan>,
}

pub async fn run(
    global: &Global,
    args: Args,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let workdir = match &args.workdir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let (runtime, _) = super::runtime(global, args.plugins.as_deref()).await?;
    let (analyzer, _) = Analyzer::new(runtime.clone());
    let session = Session::new(runtime.clone(), Arc::new(analyzer), args.dry_run);
    let logs = tempfile::tempdir().context("creating a directory for the step's log")?;
    let commit = git_head(&workdir).await.unwrap_or_else(|| "unknown".into());
    let command_line = args.command.join(" ");
    let baseline_key =
        crate::detect::baseline::exec_key(&workdir.display().to_string(), &command_line);
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut flaky_tests: Vec<String> = Vec::new();
    let mut last_plan = None;
    let mut outcome = "failed";
    let mut status;
    let mut number = 0u32;
    loop {
        number += 1;
        let log_path = logs.path().join(format!("attempt-{number}.log"));
        let started = Instant::now();
        status = run_streaming(&args.command, &workdir, &env, &log_path, out, err).await?;
        let job = Job {
            platform: Platform::Local,
            repository: workdir.display().to_string(),
            run_id: std::process::id().to_string(),
            job_id: "0".into(),
            job_name: command_line.clone(),
            attempt: number,
            commit: Some(commit.clone()),
            branch: None,
            url: None,
            api_id: None,
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        // This run tells whether the previous heal worked.
        let settled = session.settle(&job, status == 0)?;
        if status == 0 {
            outcome = if number == 1 { "passed" } else { "healed" };
            let mut heal = Healing::default();
            if let Some(s) = settled {
                heal.outcome = s.outcome;
                heal.notes.push(s.note);
            }
            attempts.push(Attempt {
                attempt: number,
                exit_code: status,
                duration_ms,
                heal,
                backoff_secs: None,
            });
            keep_baseline(&runtime, &baseline_key, &log_path);
            break;
        }
        let baseline =
            crate::detect::baseline::get(runtime.db(), &baseline_key).unwrap_or_else(|e| {
                tracing::warn!("baseline unreadable: {e}");
                None
            });
        let mut refusals = Vec::new();
        if number >= args.max_attempts {
            refusals.push(format!("--max-attempts {} reached", args.max_attempts));
        }
        let backend_for = |_: &str, _: u32, backoff_secs: u64| {
            Ok(Arc::new(LocalBackend::new(backoff_secs)) as Arc<dyn CiBackend>)
        };
        let mut h = session
            .heal(
                Failure {
                    job: &job,
                    log: &log_path,
                    baseline,
                    workdir: Some(workdir.clone()),
                    wrapped: Some(Arc::new(Wrapped {
                        argv: args.command.clone(),
                        env: env.clone(),
                    })),
                    refusals,
                },
                &backend_for,
            )
            .await?;
        if let Some(category) = h.category {
            let _ = writeln!(
                err,
                "guard: {category} failure ({}, rule {}) on attempt {number}",
                h.failure_type.as_deref().unwrap_or("?"),
                h.rule.as_deref().unwrap_or("?")
            );
        }
        if let Some(summary) = &h.summary {
            let _ = writeln!(err, "guard: {summary}");
        }
        for note in &h.notes {
            let note = note.trim_end();
            // An annotation's title is the summary just printed: said once,
            // its body follows it.
            let body = h
                .summary
                .as_deref()
                .and_then(|s| note.strip_prefix(s))
                .filter(|rest| rest.is_empty() || rest.starts_with('\n'));
            match body {
                Some(body) => {
                    let body = body.trim_start_matches('\n');
                    if !body.is_empty() {
                        let _ = writeln!(err, "{body}");
                    }
                }
                None => {
                    let _ = writeln!(err, "guard: {note}");
                }
            }
        }
        if let Some(s) = settled {
            h.notes.insert(0, s.note);
        }
        last_plan = h.plan.take();
        if h.outcome == Outcome::Flaky {
            outcome = "flaky";
            flaky_tests.extend(h.flaky_tests.iter().cloned());
        }
        if args.dry_run {
            h.notes.push("dry run: nothing was done".into());
        }
        let rerun = h.rerun.take();
        let mut attempt = Attempt {
            attempt: number,
            exit_code: status,
            duration_ms,
            heal: h,
            backoff_secs: None,
        };
        let Some(rerun) = rerun else {
            attempts.push(attempt);
            break;
        };
        attempt.backoff_secs = Some(rerun.delay_secs);
        let _ = writeln!(
            err,
            "guard: re-running in {} s (attempt {} of at most {})",
            rerun.delay_secs,
            number + 1,
            args.max_attempts
        );
        attempts.push(attempt);
        env = rerun.env;
        tokio::time::sleep(Duration::from_secs(rerun.delay_secs)).await;
    }
    let exit = if outcome == "flaky" && !args.fail_on_flaky {
        0
    } else {
        status
    };
    let report = Report {
        command: args.command.clone(),
        outcome,
        exit_code: exit,
        dry_run: args.dry_run,
        attempts,
        flaky_tests,
        plan: last_plan,
    };
    let _ = writeln!(
        err,
        "guard: {outcome} after {} run(s); exit {exit}",
        report.attempts.len()
    );
    if args.dry_run
        && let Some(plan) = &report.plan
    {
        let _ = writeln!(err, "guard: plan (dry run):");
        for s in &plan.steps {
            let _ = writeln!(
                err,
                "  {:<24} {:<10} score {:.2}  {}",
                s.strategy,
                s.healer,
                s.score,
                s.blocked.as_deref().unwrap_or("would run")
            );
        }
    }
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing report {}", path.display()))?;
    }
    runtime.db().flush()?;
    super::let_go((session, runtime));
    Ok(exit.clamp(0, 255) as u8)
}

/// Keeps a passing run's templates as the baseline the next failure of the
/// same command is read against (bounded: bigger logs are not kept).
fn keep_baseline(runtime: &crate::runtime::Runtime, key: &str, log: &Path) {
    if std::fs::metadata(log).is_ok_and(|m| m.len() <= crate::detect::baseline::MAX_LOG_BYTES)
        && let Ok(bytes) = std::fs::read(log)
    {
        let t = crate::detect::baseline::of_log(&bytes, runtime.config().limits.max_line_bytes);
        if let Err(e) = crate::detect::baseline::put(runtime.db(), key, &t) {
            tracing::warn!("cannot keep the passing run as a baseline: {e}");
        }
    }
}

/// Runs the command, copying its output to `out`/`err` as it comes and to
/// `log` for diagnosis. Returns the exit status (128 + signal when killed).
async fn run_streaming(
    command: &[String],
    workdir: &Path,
    env: &[(String, String)],
    log: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let (program, args) = command.split_first().context("no command given")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(workdir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let mut log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut so = child.stdout.take().context("stdout pipe")?;
    let mut se = child.stderr.take().context("stderr pipe")?;
    let (mut b1, mut b2) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut open1, mut open2) = (true, true);
    while open1 || open2 {
        tokio::select! {
            n = so.read(&mut b1), if open1 => match n {
                Ok(0) | Err(_) => open1 = false,
                Ok(n) => { out.write_all(&b1[..n])?; out.flush()?; log_file.write_all(&b1[..n])?; }
            },
            n = se.read(&mut b2), if open2 => match n {
                Ok(0) | Err(_) => open2 = false,
                Ok(n) => { err.write_all(&b2[..n])?; err.flush()?; log_file.write_all(&b2[..n])?; }
            },
        }
    }
    let status = child.wait().await.context("waiting for the command")?;
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Ok(128 + sig);
        }
    }
    Ok(status.code().unwrap_or(1))
}

/// The commit checked out in `dir`, when it is a git work tree.
async fn git_head(dir: &Path) -> Option<String> {
    let out = tokio::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
