//! The command line, run in-process.

use crate::guests;
use crate::util::guard_cli;

fn example() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/npm-enotfound.log").to_string()
}

#[tokio::test]
async fn detect_json_prints_one_object_per_file() {
    let data = tempfile::tempdir().unwrap();
    let clean = data.path().join("clean.log");
    std::fs::write(&clean, "all good\n").unwrap();
    let d = data.path().to_str().unwrap();
    let (code, out, err) = guard_cli(&[
        "--data",
        d,
        "detect",
        "--json",
        &example(),
        clean.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["category"], "network");
    assert_eq!(lines[0]["failure_type"], "dns-resolution");
    assert_eq!(lines[0]["rule"], "npm.enotfound");
    assert_eq!(lines[0]["evidence"][0]["line"], 4);
    assert_eq!(lines[0]["remedies"][0], "retry-with-backoff");
    assert!(lines[0]["confidence"].as_f64().unwrap() > 0.5);
    assert_eq!(lines[1]["category"], serde_json::Value::Null);
}

#[tokio::test]
async fn detect_names_a_missing_file_and_exits_2_after_the_others() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let (code, out, err) =
        guard_cli(&["--data", d, "detect", "/nonexistent/ci.log", &example()]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/ci.log") && err.contains("cannot open"),
        "{err}"
    );
    assert!(
        out.starts_with("network ") && out.contains(":4  npm ERR! code ENOTFOUND"),
        "the other file is still analysed: {out}"
    );
}

#[tokio::test]
async fn plugins_check_reports_world_requests_and_grants() {
    let (code, out, err) = guard_cli(&["plugins", "check", "--json", guests::GUEST_GREEDY]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["world"], "detector-plugin");
    assert_eq!(v["wit_version"], "0.1.2");
    assert_eq!(
        v["requested"],
        serde_json::json!(["ci", "exec", "fs", "http", "kv", "log"])
    );
    assert_eq!(
        v["not_granted"],
        serde_json::json!(["ci", "exec", "fs", "http"])
    );

    let (code, out, _) = guard_cli(&["plugins", "check", guests::PACK_STD]).await;
    assert_eq!(code, 0);
    assert!(out.contains("world:        pattern-pack"), "{out}");
}

#[tokio::test]
async fn plugins_check_refuses_what_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.wasm");
    std::fs::write(&f, "hello").unwrap();
    let (code, _, err) = guard_cli(&["plugins", "check", f.to_str().unwrap()]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("notes.wasm") && err.contains("not a loadable WebAssembly component"),
        "{err}"
    );
}

#[tokio::test]
async fn plugins_list_shows_the_embedded_standard_plugins() {
    let data = tempfile::tempdir().unwrap();
    let (code, out, _) = guard_cli(&[
        "--data",
        data.path().to_str().unwrap(),
        "plugins",
        "list",
        "--json",
    ])
    .await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["pack-std", "detect-tests", "heal-std"]);
    assert!(v[0]["rules"].as_u64().unwrap() >= 100);
}

#[tokio::test]
async fn config_template_is_valid_configuration() {
    let (code, out, _) = guard_cli(&["config", "template"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("[plugins.my-healer]") && out.contains("[limits]"));
}

#[tokio::test]
async fn shell_completions_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = guard_cli(&["completions", shell]).await;
        assert_eq!(code, 0);
        for sub in ["run", "detect", "exec", "learn", "patterns", "status"] {
            assert!(out.contains(sub), "{shell} completions lack {sub}");
        }
    }
    assert!(guard::cli::parse_args(["guard", "completions", "tcsh"]).is_err());
}

/// Layers run one way: `cli` drives the library, and no library module
/// (daemon, server, detect, heal, …) imports `cli`. Logic two drivers need
/// lives in the library once.
#[test]
fn no_library_module_imports_cli() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../host/src"));
    let mut files = Vec::new();
    walk(&src, &mut files);
    assert!(files.len() > 30, "host/src has {} files", files.len());
    let offenders: Vec<String> = files
        .iter()
        .filter(|p| {
            let rel = p.strip_prefix(&src).unwrap();
            !(rel.starts_with("cli")
                || rel == std::path::Path::new("cli.rs")
                || rel == std::path::Path::new("main.rs"))
        })
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.contains("crate::cli::") || text.contains("use crate::cli")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "library modules importing cli: {offenders:?}"
    );
}
