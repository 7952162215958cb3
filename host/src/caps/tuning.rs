//! The environment a healer may give a re-run (`ci.rerun-job-with-env`):
//! tuning knobs of common tools, each with the values it is for. A name
//! on the list is not enough — `MAKEFLAGS=--eval=…`, `NODE_OPTIONS=--import=…`,
//! `JAVA_TOOL_OPTIONS=-XX:OnOutOfMemoryError=…` or `GOFLAGS=-toolexec=…`
//! would turn a re-run grant into code execution — so every value is checked
//! against what its variable is for: counts, sizes and a few fixed switches.

/// The variables a healer may set, with what their values may be.
pub const TUNING_ENV: &[(&str, &str)] = &[
    (
        "NODE_OPTIONS",
        "--max-old-space-size=MiB, --max-semi-space-size=MiB, --stack-size=N",
    ),
    (
        "MAVEN_OPTS",
        "-Xmx/-Xms/-Xss SIZE, -XX:MaxMetaspaceSize=SIZE, -XX:MaxRAMPercentage=N, -XX:ActiveProcessorCount=N, -XX:+UseSerialGC/ParallelGC/G1GC",
    ),
    (
        "GRADLE_OPTS",
        "as MAVEN_OPTS, and -Dorg.gradle.workers.max=N, -Dorg.gradle.parallel|daemon=true|false",
    ),
    ("JAVA_TOOL_OPTIONS", "as MAVEN_OPTS"),
    ("CARGO_BUILD_JOBS", "a count"),
    ("MAKEFLAGS", "-jN, --jobs=N, -lN, --load-average=N"),
    ("CMAKE_BUILD_PARALLEL_LEVEL", "a count"),
    ("GOMAXPROCS", "a count"),
    ("GOFLAGS", "-p=N"),
    ("PYTEST_XDIST_AUTO_NUM_WORKERS", "a count"),
    ("JEST_WORKERS", "a count"),
    ("RUST_TEST_THREADS", "a count"),
    ("RUST_MIN_STACK", "bytes, at most 1 GiB"),
];

/// Whether `name=value` is a tuning setting guard lets a healer make; the
/// error says what the variable accepts.
pub fn check(name: &str, value: &str) -> Result<(), String> {
    let Some((_, accepts)) = TUNING_ENV.iter().find(|(n, _)| *n == name) else {
        return Err(format!(
            "{name} is not a tuning variable guard lets healers set (allowed: {})",
            TUNING_ENV
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let ok = match name {
        "NODE_OPTIONS" => tokens(value, node_option),
        "MAVEN_OPTS" | "JAVA_TOOL_OPTIONS" => tokens(value, jvm_option),
        "GRADLE_OPTS" => tokens(value, |t| jvm_option(t) || gradle_property(t)),
        "MAKEFLAGS" => tokens(value, make_flag),
        "GOFLAGS" => tokens(value, |t| t.strip_prefix("-p=").is_some_and(count)),
        "RUST_MIN_STACK" => value
            .parse::<u64>()
            .is_ok_and(|n| (1..=1 << 30).contains(&n)),
        _ => count(value),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name}={value:?} is refused: {name} may only carry {accepts}"
        ))
    }
}

/// Every whitespace-separated token passes `f` (and there is at least one).
fn tokens(value: &str, f: impl Fn(&str) -> bool) -> bool {
    let mut any = false;
    for t in value.split_ascii_whitespace() {
        if !f(t) {
            return false;
        }
        any = true;
    }
    any
}

/// A positive count of workers, jobs or threads.
fn count(s: &str) -> bool {
    s.len() <= 5
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u32>().is_ok_and(|n| (1..=4096).contains(&n))
}

/// A JVM size: digits with an optional k/m/g suffix.
fn size(s: &str) -> bool {
    let digits = s.strip_suffix(['k', 'K', 'm', 'M', 'g', 'G']).unwrap_or(s);
    !digits.is_empty() && digits.len() <= 12 && digits.bytes().all(|b| b.is_ascii_digit())
}

