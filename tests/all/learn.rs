//! Learning a rule, sharing it as a pattern pack, and loading the pack
//! elsewhere — the round trip a team goes through.

use crate::util::guard_cli;

const LOG_A: &str = "2024-05-01T10:00:00.0000000Z Run ./deploy.sh\n\
2024-05-01T10:00:01.0000000Z Uploading bundle 20240501-1 to vault\n\
2024-05-01T10:00:02.0000000Z VAULTX-9: bundle 3f9a2c81d4 rejected by vault node vn-17 at /srv/vault/store/ab12 (quota 4096 MiB)\n\
2024-05-01T10:00:02.0000000Z ##[error]Process completed with exit code 3.\n";

const LOG_B: &str = "2025-01-09T08:30:00.0000000Z Run ./deploy.sh --fast\n\
2025-01-09T08:30:05.0000000Z VAULTX-12: bundle 77aa00ff11 rejected by vault node vn-3 at /data/v/x (quota 128 MiB)\n\
2025-01-09T08:30:05.0000000Z ##[error]Process completed with exit code 3.\n";

fn detect_json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.lines().next().unwrap()).unwrap()
}

#[tokio::test]
async fn learn_detect_export_build_a_pack_and_detect_with_it_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    std::fs::write(&a, LOG_A).unwrap();
    std::fs::write(&b, LOG_B).unwrap();
    let passing = dir.path().join("passing");
    std::fs::create_dir(&passing).unwrap();
    std::fs::write(
        passing.join("ok.log"),
        "VAULTX-2: bundle 1234abcd accepted by vault node vn-1\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();

    // No standard rule knows this failure.
    let (_, out, _) = guard_cli(&["--data", d, "detect", "--json", b.to_str().unwrap()]).await;
    assert_ne!(detect_json(&out)["rule"], "learned.vault-quota");

    let (code, out, err) = guard_cli(&[
        "--data",
        d,
        "learn",
        "--log",
        a.to_str().unwrap(),
        "--type",
        "vault-quota",
        "--category",
        "resource",
        "--remedy",
        "diagnose",
        "--negatives",
        passing.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("from line 3"),
        "the best candidate line is found: {out}"
    );

    // A different log: other numbers, ids and paths.
    let (_, out, _) = guard_cli(&["--data", d, "detect", "--json", b.to_str().unwrap()]).await;
    let v = detect_json(&out);
    assert_eq!(v["rule"], "learned.vault-quota", "{v}");
    assert_eq!(v["category"], "resource");
    assert_eq!(v["evidence"][0]["line"], 2);

    let (code, toml_text, _) =
        guard_cli(&["--data", d, "patterns", "export", "--id", "team-vault"]).await;
    assert_eq!(code, 0);
    let rules_file = dir.path().join("team.toml");
    std::fs::write(&rules_file, &toml_text).unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let pack = plugins.join("team-vault.wasm");
    let (code, out, err) = guard_cli(&[
        "pack",
        "build",
        rules_file.to_str().unwrap(),
        "-o",
        pack.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("with 1 rules"), "{out}");

    let (code, out, _) = guard_cli(&["pack", "inspect", pack.to_str().unwrap()]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("team-vault") && out.contains("learned.vault-quota"),
        "{out}"
    );

    // A fresh data directory knows nothing learned; the pack brings the rule.
    let fresh = dir.path().join("fresh");
    let (code, out, err) = guard_cli(&[
        "--data",
        fresh.to_str().unwrap(),
        "detect",
        "--json",
        "--plugins",
        plugins.to_str().unwrap(),
        b.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let v = detect_json(&out);
    assert_eq!(v["rule"], "learned.vault-quota", "{v}");
    assert_eq!(v["source"], "team-vault");
}

#[tokio::test]
async fn a_rule_matching_a_passing_log_is_refused_and_bad_imports_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    std::fs::write(&a, LOG_A).unwrap();
    let passing = dir.path().join("ok.log");
    std::fs::write(&passing, "VAULTX-1: bundle 0a1b2c3d4e rejected by vault node vn-2 at /x/y (quota 1 MiB)\nFinished: SUCCESS\n").unwrap();
    let d = dir.path().join("data");
    let (code, _, err) = guard_cli(&[
        "--data",
        d.to_str().unwrap(),
        "learn",
        "--log",
        a.to_str().unwrap(),
        "--line",
        "3",
        "--type",
        "t",
        "--category",
        "resource",
        "--negatives",
        passing.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("also matches the passing log"), "{err}");

    let file = dir.path().join("r.toml");
    std::fs::write(&file, "[pack]\nid = \"x\"\n\n[[rule]]\nid = \"good\"\ncategory = \"network\"\nfailure_type = \"t\"\npattern = 'GOOD'\nconfidence = 0.5\n\n[[rule]]\nid = \"bad\"\ncategory = \"network\"\nfailure_type = \"t\"\npattern = '(unclosed'\nconfidence = 0.5\n").unwrap();
    let (code, out, err) = guard_cli(&[
        "--data",
        d.to_str().unwrap(),
        "patterns",
        "import",
        file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1);
    assert!(
        out.contains("imported good") && out.contains("1 imported, 1 refused"),
        "{out}"
    );
    assert!(err.contains("refused bad"), "{err}");
    let (code, out, _) =
        guard_cli(&["--data", d.to_str().unwrap(), "patterns", "remove", "good"]).await;
    assert_eq!((code, out.trim()), (0, "removed good"));
}

#[tokio::test]
async fn unsigned_or_badly_signed_packs_are_refused_where_signatures_are_required() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("r.toml");
    std::fs::write(&rules, "[pack]\nid = \"signed-pack\"\n\n[[rule]]\nid = \"s.one\"\ncategory = \"network\"\nfailure_type = \"t\"\npattern = 'SIGNED-FAILURE \\d+'\nconfidence = 0.9\n").unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let pack = plugins.join("p.wasm");
    assert_eq!(
        guard_cli(&[
            "pack",
            "build",
            rules.to_str().unwrap(),
            "-o",
            pack.to_str().unwrap()
        ])
        .await
        .0,
        0
    );
    let key = dir.path().join("key");
    let (_, out, _) = guard_cli(&["pack", "keygen", "--out", key.to_str().unwrap()]).await;
    let public = out
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .to_string();
    let config = dir.path().join("g.toml");
    std::fs::write(
        &config,
        format!("[packs]\nrequire_signatures = true\ntrusted_keys = [\"{public}\"]\n"),
    )
    .unwrap();
    let log = dir.path().join("x.log");
    std::fs::write(&log, "SIGNED-FAILURE 42\n").unwrap();
    let data = dir.path().join("data");
    let args: Vec<String> = [
        "--data",
        data.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "plugins",
        "list",
        "--plugins",
        plugins.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let detect = || async {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        guard_cli(&refs).await
    };

    let (_, out, err) = detect().await;
    assert!(
        !out.contains("signed-pack") && err.contains("unsigned"),
        "{out}\n{err}"
    );
    assert_eq!(
        guard_cli(&[
            "pack",
            "sign",
            pack.to_str().unwrap(),
            "--key",
            key.to_str().unwrap()
        ])
        .await
        .0,
        0
    );
    let (_, out, err) = detect().await;
    assert!(out.contains("signed-pack"), "{out}\n{err}");
    // Any change to the file breaks the signature.
    let mut bytes = std::fs::read(&pack).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    let (_, out, err) = detect().await;
    assert!(
        !out.contains("signed-pack") && err.contains("bad signature"),
        "{out}\n{err}"
    );
    // Bytes handed to the runtime directly meet the same admission: the
    // signature is checked on the bytes loaded, before any of them runs.
    let cfg = guard::config::Config::load(&config).unwrap();
    let mut rt = guard::runtime::Runtime::new(
        std::sync::Arc::new(cfg),
        guard::store::Store::temporary().unwrap(),
        None,
    )
    .unwrap();
    let tampered = std::fs::read(&pack).unwrap();
    let r = rt
        .add(
            &tampered,
            guard::runtime::PluginSource::File(pack.clone()),
            "p.wasm",
        )
        .await;
    assert!(
        matches!(r, Err(guard::runtime::RuntimeError::Signature(_))),
        "{r:?}"
    );
    assert!(rt.plugins().is_empty());
}

/// One log of an unknown failure kind `kind`, varied by `n`.
fn unknown_failure(kind: usize, n: usize) -> String {
    let hex = format!("{:x}", 0x9e37_79b9_u64.wrapping_mul(n as u64 + 7));
    let line = match kind {
        0 => format!(
            "QUEUE-LOCK: worker w-{n} unable to take lease {hex} on /srv/jobs/{n}/lock after {}s",
            n * 3 + 1
        ),
        1 => format!(
            "LICENSEd: seat request for user-{n} denied by server lic{}.corp (pool {hex})",
            n % 5
        ),
        _ => format!(
            "artifact-sync fatal: mirror https://m{n}.example.org/repo returned checksum {hex} for pkg-{n}-1.{n}.0.tar"
        ),
    };
    format!(
        "2024-05-{:02}T10:{:02}:00.0000000Z Run ./ci.sh\n2024-05-{:02}T10:{:02}:01.0000000Z step {n} of 9 started\n2024-05-{:02}T10:{:02}:02.0000000Z {line}\n",
        n % 28 + 1,
        n % 60,
        n % 28 + 1,
        n % 60,
        n % 28 + 1,
        n % 60
    )
}

#[tokio::test]
async fn mining_groups_fifty_unknown_failures_into_three_templates() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for n in 0..50 {
        let kind = if n < 20 {
            0
        } else if n < 37 {
            1
        } else {
            2
        };
        let p = dir.path().join(format!("job-{n}.log"));
        std::fs::write(&p, unknown_failure(kind, n)).unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let mut args = vec!["--data", d, "patterns", "mine"];
    args.extend(paths.iter().map(String::as_str));
    let (code, out, err) = guard_cli(&args).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("50 mined, 0 already explained"), "{out}");

    let (_, out, _) = guard_cli(&["--data", d, "patterns", "candidates", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let list = v.as_array().unwrap();
    let counts: Vec<u64> = list.iter().map(|c| c["count"].as_u64().unwrap()).collect();
    assert_eq!(counts, [20, 17, 13], "{out}");
    let lease = list
        .iter()
        .find(|c| c["tokens"][0] == "QUEUE-LOCK:")
        .unwrap();
    assert_eq!(
        lease["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| *t == "<*>")
            .count(),
        4,
        "{lease}"
    );

    // Promote one: it detects a new occurrence at once.
    let id = lease["id"].as_str().unwrap();
    let (code, _, err) = guard_cli(&[
        "--data",
        d,
        "patterns",
        "promote",
        id,
        "--type",
        "lease-contention",
        "--category",
        "resource",
        "--remedy",
        "retry-with-backoff",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let fresh = dir.path().join("new.log");
    std::fs::write(&fresh, unknown_failure(0, 977)).unwrap();
    let (_, out, _) = guard_cli(&["--data", d, "detect", "--json", fresh.to_str().unwrap()]).await;
    let v = detect_json(&out);
    assert_eq!(v["rule"], "learned.lease-contention", "{v}");
    assert_eq!(v["evidence"][0]["line"], 3);
    let (_, out, _) = guard_cli(&["--data", d, "patterns", "candidates", "--json"]).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2,
        "a promoted candidate leaves the list"
    );
}
