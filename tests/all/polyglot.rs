//! Plugins in other languages, built with their own toolchains and run
//! through the real host: a Python detector (componentize-py) and a
//! JavaScript healer (componentize-js).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::util::guard_cli;

/// Builds both examples once into a directory of their own.
fn examples() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for example in ["python", "js"] {
            let script = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/examples"))
                .join(example)
                .join("build.sh");
            let out = Command::new(&script)
                .arg(dir.path())
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
            assert!(
                out.status.success(),
                "{} failed:\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
    .path()
    .to_path_buf()
}

fn plugin_dir(file: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(examples().join(file), dir.path().join(file)).unwrap();
    dir
}

#[tokio::test]
async fn the_python_detector_finds_tracebacks_through_the_host() {
    let plugins = plugin_dir("py-traceback.wasm");
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("job.log");
    std::fs::write(&log, "Run python deploy.py\nTraceback (most recent call last):\n  File \"/app/deploy.py\", line 12, in <module>\n    import boto3\nModuleNotFoundError: No module named 'boto3'\n").unwrap();
    let data = work.path().join("data");
    let (code, out, err) = guard_cli(&[
        "--data",
        data.to_str().unwrap(),
        "plugins",
        "check",
        "--json",
        plugins.path().join("py-traceback.wasm").to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["world"], "detector-plugin");
    assert_eq!(v["id"], "py-traceback");

    let (code, out, err) = guard_cli(&[
        "--data",
        data.to_str().unwrap(),
        "detect",
        "--json",
        "--plugins",
        plugins.path().to_str().unwrap(),
        log.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["category"], "dependency");
    assert_eq!(v["plugin_errors"], serde_json::json!([]));
    let facts = v["facts"].to_string();
    assert!(
        facts.contains(r#"["exception","ModuleNotFoundError"]"#)
            && facts.contains(r#"["frame","/app/deploy.py:12"]"#),
        "the Python detector's facts: {facts}"
    );
}

#[tokio::test]
async fn the_js_healer_heals_through_the_host_and_its_calls_are_grant_checked() {
    let plugins = plugin_dir("js-diagnose.wasm");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let script = "echo 'src/app.ts(3,7): error TS2322: Type string is not assignable to type number.' >&2; exit 2";
    let run = |config: Option<PathBuf>| {
        let (data, plugins) = (data.clone(), plugins.path().to_path_buf());
        let rep = work.path().join("r.json");
        async move {
            let mut args = vec!["--data".to_string(), data.to_str().unwrap().into()];
            if let Some(c) = &config {
                args.extend(["--config".into(), c.to_str().unwrap().into()]);
            }
            args.extend(
                [
                    "exec",
                    "--plugins",
                    plugins.to_str().unwrap(),
                    "--report",
                    rep.to_str().unwrap(),
                    "--",
                    "sh",
                    "-c",
                    script,
                ]
                .map(String::from),
            );
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, _, err) = guard_cli(&refs).await;
            (
                code,
                err,
                serde_json::from_slice::<serde_json::Value>(&std::fs::read(&rep).unwrap()).unwrap(),
            )
        }
    };

    // Not granted ci.annotate: the healer runs, the host refuses the call, the report says so.
    let (code, _, r) = run(None).await;
    assert_eq!(code, 2);
    let a = &r["attempts"][0];
    assert_eq!(
        a["healer"], "js-diagnose",
        "a --plugins healer takes over its strategy: {r:#}"
    );
    assert_eq!(a["strategy"], "diagnose");
    assert!(
        a["actions"][0].as_str().unwrap().starts_with(
            "annotation refused (denied: plugin js-diagnose is not granted `ci.annotate`"
        ),
        "{a}"
    );
    let db = guard::store::Store::open(&data.join("db")).unwrap();
    assert!(
        db.audit_records(50)
            .unwrap()
            .iter()
            .any(|x| x.plugin == "js-diagnose"
                && x.action == "ci.annotate"
                && x.outcome == "denied")
    );
    drop(db);

    // Granted: the annotation is made, and the healer's kv count persists.
    let config = work.path().join("g.toml");
    std::fs::write(
        &config,
        "[plugins.js-diagnose]\ngrants = [\"ci.annotate\"]\n",
    )
    .unwrap();
    let (_, err, r) = run(Some(config)).await;
    let a = &r["attempts"][0];
    assert_eq!(a["actions"][0], "annotated the job", "{a}");
    assert!(
        a["summary"].as_str().unwrap().contains("seen 2 time(s)"),
        "{a}"
    );
    assert!(
        err.contains("build failure (typescript-error), seen 2 time(s)"),
        "{err}"
    );
}

#[tokio::test]
async fn plugins_new_rust_builds_and_checks_with_no_edits() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = guard_cli(&[
        "plugins",
        "new",
        "my-detector",
        "--lang",
        "rust",
        "--dir",
        dir.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("build.sh"), "{out}");
    let root = dir.path().join("my-detector");
    // A target directory shared between runs keeps this from rebuilding the SDK's dependencies.
    let target = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/plugin-new"));
    let built = Command::new(root.join("build.sh"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "build.sh failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let (code, out, err) = guard_cli(&[
        "plugins",
        "check",
        "--json",
        root.join("my-detector.wasm").to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["id"], "my-detector");
    assert_eq!(v["world"], "detector-plugin");
    assert_eq!(
        v["requested"],
        serde_json::json!([]),
        "the template asks for no capability"
    );
}

#[tokio::test]
async fn a_component_built_against_another_wit_version_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    // The contract as a future guard:plugin@0.2.0 would publish it.
    let wit = dir.path().join("wit");
    std::fs::create_dir(&wit).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("guard:plugin@0.1.2", "guard:plugin@0.2.0");
        std::fs::write(wit.join(path.file_name().unwrap()), text).unwrap();
    }
    let component = python_pack_against(&wit, dir.path(), "future").await;
    let (code, _, err) = guard_cli(&["plugins", "check", component.to_str().unwrap()]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("guard:plugin@0.2.0") && err.contains("guard:plugin@0.1.2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_plugin_built_against_the_released_0_1_0_contract_loads_after_host_functions_were_added()
{
    // tests/wit-0.1.0 is the contract as released; 0.1.1 added `log.enabled`,
    // 0.1.2 `exec.wrapped-command` and `exec.rerun-tests`.
    let frozen = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/wit-0.1.0"));
    let dir = tempfile::tempdir().unwrap();
    let component = python_pack_against(&frozen, dir.path(), "old-pack").await;
    let (code, out, err) =
        guard_cli(&["plugins", "check", "--json", component.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["wit_version"], "0.1.0",
        "built against the frozen contract"
    );
    assert_eq!(v["rules"], 1, "and it runs: its rules() call answered");
    assert!(v["exports"].to_string().contains("guard:plugin/pack@0.1.0"));
}

/// A Python pattern pack from `guard plugins new`, built against the WIT in
/// `wit` (not necessarily the live contract); returns the component's path.
async fn python_pack_against(wit: &std::path::Path, dir: &std::path::Path, name: &str) -> PathBuf {
    let (code, _, err) = guard_cli(&[
        "plugins",
        "new",
        name,
        "--lang",
        "python",
        "--kind",
        "pack",
        "--dir",
        dir.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let root = dir.join(name);
    examples(); // makes sure componentize-py is installed
    let out = format!("{name}.wasm");
    let built = Command::new("componentize-py")
        .args([
            "-d",
            wit.to_str().unwrap(),
            "-w",
            "pattern-pack",
            "componentize",
            "app",
            "-o",
            &out,
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    root.join(out)
}
