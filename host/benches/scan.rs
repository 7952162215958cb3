//! Scan throughput: the full standard rule set over a 100 MB synthetic CI
//! log (build, test and download output with GitHub timestamps, and a
//! failure near the end), through the native scanner alone and through the
//! whole detect pipeline (normalisation, scanner, WASM detector).
//!
//! The log is also written to `target/scan-bench.log` so `scripts/bench-rg.sh`
//! can time `rg` with the same patterns on the same file.
//!
//! Run with `cargo bench -p guard --bench scan`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guard::config::Config;
use guard::detect::Analyzer;
use guard::detect::scanner::BlockLine;
use guard::model::Job;
use guard::runtime::Runtime;
use guard::store::Store;

const SIZE: usize = 100 << 20;

/// Deterministic, varied, realistic lines.
fn synthetic_log() -> String {
    let templates = [
        "   Compiling serde_derive v1.0.{n} (/home/runner/.cargo/registry/src/index.crates.io/serde_derive-1.0.{n})",
        "[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/org/example/lib-{n}/1.{n}/lib-{n}-1.{n}.jar ({n} kB at 1.2 MB/s)",
        "tests/test_module_{n}.py::test_case_{n} PASSED                                     [ {n}%]",
        "npm WARN deprecated package-{n}@2.0.{n}: this library is no longer supported",
        "[INFO] Tests run: {n}, Failures: 0, Errors: 0, Skipped: 0, Time elapsed: 0.{n} s - in com.example.Suite{n}Test",
        "ok      github.com/example/project/pkg/module{n}    0.{n}s",
        "  ✓ renders component {n} correctly ({n} ms)",
        "Step {n}/42 : RUN apt-get update && apt-get install -y package-{n}",
        "\u{1b}[32m+\u{1b}[0m added dependency module-{n} in {n}ms",
    ];
    let mut log = String::with_capacity(SIZE + 4096);
    let mut i: usize = 0;
    while log.len() < SIZE {
        let t = templates[(i * 7 + i / 13) % templates.len()];
        log.push_str(&format!(
            "2024-05-01T10:{:02}:{:02}.{:07}Z ",
            (i / 60) % 60,
            i % 60,
            i % 9_999_999
        ));
        log.push_str(&t.replace("{n}", &(i % 997).to_string()));
        log.push('\n');
        i += 1;
    }
    log.push_str("2024-05-01T11:00:00.0000000Z npm ERR! code ENOTFOUND\n");
    log.push_str("2024-05-01T11:00:00.0000000Z ##[error]Process completed with exit code 1.\n");
    log
}

fn benches(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let rt = tokio.block_on(async {
        let mut rt = Runtime::new(
            Arc::new(Config::default()),
            Store::temporary().expect("db"),
            None,
        )
        .expect("runtime");
        rt.load_embedded().await;
        Arc::new(rt)
    });
    let (analyzer, errors) = Analyzer::new(rt);
    assert!(errors.is_empty(), "{errors:?}");
    let log = synthetic_log();
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scan-bench.log");
    if let Err(e) = std::fs::write(&target, &log) {
        eprintln!("cannot write {}: {e}", target.display());
    }

    // The scanner alone, on blocks of already-normalised lines.
    let mut blocks: Vec<(String, Vec<BlockLine>)> = Vec::new();
    let (mut block, mut lines, mut n) = (String::new(), Vec::new(), 0u32);
    for line in log.lines() {
        n += 1;
        let mut text = String::new();
        guard::detect::normalize::normalize_into(line.as_bytes(), 8192, &mut text);
        if !lines.is_empty() {
            block.push('\n');
        }
        lines.push(BlockLine {
            number: n,
            start: block.len(),
            error_marker: false,
        });
        block.push_str(&text);
        if block.len() >= 256 * 1024 {
            blocks.push((std::mem::take(&mut block), std::mem::take(&mut lines)));
        }
    }
    blocks.push((block, lines));

    let mut g = c.benchmark_group("scan-100MB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(log.len() as u64));
    g.bench_function(
        format!("native scanner, {} rules", analyzer.rules().len()),
        |b| {
            b.iter(|| {
                let mut scan = analyzer.rules().scan();
                for (block, lines) in &blocks {
                    scan.block(block, lines);
                }
                black_box(scan.finish())
            })
        },
    );
    let job = Job::local("bench");
    g.bench_function(
        "detect pipeline (read, normalise, scan, WASM detector)",
        |b| {
            b.to_async(&tokio).iter(|| async {
                black_box(
                    analyzer
                        .analyze(log.as_bytes(), &job, &mut |_| {})
                        .await
                        .expect("analyze"),
                )
            })
        },
    );
    g.finish();
}

criterion_group!(scan_benches, benches);
criterion_main!(scan_benches);
