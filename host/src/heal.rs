//! Healing safety: which strategy to try, and whether to try anything.
//!
//! Strategies are ranked by learned success rates per (category, strategy)
//! ([`stats`]), then filtered by a circuit breaker per (repository, job,
//! strategy) ([`breaker`]) and by retry budgets per job per commit and per
//! repository per hour ([`budget`]); all of it lives in sled so a restart
//! keeps it. [`planner`] puts it together into a plan that `--dry-run`
//! shows without acting; [`session`] walks the plan for one failed job, the
//! same for `guard exec` and the daemon; [`local`] is `guard exec`'s CI
//! backend; [`narrow`] turns the wrapped test command into a re-run of the
//! failed tests alone.

pub mod breaker;
pub mod budget;
pub mod local;
pub mod narrow;
pub mod planner;
pub mod session;
pub mod stats;

pub use session::{Outcome, Session, backoff};
