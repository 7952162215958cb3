//! `guard plugins new NAME --lang rust|python|js [--kind detector|healer|pack]`:
//! a ready plugin folder whose `build.sh` builds `NAME.wasm` with no edits.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Plugin languages with a template.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    /// Rust with guard-sdk.
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
}

/// Plugin kinds.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    /// Finds failures in logs.
    Detector,
    /// Heals failures.
    Healer,
    /// Ships rules.
    Pack,
}

impl Kind {
    fn world(self) -> &'static str {
        match self {
            Kind::Detector => "detector-plugin",
            Kind::Healer => "healer-plugin",
            Kind::Pack => "pattern-pack",
        }
    }
}

/// The WIT contract and the SDK this guard was built with. A packaged guard
/// would ship them beside the binary; `GUARD_HOME` points at such a copy.
fn guard_home() -> PathBuf {
    std::env::var_os("GUARD_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")))
}

/// Writes the plugin folder; returns its path.
pub fn create(dir: &Path, name: &str, lang: Lang, kind: Kind) -> Result<PathBuf> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || name.starts_with('-')
    {
        bail!(
            "plugin names are lowercase letters, digits and '-' (it becomes the plugin id): {name:?}"
        );
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let home = guard_home();
    let wit = home.join("wit").canonicalize().with_context(|| {
        format!(
            "the WIT contract is not at {} (set GUARD_HOME)",
            home.join("wit").display()
        )
    })?;
    let wit = wit.display().to_string();
    let crate_name = name.replace('-', "_");
    let mut files: Vec<(&str, String)> = Vec::new();
    match lang {
        Lang::Rust => {
            let sdk = home
                .join("sdk")
                .canonicalize()
                .with_context(|| "guard-sdk not found (set GUARD_HOME)".to_string())?;
            files.push(("Cargo.toml", format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nguard-sdk = {{ path = {:?} }}\n\n# Not part of any enclosing workspace.\n[workspace]\n",
                sdk.display().to_string()
            )));
            files.push(("src/lib.rs", rust_source(name, kind)));
            files.push(("build.sh", format!(
                "#!/usr/bin/env bash\n# Builds {name}.wasm (a {world} component).\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\nrustup target add wasm32-wasip2 >/dev/null 2>&1 || true\ncargo build --release --target wasm32-wasip2 --quiet\ncp \"${{CARGO_TARGET_DIR:-target}}/wasm32-wasip2/release/{crate_name}.wasm\" {name}.wasm\necho \"$(pwd)/{name}.wasm\"\n",
                world = kind.world()
            )));
        }
        Lang::Python => {
            files.push(("app.py", python_source(name, kind)));
            if matches!(kind, Kind::Detector) {
                files.push(("detector.py", PY_SCAN.to_string()));
            }
            files.push(("build.sh", format!(
                "#!/usr/bin/env bash\n# Builds {name}.wasm with componentize-py (installed if missing).\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\ncomponentize-py --version 2>/dev/null | grep -q 0.25.1 || python3 -m pip install --quiet --disable-pip-version-check \"componentize-py==0.25.1\"\ncomponentize-py -d {wit:?} -w {} componentize app -o {name}.wasm >/dev/null\necho \"$(pwd)/{name}.wasm\"\n",
                kind.world()
            )));
        }
        Lang::Js => {
            files.push(("plugin.js", js_source(name, kind)));
            files.push(("package.json", format!("{{\n  \"name\": \"{name}\",\n  \"private\": true,\n  \"type\": \"module\",\n  \"devDependencies\": {{ \"@bytecodealliance/componentize-js\": \"0.23.0\", \"@bytecodealliance/preview2-shim\": \"0.25.0\" }}\n}}\n")));
            files.push(("build.sh", format!(
                "#!/usr/bin/env bash\n# Builds {name}.wasm with componentize-js (wasi:http disabled).\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n[ -x node_modules/.bin/componentize-js ] || npm install --silent --no-audit --no-fund\nnode_modules/.bin/componentize-js plugin.js -w {wit:?} -n {} -d http -d fetch-event -o {name}.wasm >/dev/null\necho \"$(pwd)/{name}.wasm\"\n",
                kind.world()
            )));
        }
    }
    for (file, text) in files {
        let path = root.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        if file == "build.sh" {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(root)
}

fn rust_source(name: &str, kind: Kind) -> String {
    match kind {
        Kind::Detector => format!(
            r#"//! {name}: a guard detector.

use guard_sdk::{{Category, Detector, Evidence, Finding, Job, PluginInfo}};

#[derive(Default)]
struct Plugin {{
    hits: Vec<Evidence>,
}}

impl Detector for Plugin {{
    fn info() -> PluginInfo {{
        guard_sdk::info("{name}", "0.1.0", "Describe what this detector finds")
    }}

    fn new(_job: Job) -> Self {{
        Plugin::default()
    }}

    fn feed(&mut self, chunk: &str, first_line: u32) {{
        for (line, text) in guard_sdk::lines(chunk, first_line) {{
            // Replace with the failure you know.
            if text.contains("MY-FAILURE") {{
                self.hits.push(Evidence {{ line, text: text.to_string() }});
            }}
        }}
    }}

    fn finish(&mut self) -> Vec<Finding> {{
        if self.hits.is_empty() {{
            return Vec::new();
        }}
        vec![Finding {{
            rule: "{name}.my-failure".into(),
            category: Category::Other,
            failure_type: "my-failure".into(),
            confidence: 0.8,
            evidence: std::mem::take(&mut self.hits),
            remedies: vec!["diagnose".into()],
            facts: Vec::new(),
        }}]
    }}
}}

guard_sdk::detector!(Plugin);
"#
        ),
        Kind::Healer => format!(
            r#"//! {name}: a guard healer.

use guard_sdk::{{Category, Effect, Error, Finding, Healer, Job, PluginInfo, Report, Strategy}};

#[allow(dead_code)]
struct Plugin;

impl Healer for Plugin {{
    fn info() -> PluginInfo {{
        guard_sdk::info("{name}", "0.1.0", "Describe what this healer does")
    }}

    fn strategies() -> Vec<Strategy> {{
        vec![Strategy {{
            name: "{name}-retry".into(),
            categories: vec![Category::Network],
            retries: true,
            description: "Re-run the job".into(),
        }}]
    }}

    fn heal(_strategy: &str, _job: &Job, finding: &Finding) -> Result<Report, Error> {{
        // Needs the grant `ci.rerun-job` in [plugins.{name}].
        guard_sdk::ci::rerun_job(false)?;
        Ok(Report {{
            summary: format!("re-ran after {{}}", finding.failure_type),
            actions: vec!["re-ran the job".into()],
            effect: Effect::Rerun,
            facts: Vec::new(),
        }})
    }}
}}

guard_sdk::healer!(Plugin);
"#
        ),
        Kind::Pack => format!(
            r#"//! {name}: a guard pattern pack.

use guard_sdk::{{Category, Pack, PluginInfo, Rule}};

#[allow(dead_code)]
struct Plugin;

impl Pack for Plugin {{
    fn info() -> PluginInfo {{
        guard_sdk::info("{name}", "0.1.0", "Describe the failures these rules know")
    }}

    fn rules() -> Vec<Rule> {{
        vec![Rule {{
            id: "{name}.example".into(),
            category: Category::Network,
            failure_type: "example".into(),
            pattern: r"MY-REGISTRY (?:502|503) for (?P<package>\S+)".into(),
            unless: None,
            confidence: 0.9,
            remedies: vec!["retry-with-backoff".into()],
            description: "Our registry's gateway failed".into(),
        }}]
    }}
}}

guard_sdk::pack!(Plugin);
"#
        ),
    }
}

const PY_SCAN: &str = r#"from typing import List

from wit_world.exports import detector as api
from wit_world.imports import types


class Scan(api.Scan):
    def __init__(self, job: types.Job) -> None:
        self.hits: List[types.Evidence] = []

    def feed(self, chunk: str, first_line: int) -> None:
        for i, text in enumerate(chunk.split("\n")):
            if "MY-FAILURE" in text:  # replace with the failure you know
                self.hits.append(types.Evidence(line=first_line + i, text=text))

    def finish(self) -> List[types.Finding]:
        if not self.hits:
            return []
        return [types.Finding(rule="my-failure", category=types.Category.OTHER, failure_type="my-failure",
                              confidence=0.8, evidence=self.hits, remedies=["diagnose"], facts=[])]
"#;

fn python_source(name: &str, kind: Kind) -> String {
    let info = format!(
        "types.PluginInfo(id=\"{name}\", version=\"0.1.0\", description=\"Describe this plugin\")"
    );
    match kind {
        Kind::Detector => format!(
            "from wit_world import exports\nfrom wit_world.imports import types\n\n\nclass Detector(exports.Detector):\n    def info(self) -> types.PluginInfo:\n        return {info}\n"
        ),
        Kind::Healer => format!(
            "from typing import List\n\nfrom wit_world import exports\nfrom wit_world.exports import healer\nfrom wit_world.imports import types, ci\n\n\nclass Healer(exports.Healer):\n    def info(self) -> types.PluginInfo:\n        return {info}\n\n    def strategies(self) -> List[healer.Strategy]:\n        return [healer.Strategy(name=\"{name}-retry\", categories=[types.Category.NETWORK], retries=True, description=\"Re-run the job\")]\n\n    def heal(self, strategy: str, job: types.Job, finding: types.Finding) -> healer.Report:\n        ci.rerun_job(False)  # needs the grant ci.rerun-job\n        return healer.Report(summary=\"re-ran\", actions=[\"re-ran the job\"], effect=healer.Effect.RERUN, facts=[])\n"
        ),
        Kind::Pack => format!(
            "from typing import List\n\nfrom wit_world import exports\nfrom wit_world.imports import types\n\n\nclass Pack(exports.Pack):\n    def info(self) -> types.PluginInfo:\n        return {info}\n\n    def rules(self) -> List[types.Rule]:\n        return [types.Rule(id=\"{name}.example\", category=types.Category.NETWORK, failure_type=\"example\",\n                           pattern=r\"MY-REGISTRY (?:502|503)\", unless=None, confidence=0.9,\n                           remedies=[\"retry-with-backoff\"], description=\"Our registry failed\")]\n"
        ),
    }
}

fn js_source(name: &str, kind: Kind) -> String {
    let info = format!("{{ id: '{name}', version: '0.1.0', description: 'Describe this plugin' }}");
    match kind {
        Kind::Detector => format!(
            "class Scan {{\n  constructor(job) {{ this.hits = []; }}\n  feed(chunk, firstLine) {{\n    chunk.split('\\n').forEach((text, i) => {{ if (text.includes('MY-FAILURE')) this.hits.push({{ line: firstLine + i, text }}); }});\n  }}\n  finish() {{\n    if (this.hits.length === 0) return [];\n    return [{{ rule: '{name}.my-failure', category: 'other', failureType: 'my-failure', confidence: 0.8, evidence: this.hits, remedies: ['diagnose'], facts: [] }}];\n  }}\n}}\n\nexport const detector = {{ info() {{ return {info}; }}, Scan }};\n"
        ),
        Kind::Healer => format!(
            "import {{ rerunJob }} from 'guard:plugin/ci@0.1.2';\n\nexport const healer = {{\n  info() {{ return {info}; }},\n  strategies() {{ return [{{ name: '{name}-retry', categories: ['network'], retries: true, description: 'Re-run the job' }}]; }},\n  heal(strategy, job, finding) {{\n    rerunJob(false); // needs the grant ci.rerun-job\n    return {{ summary: 're-ran', actions: ['re-ran the job'], effect: 'rerun', facts: [] }};\n  }},\n}};\n"
        ),
        Kind::Pack => format!(
            "export const pack = {{\n  info() {{ return {info}; }},\n  rules() {{\n    return [{{ id: '{name}.example', category: 'network', failureType: 'example', pattern: 'MY-REGISTRY (?:502|503)', unless: undefined, confidence: 0.9, remedies: ['retry-with-backoff'], description: 'Our registry failed' }}];\n  }},\n}};\n"
        ),
    }
}
