//! `guard:plugin/fs`: read-only access under granted roots, through cap-std
//! so that `..`, absolute paths and symlinks cannot leave the root.
//!
//! Files in a root are written by CI steps, so they may be anything: a FIFO
//! whose `open(2)` never returns, a device that never ends. Only regular
//! files and directories are read; files are opened non-blocking and checked
//! on the open handle (no race with a swap after a check), and all file work
//! runs on the blocking pool, so the call's deadline always fires and the
//! async runtime never stalls.

use std::io::Read;

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::caps::grants::Grant;
use crate::runtime::bindings::fs::Host;
use crate::runtime::bindings::types::Error;
use crate::runtime::state::PluginState;

/// Upper bound on `max-bytes`, whatever the plugin asks.
const HARD_MAX_READ: u32 = 16 * 1024 * 1024;
const MAX_ENTRIES: usize = 10_000;

impl PluginState {
    fn open_root(&mut self, root: &str, path: &str) -> Result<Dir, Error> {
        self.require(&Grant::Fs(root.to_string()))?;
        // Refused up front with a clear message, although cap-std would
        // refuse escapes anyway: a plugin asking for them is worth a log line.
        if path.starts_with('/')
            || path.starts_with('\\')
            || path.split(['/', '\\']).any(|c| c == "..")
            || path.contains('\0')
        {
            let message =
                format!("path {path:?} must be relative to the root and must not contain `..`");
            tracing::warn!(plugin = %self.ctx.plugin, "fs: {message}");
            return Err(Error::Denied(message));
        }
        let dir = self
            .ctx
            .grants
            .fs_root(root)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "fs root `{root}` is granted but has no directory in [plugins.{}] fs_roots",
                    self.ctx.plugin
                ))
            })?
            .clone();
        Dir::open_ambient_dir(&dir, ambient_authority())
            .map_err(|e| Error::Unavailable(format!("fs root `{root}`: {e}")))
    }
}

fn io_error(path: &str, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!("{path}: not found")),
        std::io::ErrorKind::PermissionDenied => {
            Error::Denied(format!("{path}: outside the root or not readable"))
        }
        _ => Error::Invalid(format!("{path}: {e}")),
    }
}

/// Runs file work on the blocking pool: a host function never blocks the
/// async runtime, and the caller's deadline stays in force while it waits.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Unavailable(format!("file access failed: {e}"))))
}

/// Opens `path` for reading without blocking and refuses anything but a
/// regular file.
fn open_regular(dir: &Dir, path: &str) -> Result<cap_std::fs::File, Error> {
    let mut options = cap_std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use cap_std::fs::OpenOptionsExt;
        // A FIFO with no writer would block `open` forever.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = dir
        .open_with(path, &options)
        .map_err(|e| io_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(Error::Denied(format!(
            "{path} is not a regular file (only regular files and directories are readable)"
        )));
    }
    Ok(file)
}

impl Host for PluginState {
    async fn read(
        &mut self,
        root: String,
        path: String,
        max_bytes: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        let dir = match self.open_root(&root, &path) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        let r = blocking(move || {
            let file = open_regular(&dir, &path)?;
            let max = max_bytes.min(HARD_MAX_READ) as u64;
            let len = file.metadata().map_err(|e| io_error(&path, e))?.len();
            if len > max {
                return Err(Error::Limited(format!(
                    "{path} has {len} bytes, more than the {max} asked for"
                )));
            }
            let mut data = Vec::with_capacity(len as usize);
            file.into_std()
                .take(max)
                .read_to_end(&mut data)
                .map_err(|e| io_error(&path, e))?;
            Ok(data)
        })
        .await;
        Ok(r)
    }

    async fn list_dir(
        &mut self,
        root: String,
        path: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let dir = match self.open_root(&root, &path) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        let r = blocking(move || {
            let sub = if path.is_empty() || path == "." {
                dir
            } else {
                dir.open_dir(&path).map_err(|e| io_error(&path, e))?
            };
            let mut names = Vec::new();
            for entry in sub.entries().map_err(|e| io_error(&path, e))? {
                let entry = entry.map_err(|e| io_error(&path, e))?;
                names.push(entry.file_name().to_string_lossy().into_owned());
                if names.len() >= MAX_ENTRIES {
                    break;
                }
            }
            names.sort();
            Ok(names)
        })
        .await;
        Ok(r)
    }
}
