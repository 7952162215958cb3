//! `guard pack build|inspect|keygen|sign|verify`: pattern packs as files.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::Global;
use crate::model::Rule;
use crate::runtime::{PluginKind, PluginSource, Runtime};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Build a pattern-pack component from a rules file (TOML or JSON).
    Build {
        /// Rules file, e.g. from `guard patterns export`.
        rules: PathBuf,
        /// Output component.
        #[arg(short, long)]
        output: PathBuf,
        /// A classifier model (from `guard train --output`) to ship in the pack.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// List a pack's metadata, rules and signature state.
    Inspect {
        /// The pack.
        pack: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create an Ed25519 key pair: the secret goes to FILE, the public key is printed.
    Keygen {
        /// Where to write the secret key (hex).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a pack with a secret key; writes PACK.wasm.sig.
    Sign {
        /// The pack.
        pack: PathBuf,
        /// Secret key file (from `guard pack keygen`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify a pack's signature against trusted keys (--key, or [packs] trusted_keys).
    Verify {
        /// The pack.
        pack: PathBuf,
        /// Trusted public key (hex); repeatable.
        #[arg(long)]
        key: Vec<String>,
    },
}

pub async fn run(global: &Global, cmd: Command, out: &mut dyn Write) -> Result<u8> {
    match cmd {
        Command::Build {
            rules,
            output,
            model,
        } => {
            let text = std::fs::read_to_string(&rules)
                .with_context(|| format!("reading {}", rules.display()))?;
            // Normalise to TOML (the template parses TOML) and check it first:
            // a pack that loads with zero rules helps nobody. Any problem
            // refuses the whole build, so one run names them all.
            let parsed = super::patterns::parse_rules_file(&text)
                .with_context(|| rules.display().to_string())?;
            // The format's checks: pack id; each rule's id, category and
            // confidence.
            let mut refused: Vec<String> = match parsed.validate() {
                Ok(()) => Vec::new(),
                Err(problems) => problems.iter().map(ToString::to_string).collect(),
            };
            // The scanner's, rule by rule, for the rules the format passed
            // (the others are named above already).
            let mut checked: Vec<Rule> = Vec::new();
            for entry in &parsed.rules {
                let Ok(rule) = Rule::try_from(entry.clone()) else {
                    continue;
                };
                match crate::learn::rules::validate(&rule, None, &[]) {
                    Ok(()) => checked.push(rule),
                    Err(why) => refused.push(format!("{}: {why}", rule.id)),
                }
            }
            // Together too: the scanner has one size budget for all rules,
            // and ids must be unique.
            let (_, over) = crate::detect::scanner::RuleSet::compile(
                checked.iter().map(|r| (parsed.pack.id.as_str(), r)),
            );
            refused.extend(
                over.into_iter()
                    .map(|e| format!("{}: {}", e.rule, e.message)),
            );
            if !refused.is_empty() {
                anyhow::bail!(
                    "{} problems in the rules file:\n  {}",
                    refused.len(),
                    refused.join("\n  ")
                );
            }
            let toml_text = parsed.to_toml().context("writing rules as TOML")?;
            let mut bytes = crate::pack::build(crate::embedded::PACK_TEMPLATE, &toml_text)?;
            if let Some(path) = &model {
                let json =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let m = crate::detect::classifier::Model::from_json(&json)
                    .with_context(|| path.display().to_string())?;
                bytes = crate::pack::with_model(&bytes, &json)?;
                writeln!(
                    out,
                    "model: {} classes, {} tokens, {} training documents",
                    m.classes.len(),
                    m.vocab.len(),
                    m.documents()
                )?;
            }
            std::fs::write(&output, &bytes)
                .with_context(|| format!("writing {}", output.display()))?;
            writeln!(
                out,
                "{}: pack {} {} with {} rules ({} bytes)",
                output.display(),
                parsed.pack.id,
                parsed.pack.version,
                parsed.rules.len(),
                bytes.len()
            )?;
            Ok(0)
        }
        Command::Inspect { pack, json } => {
            let config = Arc::new(super::load_config(global)?);
            let runtime = Runtime::new(config.clone(), crate::store::Store::temporary()?, None)?;
            let bytes =
                std::fs::read(&pack).with_context(|| format!("reading {}", pack.display()))?;
            let name = pack
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let p = runtime
                .prepare(&bytes, PluginSource::File(pack.clone()), &name)
                .await?;
            anyhow::ensure!(
                p.kind == PluginKind::Pack,
                "{} is a {}, not a pattern pack",
                pack.display(),
                p.kind.world()
            );
            let (signed_by, sig) = match crate::pack::verify(&pack, &config.packs.trusted_keys) {
                Ok(k) => (Some(k.clone()), format!("signed by trusted key {k}")),
                Err(e) => (None, e.to_string()),
            };
            if json {
                let v = serde_json::json!({
                    "file": pack.display().to_string(),
                    "id": p.info.id,
                    "version": p.info.version,
                    "description": p.info.description,
                    "sha256": p.sha256,
                    "bytes": p.size,
                    "signed_by": signed_by,
                    "signature": sig,
                    "rules": p.rules,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                return Ok(0);
            }
            writeln!(
                out,
                "{}: {} {} — {}",
                pack.display(),
                p.info.id,
                p.info.version,
                p.info.description
            )?;
            writeln!(out, "  sha256 {}  {} bytes", p.sha256, p.size)?;
            if let Some(m) = p.model.get() {
                writeln!(
                    out,
                    "  classifier model: {} classes, {} tokens, trained on {} documents",
                    m.classes.len(),
                    m.vocab.len(),
                    m.documents()
                )?;
            }
            writeln!(out, "  signature: {sig}")?;
            writeln!(out, "  {} rules:", p.rules.len())?;
            for r in &p.rules {
                writeln!(
                    out,
                    "    {:<32} {:<11} {:<24} {}",
                    r.id,
                    r.category.as_str(),
                    r.failure_type,
                    r.pattern
                )?;
            }
            Ok(0)
        }
        Command::Keygen { out: path } => {
            let (secret, public) = crate::pack::keygen()?;
            write_secret(&path, &secret)?;
            writeln!(
                out,
                "secret key written to {}\npublic key: {public}\nadd it to [packs] trusted_keys where packs signed with it are loaded",
                path.display()
            )?;
            Ok(0)
        }
        Command::Sign { pack, key } => {
            let secret = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let bytes =
                std::fs::read(&pack).with_context(|| format!("reading {}", pack.display()))?;
            let sig = crate::pack::sign(&bytes, &secret)?;
            let sig_path = crate::pack::signature_path(&pack);
            std::fs::write(&sig_path, format!("{sig}\n"))
                .with_context(|| format!("writing {}", sig_path.display()))?;
            writeln!(out, "{}", sig_path.display())?;
            Ok(0)
        }
        Command::Verify { pack, key } => {
            let trusted = if key.is_empty() {
                super::load_config(global)?.packs.trusted_keys
            } else {
                key
            };
            match crate::pack::verify(&pack, &trusted) {
                Ok(k) => {
                    writeln!(out, "{}: signature ok (key {k})", pack.display())?;
                    Ok(0)
                }
                Err(e) => {
                    writeln!(out, "{e}")?;
                    Ok(1)
                }
            }
        }
    }
}

fn write_secret(path: &PathBuf, secret: &str) -> Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    writeln!(f, "{secret}")?;
    Ok(())
}
