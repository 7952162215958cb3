//! Labelled examples and the trained classifier in sled: `guard learn
//! --category C --log LOG` (without `--type`) stores the tokens of the log's
//! located error region with its category in tree `examples`
//! ([`Trees::EXAMPLES`]); `guard train` folds them into the model, which it
//! stores in tree `classifier` ([`Trees::CLASSIFIER`]) where every analysis
//! picks it up (before any pack's model).

use serde::{Deserialize, Serialize};

use crate::detect::classifier::Model;
use crate::model::Category;
use crate::store::{Store, StoreError, Trees, now_ms};

/// The key of the one model in [`Trees::CLASSIFIER`].
const MODEL_KEY: &str = "model";

/// A labelled example: a person's correction of a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The right category.
    pub category: Category,
    /// Tokens of the error region.
    pub tokens: Vec<String>,
    /// The log it came from.
    pub from: String,
    /// When it was stored (ms since epoch).
    pub at_ms: u64,
}

/// Stores an example; returns its key.
pub fn add(
    store: &Store,
    category: Category,
    tokens: Vec<String>,
    from: &str,
) -> Result<String, StoreError> {
    let key = format!("{:020}", store.generate_id()?);
    let example = Example {
        category,
        tokens,
        from: from.into(),
        at_ms: now_ms(),
    };
    store.put(Trees::EXAMPLES, &key, &example)?;
    store.flush()?;
    Ok(key)
}

/// Every stored example, oldest first.
pub fn all(store: &Store) -> Result<Vec<Example>, StoreError> {
    store.values(Trees::EXAMPLES)
}

/// Stores the trained model; it is used from the next analysis on.
pub fn put_model(store: &Store, model: &Model) -> Result<(), StoreError> {
    store.put(Trees::CLASSIFIER, MODEL_KEY, model)?;
    store.flush()?;
    store.changed(Trees::CLASSIFIER);
    Ok(())
}

/// The stored model, if one was trained here.
pub fn model(store: &Store) -> Result<Option<Model>, StoreError> {
    store.get(Trees::CLASSIFIER, MODEL_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_and_the_model_persist() {
        let store = Store::temporary().expect("store");
        add(&store, Category::Network, vec!["refused".into()], "a.log").expect("add");
        add(&store, Category::Test, vec!["assert".into()], "b.log").expect("add");
        let ex = all(&store).expect("all");
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].from, "a.log");
        assert!(model(&store).expect("read").is_none());
        let m = Model::train(
            &ex.iter()
                .map(|e| (e.category, e.tokens.clone()))
                .collect::<Vec<_>>(),
        );
        put_model(&store, &m).expect("put");
        assert_eq!(model(&store).expect("read"), Some(m));
    }
}
