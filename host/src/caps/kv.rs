//! `guard:plugin/kv`: each plugin's private namespace, a tree named after
//! its id (in sled or PostgreSQL, shared by replicas). Always granted;
//! sizes capped.

use crate::runtime::bindings::kv::Host;
use crate::runtime::bindings::types::Error;
use crate::runtime::state::PluginState;

const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 64 * 1024;
const MAX_LIST: u32 = 1000;

impl PluginState {
    fn kv_tree(&mut self) -> Result<crate::store::PluginKv, Error> {
        self.count_host_call()?;
        self.ctx
            .db
            .plugin_kv(&self.ctx.plugin)
            .map_err(|e| Error::Unavailable(e.to_string()))
    }
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Error::Invalid(format!(
            "keys are 1 to {MAX_KEY} bytes; this one is {}",
            key.len()
        )));
    }
    Ok(())
}

impl Host for PluginState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let r = (|| {
            check_key(&key)?;
            let tree = self.kv_tree()?;
            tree.get(key.as_bytes())
                .map_err(|e| Error::Unavailable(e.to_string()))
        })();
        Ok(r)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Error>> {
        let r = (|| {
            check_key(&key)?;
            if value.len() > MAX_VALUE {
                return Err(Error::Limited(format!(
                    "values are at most {MAX_VALUE} bytes; this one is {}",
                    value.len()
                )));
            }
            let tree = self.kv_tree()?;
            tree.set(key.as_bytes(), &value)
                .map_err(|e| Error::Unavailable(e.to_string()))
        })();
        Ok(r)
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), Error>> {
        let r = (|| {
            check_key(&key)?;
            let tree = self.kv_tree()?;
            tree.delete(key.as_bytes())
                .map_err(|e| Error::Unavailable(e.to_string()))
        })();
        Ok(r)
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let r = (|| {
            let tree = self.kv_tree()?;
            let keys = tree
                .keys(prefix.as_bytes(), limit.min(MAX_LIST) as usize)
                .map_err(|e| Error::Unavailable(e.to_string()))?;
            Ok(keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect())
        })();
        Ok(r)
    }
}
