//! `guard:plugin/kv`: each plugin's private namespace, a sled tree named
//! after its id. Always granted; sizes capped.

use crate::runtime::bindings::kv::Host;
use crate::runtime::bindings::types::Error;
use crate::runtime::state::PluginState;

const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 64 * 1024;
const MAX_LIST: u32 = 1000;

impl PluginState {
    fn kv_tree(&mut self) -> Result<sled::Tree, Error> {
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
                .map(|v| v.map(|v| v.to_vec()))
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
            tree.insert(key.as_bytes(), value)
                .map(|_| ())
                .map_err(|e| Error::Unavailable(e.to_string()))
        })();
        Ok(r)
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), Error>> {
        let r = (|| {
            check_key(&key)?;
            let tree = self.kv_tree()?;
            tree.remove(key.as_bytes())
                .map(|_| ())
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
            let mut keys = Vec::new();
            for item in tree
                .scan_prefix(prefix.as_bytes())
                .take(limit.min(MAX_LIST) as usize)
            {
                let (k, _) = item.map_err(|e| Error::Unavailable(e.to_string()))?;
                keys.push(String::from_utf8_lossy(&k).into_owned());
            }
            Ok(keys)
        })();
        Ok(r)
    }
}
