//! Runtime benchmarks: plugin instantiate-and-call, start-up with a warm and
//! a cold compile cache, and `guard detect`'s pipeline on a 1 MB log.
//!
//! Run with `cargo bench -p guard --bench runtime`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use guard::config::Config;
use guard::detect::Analyzer;
use guard::model::Job;
use guard::runtime::{PluginKind, Runtime};
use guard::store::Store;

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn runtime(cache: Option<std::path::PathBuf>) -> Runtime {
    let mut rt = Runtime::new(
        Arc::new(Config::default()),
        Store::temporary().expect("db"),
        cache,
    )
    .expect("runtime");
    let failures = rt.load_embedded().await;
    assert!(failures.is_empty(), "{failures:?}");
    rt
}

/// A 1 MB log of ordinary build output with one failure near the end.
fn log_1mb() -> String {
    let mut log = String::new();
    let mut i = 0;
    while log.len() < 1 << 20 {
        log.push_str(&format!("2024-05-01T10:00:{:02}.0000000Z   Compiling crate-{i} v0.{i}.0 (/home/runner/work/app/crates/crate-{i})\n", i % 60));
        i += 1;
    }
    log.push_str("npm ERR! code ENOTFOUND\n##[error]Process completed with exit code 1.\n");
    log
}

fn benches(c: &mut Criterion) {
    let tokio = tokio();
    let cache = tempfile::tempdir().expect("tempdir");
    let rt = Arc::new(tokio.block_on(runtime(Some(cache.path().to_path_buf()))));
    let detector = rt
        .plugins_of(PluginKind::Detector)
        .next()
        .expect("a detector")
        .clone();
    let job = Job::local("bench");

    c.bench_function("plugin/instantiate+scan(constructor,feed,finish)", |b| {
        b.to_async(&tokio).iter(|| async {
            let mut s = rt.start_scan(&detector, &job).await.expect("scan");
            s.feed(&rt, "collected 1 item\ntest passed\n", 1)
                .await
                .expect("feed");
            black_box(s.finish(&rt).await.expect("finish"));
        })
    });

    c.bench_function("startup/warm-cache (engine + embedded plugins)", |b| {
        b.to_async(&tokio)
            .iter(|| async { black_box(runtime(Some(cache.path().to_path_buf())).await) })
    });

    let mut cold = c.benchmark_group("startup");
    cold.sample_size(10);
    cold.bench_function("cold (compile every plugin)", |b| {
        b.to_async(&tokio)
            .iter(|| async { black_box(runtime(None).await) })
    });
    cold.finish();

    let log = log_1mb();
    let (analyzer, errors) = Analyzer::new(rt.clone());
    assert!(errors.is_empty());
    let mut g = c.benchmark_group("detect");
    g.throughput(criterion::Throughput::Bytes(log.len() as u64));
    g.bench_function("1MB log (normalise + rules + WASM detector)", |b| {
        b.to_async(&tokio).iter(|| async {
            black_box(
                analyzer
                    .analyze(log.as_bytes(), &job, &mut |_| {})
                    .await
                    .expect("analyze"),
            )
        })
    });
    g.finish();
}

criterion_group!(runtime_benches, benches);
criterion_main!(runtime_benches);
