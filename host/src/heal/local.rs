//! The [`CiBackend`] of `guard exec`: there is no platform, so CI actions
//! become what they mean for one wrapped command — a re-run runs it again
//! (after the backoff, with the healer's extra environment), an annotation
//! is shown to the person running it, a cancel stops the loop. A local
//! command has no CI cache store: clearing caches deletes nothing and says
//! 0, which is the truth (package-manager caches are cleared through
//! `exec` with their own grants).

use std::sync::Mutex;

use async_trait::async_trait;

use crate::caps::ci::{CiBackend, CiRequest, Rerun};
use crate::model::Job;
use crate::runtime::bindings::types::Error;

/// The local backend of one heal.
#[derive(Debug)]
pub struct LocalBackend {
    backoff_secs: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    rerun: Option<Rerun>,
    notes: Vec<String>,
}

impl LocalBackend {
    /// A backend whose re-runs wait at least `backoff_secs`.
    pub fn new(backoff_secs: u64) -> LocalBackend {
        LocalBackend {
            backoff_secs,
            state: Mutex::new(State::default()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        match self.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

#[async_trait]
impl CiBackend for LocalBackend {
    async fn perform(&self, _job: &Job, request: CiRequest) -> Result<u32, Error> {
        self.with(|s| match request {
            CiRequest::Rerun {
                delay_secs, env, ..
            } => {
                s.rerun = Some(Rerun {
                    delay_secs: self.backoff_secs.max(u64::from(delay_secs)),
                    env,
                })
            }
            // Locally the "run" is the one command.
            CiRequest::RerunFailed { .. } => {
                s.rerun = Some(Rerun {
                    delay_secs: self.backoff_secs,
                    env: Vec::new(),
                })
            }
            CiRequest::ClearCaches { .. } => {}
            CiRequest::Cancel => {
                s.rerun = None;
                s.notes.push("cancelled: no further attempts".into());
            }
            CiRequest::Annotate { title, body } => {
                s.notes.push(format!("{title}\n{}", body.trim_end()));
            }
        });
        Ok(0)
    }

    fn rerun_env(&self) -> bool {
        true
    }

    fn rerun(&self) -> Option<Rerun> {
        self.with(|s| s.rerun.clone())
    }

    fn take_notes(&self) -> Vec<String> {
        self.with(|s| std::mem::take(&mut s.notes))
    }
}
