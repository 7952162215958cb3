//! `guard train --corpus DIR`: trains the classifier on labelled corpora and
//! the examples stored by `guard learn --category`, then stores the model in
//! the database (used from the next analysis on) or writes it to a file for
//! `guard pack build --model`. Trained on corpora, the model replaces the
//! packs' model; trained on stored corrections alone (`guard train` with no
//! `--corpus`), it adds to the model the packs ship.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::Global;
use crate::detect::Analyzer;
use crate::detect::classifier::Model;
use crate::detect::eval::{Split, load_labels};
use crate::learn::examples;
use crate::model::Category;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Labelled corpus (labels.jsonl + logs); repeatable.
    #[arg(long)]
    corpus: Vec<PathBuf>,
    /// Part of each corpus to train on (see `guard eval --split`).
    #[arg(long, value_enum, default_value_t = Split::All)]
    split: Split,
    /// Write the model as JSON here instead of storing it in the database.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Leave out the examples stored by `guard learn --category`.
    #[arg(long)]
    no_examples: bool,
}

pub async fn run(global: &Global, args: Args, out: &mut dyn Write) -> Result<u8> {
    let (runtime, _) = super::runtime(global, None).await?;
    let (analyzer, _) = Analyzer::new(runtime.clone());
    let mut data: Vec<(Category, Vec<String>)> = Vec::new();
    let mut unlocated = 0usize;
    for dir in &args.corpus {
        for label in load_labels(dir)?.iter().filter(|l| args.split.contains(l)) {
            let path = dir.join(&label.file);
            let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            match analyzer
                .region_tokens(BufReader::new(f))
                .await
                .with_context(|| format!("reading {}", path.display()))?
            {
                Some(tokens) => data.push((label.category, tokens)),
                None => unlocated += 1,
            }
        }
    }
    let from_corpora = data.len();
    if !args.no_examples {
        for e in examples::all(runtime.db())? {
            data.push((e.category, e.tokens));
        }
    }
    if data.is_empty() {
        bail!("nothing to train on: no labelled log with a failure marker, and no stored example");
    }
    let mut model = Model::train(&data);
    // A model from corpora replaces the packs' model; one from stored
    // corrections alone adds to it.
    model.standalone = from_corpora > 0;
    let right = data
        .iter()
        .filter(|(c, t)| {
            model
                .predict(t)
                .and_then(|p| p.best())
                .is_some_and(|(b, _)| b == *c)
        })
        .count();
    writeln!(
        out,
        "trained on {} documents ({from_corpora} from corpora, {} stored examples; {unlocated} logs without a failure marker skipped): {} tokens, {} classes",
        data.len(),
        data.len() - from_corpora,
        model.vocab.len(),
        model.classes.len()
    )?;
    for (c, n) in model.classes.iter().zip(&model.docs) {
        writeln!(out, "  {:<12} {n}", c.as_str())?;
    }
    writeln!(
        out,
        "accuracy on its own training data: {right}/{} (the held-out figure comes from `guard eval --mode model`)",
        data.len()
    )?;
    match &args.output {
        Some(path) => {
            let json = serde_json::to_vec(&model)?;
            std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
            writeln!(
                out,
                "model written to {} (ship it: guard pack build RULES --model {})",
                path.display(),
                path.display()
            )?;
        }
        None => {
            examples::put_model(runtime.db(), &model)?;
            writeln!(
                out,
                "model stored in the database; it decides from the next analysis on"
            )?;
        }
    }
    Ok(0)
}