fn node_option(t: &str) -> bool {
    [
        "--max-old-space-size=",
        "--max-semi-space-size=",
        "--stack-size=",
    ]
    .iter()
    .any(|p| {
        t.strip_prefix(p)
            .is_some_and(|n| n.len() <= 7 && n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty())
    })
}

fn jvm_option(t: &str) -> bool {
    for p in [
        "-Xmx",
        "-Xms",
        "-Xss",
        "-XX:MaxMetaspaceSize=",
        "-XX:ReservedCodeCacheSize=",
    ] {
        if let Some(v) = t.strip_prefix(p) {
            return size(v);
        }
    }
    if let Some(v) = t.strip_prefix("-XX:MaxRAMPercentage=") {
        return v.parse::<f32>().is_ok_and(|p| (1.0..=100.0).contains(&p)) && v.len() <= 6;
    }
    if let Some(v) = t.strip_prefix("-XX:ActiveProcessorCount=") {
        return count(v);
    }
    matches!(
        t,
        "-XX:+UseSerialGC" | "-XX:+UseParallelGC" | "-XX:+UseG1GC" | "-XX:TieredStopAtLevel=1"
    )
}

fn gradle_property(t: &str) -> bool {
    if let Some(v) = t.strip_prefix("-Dorg.gradle.workers.max=") {
        return count(v);
    }
    matches!(
        t,
        "-Dorg.gradle.parallel=true"
            | "-Dorg.gradle.parallel=false"
            | "-Dorg.gradle.daemon=true"
            | "-Dorg.gradle.daemon=false"
    )
}

fn make_flag(t: &str) -> bool {
    for p in ["-j", "--jobs=", "-l", "--load-average="] {
        if let Some(v) = t.strip_prefix(p) {
            return count(v);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn tuning_values_pass() {
        for (k, v) in [
            ("NODE_OPTIONS", "--max-old-space-size=4096"),
            ("MAVEN_OPTS", "-Xmx2g -XX:+UseSerialGC"),
            (
                "GRADLE_OPTS",
                "-Xmx1536m -Dorg.gradle.workers.max=2 -Dorg.gradle.daemon=false",
            ),
            ("JAVA_TOOL_OPTIONS", "-XX:MaxRAMPercentage=75"),
            ("MAKEFLAGS", "-j2"),
            ("GOFLAGS", "-p=2"),
            ("CARGO_BUILD_JOBS", "2"),
            ("RUST_MIN_STACK", "8388608"),
        ] {
            assert_eq!(check(k, v), Ok(()), "{k}={v}");
        }
    }

    #[test]
    fn code_bearing_values_are_refused() {
        for (k, v) in [
            ("MAKEFLAGS", "--eval=$(shell touch pwned)"),
            ("MAKEFLAGS", "-j2 --eval=x"),
            (
                "NODE_OPTIONS",
                "--import=data:text/javascript,process.exit()",
            ),
            ("NODE_OPTIONS", "--require ./evil.js"),
            (
                "NODE_OPTIONS",
                "--max-old-space-size=4096 --inspect=0.0.0.0",
            ),
            ("JAVA_TOOL_OPTIONS", "-XX:OnOutOfMemoryError=touch pwned"),
            ("JAVA_TOOL_OPTIONS", "-javaagent:/tmp/a.jar"),
            ("MAVEN_OPTS", "-Dexec.executable=sh"),
            ("GRADLE_OPTS", "-Dorg.gradle.jvmargs=-javaagent:x"),
            ("GOFLAGS", "-toolexec=/tmp/x"),
            ("GOFLAGS", "-exec=sh"),
            ("CARGO_BUILD_JOBS", "2; touch pwned"),
            ("CARGO_BUILD_JOBS", "0"),
            ("RUST_MIN_STACK", "99999999999999"),
            ("NODE_OPTIONS", ""),
            ("LD_PRELOAD", "/tmp/x.so"),
        ] {
            assert!(check(k, v).is_err(), "{k}={v} must be refused");
        }
    }
}
