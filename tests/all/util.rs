//! Shared helpers: runtimes over temporary databases, and logs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use guard::config::{Config, Limits};
use guard::detect::{Analyzer, Report};
use guard::model::Job;
use guard::runtime::Runtime;
use guard::store::Store;

/// Limits that keep runaway-plugin tests quick.
pub fn quick_limits() -> Limits {
    Limits {
        cpu_ms: 300,
        call_timeout_ms: 5_000,
        memory_mib: 32,
        ..Limits::default()
    }
}

/// A compile cache shared by the tests of this process, so each component
/// is compiled once (the cache itself is tested in `sandbox`).
pub fn shared_cache() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .to_path_buf()
}

/// A runtime over a temporary database with the embedded plugins and any
/// extra component files.
pub async fn runtime_with(config: Config, extra: &[&str]) -> Arc<Runtime> {
    let mut rt = Runtime::new(
        Arc::new(config),
        Store::temporary().unwrap(),
        Some(shared_cache()),
    )
    .unwrap();
    let failures = rt.load_embedded().await;
    assert!(
        failures.is_empty(),
        "embedded plugins failed to load: {failures:?}"
    );
    for path in extra {
        rt.load_file(Path::new(path))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    Arc::new(rt)
}

/// Analyses `log` with `runtime`'s plugins.
pub async fn analyze(runtime: Arc<Runtime>, log: &str) -> Report {
    let (analyzer, errors) = Analyzer::new(runtime);
    assert!(
        errors.is_empty(),
        "standard rules must all compile: {errors:?}"
    );
    analyzer
        .analyze(log.as_bytes(), &Job::local("test.log"), &mut |_| {})
        .await
        .unwrap()
}

/// The example log kept in the repository.
pub fn npm_log() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/npm-enotfound.log"
    ))
    .unwrap()
}

/// Runs the CLI in-process; returns (exit code, stdout, stderr) with colours stripped.
pub async fn guard_cli(args: &[&str]) -> (u8, String, String) {
    let cli = guard::cli::parse_args(std::iter::once("guard").chain(args.iter().copied())).unwrap();
    let mut out = anstream::StripStream::new(Vec::new());
    let mut err = anstream::StripStream::new(Vec::new());
    let code = guard::cli::execute(cli, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out.into_inner()).unwrap(),
        String::from_utf8(err.into_inner()).unwrap(),
    )
}
