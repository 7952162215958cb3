//! `guard exec [--max-attempts N] [--dry-run] [--report FILE] -- CMD ARGS…`:
//! wrap one CI step. The command's output streams through unchanged; on
//! failure guard diagnoses the log and heals with the same plugins and host
//! functions as the daemon, through the local backend (a re-run runs the
//! command again). The exit status is the final run's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::Global;
use crate::detect::Analyzer;
use crate::heal::planner::{self, Plan, StrategyCache, Target};
use crate::heal::{breaker, budget, stats};
use crate::model::{Evidence, Finding, Job, Platform};
use crate::runtime::healer::{Effect, HealOptions, HealOutcome};
use crate::runtime::state::{LocalActions, LocalRequest};

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
    /// Exit 0 when the only failures were tests that passed when re-run alone.
    #[arg(long)]
    flaky_ok: bool,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// One run of the command.
#[derive(Debug, Serialize)]
struct Attempt {
    attempt: u32,
    exit_code: i32,
    duration_ms: u64,
    category: Option<String>,
    failure_type: Option<String>,
    rule: Option<String>,
    evidence: Vec<Evidence>,
    strategy: Option<String>,
    healer: Option<String>,
    summary: Option<String>,
    actions: Vec<String>,
    backoff_secs: Option<u64>,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    command: Vec<String>,
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
    let logs = tempfile::tempdir().context("creating a directory for the step's log")?;
    let commit = git_head(&workdir).await.unwrap_or_else(|| "unknown".into());
    let target_of = |attempt: u32| Target {
        repository: workdir.display().to_string(),
        job: args.command.join(" "),
        commit: commit.clone(),
        attempt,
    };
    let mut cache = StrategyCache::default();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut flaky_tests: Vec<String> = Vec::new();
    let mut last_plan = None;
    let mut retries_done: u32 = 0;
    // The heal whose re-run is in progress: (breaker key, category, strategy, rule).
    let mut pending: Option<(String, crate::model::Category, String, String)> = None;
    let mut outcome = "failed";
    let mut status;
    let mut number = 0u32;
    loop {
        number += 1;
        let log_path = logs.path().join(format!("attempt-{number}.log"));
        let started = Instant::now();
        status = run_streaming(&args.command, &workdir, &env, &log_path, out, err).await?;
        let duration_ms = started.elapsed().as_millis() as u64;
        if let Some((key, category, strategy, rule)) = pending.take() {
            let worked = status == 0;
            breaker::record(runtime.db(), &key, worked)?;
            stats::record(runtime.db(), category, &strategy, worked)?;
            crate::learn::rule_stats::healed(runtime.db(), &rule, &strategy, worked)?;
        }
        let mut attempt = Attempt {
            attempt: number,
            exit_code: status,
            duration_ms,
            category: None,
            failure_type: None,
            rule: None,
            evidence: Vec::new(),
            strategy: None,
            healer: None,
            summary: None,
            actions: Vec::new(),
            backoff_secs: None,
            notes: Vec::new(),
        };
        let baseline_key = crate::detect::baseline::exec_key(
            &workdir.display().to_string(),
            &args.command.join(" "),
        );
        if status == 0 {
            outcome = if number == 1 { "passed" } else { "healed" };
            attempts.push(attempt);
            // This passing run is the baseline the next failure is read against.
            if std::fs::metadata(&log_path)
                .is_ok_and(|m| m.len() <= crate::detect::baseline::MAX_LOG_BYTES)
                && let Ok(bytes) = std::fs::read(&log_path)
            {
                let t =
                    crate::detect::baseline::of_log(&bytes, runtime.config().limits.max_line_bytes);
                if let Err(e) = crate::detect::baseline::put(runtime.db(), &baseline_key, &t) {
                    tracing::warn!("cannot keep the passing run as a baseline: {e}");
                }
            }
            break;
        }
        let baseline =
            crate::detect::baseline::get(runtime.db(), &baseline_key).unwrap_or_else(|e| {
                tracing::warn!("baseline unreadable: {e}");
                None
            });
        let job = Job {
            platform: Platform::Local,
            repository: workdir.display().to_string(),
            run_id: std::process::id().to_string(),
            job_id: "0".into(),
            job_name: args.command.join(" "),
            attempt: number,
            commit: Some(commit.clone()),
            branch: None,
            url: None,
            api_id: None,
        };
        let file = std::fs::File::open(&log_path)
            .with_context(|| format!("reading {}", log_path.display()))?;
        let report = analyzer
            .analyze_with(
                std::io::BufReader::new(file),
                &job,
                // The run failed: the verdict is never "no failure".
                crate::detect::Known {
                    baseline,
                    failed: true,
                },
                &mut |_| {},
            )
            .await?;
        let d = report.diagnosis;
        let Some(category) = d.category else {
            // Nothing explains it: remember its failure line as a candidate
            // template (guard patterns candidates).
            if let Ok(bytes) = std::fs::read(&log_path)
                && let Ok(Some(c)) = crate::learn::candidates::mine_log(
                    runtime.db(),
                    &args.command.join(" "),
                    &bytes,
                )
            {
                attempt.notes.push(format!(
                    "unexplained failure recorded as candidate {}",
                    c.id
                ));
            }
            attempt
                .notes
                .push("no known failure in the output: nothing to heal".into());
            attempts.push(attempt);
            break;
        };
        if let Some(rule) = &d.rule {
            crate::learn::rule_stats::fired(runtime.db(), rule)?;
        }
        attempt.category = Some(category.to_string());
        attempt.failure_type = d.failure_type.clone();
        attempt.rule = d.rule.clone();
        attempt.evidence = d.evidence.clone();
        let mut finding: Finding = match d.findings.first() {
            Some(r) => r.finding.clone(),
            None => {
                attempts.push(attempt);
                break;
            }
        };
        // Facts of agreeing findings (e.g. the failed tests' names from the
        // detector) travel with the primary finding.
        finding.facts = d.facts.clone();
        let mut plan = planner::plan(&runtime, &mut cache, &finding, &target_of(number)).await;
        if number >= args.max_attempts {
            for s in plan
                .steps
                .iter_mut()
                .filter(|s| s.retries && s.blocked.is_none())
            {
                s.blocked = Some(format!("--max-attempts {} reached", args.max_attempts));
            }
        }
        let _ = writeln!(
            err,
            "guard: {} failure ({}, rule {}) on attempt {number}",
            category,
            d.failure_type.as_deref().unwrap_or("?"),
            d.rule.as_deref().unwrap_or("?")
        );
        let mut rerun_requested: Option<(u32, Vec<(String, String)>)> = None;
        for step in plan.usable() {
            let Some(plugin) = runtime
                .plugins()
                .iter()
                .find(|p| p.id() == step.healer)
                .cloned()
            else {
                continue;
            };
            let local = Arc::new(LocalActions::default());
            // The host enforces the re-run rules on what the healer does,
            // not on what its strategy declared.
            let mut refused = planner::rerun_blocked(
                &runtime,
                finding.category,
                &target_of(number),
                &step.strategy,
            );
            if number >= args.max_attempts {
                refused.push(format!("--max-attempts {} reached", args.max_attempts));
            }
            let options = HealOptions {
                dry_run: args.dry_run,
                workdir: Some(workdir.clone()),
                local: Some(local.clone()),
                backend: None,
                rerun_refused: (!refused.is_empty()).then(|| refused.join("; ")),
            };
            match runtime
                .heal(&plugin, &step.strategy, &job, &finding, &options)
                .await
            {
                Err(e) => attempt.notes.push(format!("{}: {e}", step.strategy)),
                Ok(HealOutcome::Declined(why)) => attempt
                    .notes
                    .push(format!("{} declined: {why}", step.strategy)),
                Ok(HealOutcome::Done {
                    summary,
                    actions,
                    effect,
                    facts,
                }) => {
                    attempt.strategy = Some(step.strategy.clone());
                    attempt.healer = Some(step.healer.clone());
                    attempt.summary = Some(summary.clone());
                    attempt.actions = actions;
                    let _ = writeln!(err, "guard: {summary}");
                    for r in local.take() {
                        match r {
                            LocalRequest::Rerun { delay_secs, env } => {
                                rerun_requested = Some((delay_secs, env))
                            }
                            LocalRequest::Annotate { title, body } => {
                                let _ = writeln!(err, "guard: {title}\n{}", body.trim_end());
                            }
                            LocalRequest::Cancel => rerun_requested = None,
                        }
                    }
                    match effect {
                        Effect::Rerun => {}
                        Effect::PassedInIsolation => {
                            flaky_tests.extend(
                                facts
                                    .iter()
                                    .filter(|(k, _)| k == "flaky-test")
                                    .map(|(_, v)| v.clone()),
                            );
                            stats::record(runtime.db(), category, &step.strategy, true)?;
                            outcome = "flaky";
                        }
                        Effect::FailedInIsolation => {
                            stats::record(runtime.db(), category, &step.strategy, false)?;
                        }
                        Effect::Reported => {}
                    }
                    break;
                }
            }
        }
        last_plan = Some(plan);
        if args.dry_run {
            attempt.notes.push("dry run: nothing was done".into());
            attempts.push(attempt);
            break;
        }
        let Some((delay, extra_env)) = rerun_requested.filter(|_| outcome != "flaky") else {
            attempts.push(attempt);
            break;
        };
        let t = target_of(number);
        if let Some(why) = budget::check(
            runtime.db(),
            &runtime.config().heal,
            &t.repository,
            &t.job,
            &t.commit,
        )? {
            attempt.notes.push(why);
            attempts.push(attempt);
            break;
        }
        budget::spend(runtime.db(), &t.repository, &t.job, &t.commit)?;
        let base = runtime.config().heal.backoff_base_secs;
        let backoff = base
            .saturating_mul(1u64 << retries_done.min(10))
            .max(u64::from(delay));
        retries_done += 1;
        attempt.backoff_secs = Some(backoff);
        let strategy = attempt.strategy.clone().unwrap_or_default();
        let rule = attempt.rule.clone().unwrap_or_default();
        pending = Some((
            breaker::key(&t.repository, &t.job, &strategy),
            category,
            strategy,
            rule,
        ));
        let _ = writeln!(
            err,
            "guard: re-running in {backoff} s (attempt {} of at most {})",
            number + 1,
            args.max_attempts
        );
        attempts.push(attempt);
        env = extra_env;
        tokio::time::sleep(Duration::from_secs(backoff)).await;
    }
    let exit = if outcome == "flaky" && args.flaky_ok {
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
    Ok(exit.clamp(0, 255) as u8)
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
