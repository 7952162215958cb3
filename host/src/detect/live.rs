//! The analyzer a long-running daemon uses, replaced when learned rules or
//! the trained classifier change — in this process or, with a shared
//! PostgreSQL store, in any replica — so what `guard learn` and
//! `guard train` store is used from the next event on, without a restart.

use std::sync::{Arc, RwLock};

use super::Analyzer;
use crate::runtime::Runtime;
use crate::store::Trees;

/// An [`Analyzer`] that can be swapped while in use.
#[derive(Debug)]
pub struct Live {
    current: RwLock<Arc<Analyzer>>,
}

impl Live {
    /// Starts with `analyzer`.
    pub fn new(analyzer: Arc<Analyzer>) -> Arc<Live> {
        Arc::new(Live {
            current: RwLock::new(analyzer),
        })
    }

    /// The analyzer in use now.
    pub fn get(&self) -> Arc<Analyzer> {
        match self.current.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, analyzer: Analyzer) {
        let analyzer = Arc::new(analyzer);
        match self.current.write() {
            Ok(mut a) => *a = analyzer,
            Err(p) => *p.into_inner() = analyzer,
        }
    }

    /// Rebuilds the analyzer each time the store reports a change of the
    /// learned rules or the classifier (or that changes may have been
    /// missed), until `stop` turns true or the store stops reporting.
    pub async fn follow(
        self: Arc<Self>,
        runtime: Arc<Runtime>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        let mut changes = runtime.db().subscribe();
        let watched = |tree: &str| {
            tree.is_empty() || tree == Trees::RULES.name() || tree == Trees::CLASSIFIER.name()
        };
        loop {
            let first = tokio::select! {
                c = changes.recv() => c,
                _ = stop.changed() => return,
            };
            let mut rebuild = match first {
                Ok(tree) => watched(&tree),
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            };
            // One rebuild for a burst of changes.
            loop {
                match changes.try_recv() {
                    Ok(tree) => rebuild |= watched(&tree),
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => rebuild = true,
                    Err(_) => break,
                }
            }
            if !rebuild {
                continue;
            }
            let rt = runtime.clone();
            match tokio::task::spawn_blocking(move || Analyzer::new(rt)).await {
                Ok((analyzer, errors)) => {
                    tracing::info!(
                        rules = analyzer.rules().len(),
                        rejected = errors.len(),
                        "learned rules or classifier changed: analyzer rebuilt"
                    );
                    self.set(analyzer);
                }
                Err(e) => tracing::error!("rebuilding the analyzer: {e}"),
            }
        }
    }
}
