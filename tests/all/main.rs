//! guard's integration tests: one binary, a module per area. Plugins and
//! test guests are real components built by `build.rs`.

#![allow(clippy::unwrap_used)]

mod attacks;
mod browser;
mod catch_up;
mod catch_up_listings;
mod cli;
mod crash;
mod daemon;
mod detect;
mod eval;
mod fake;
mod flaky;
mod hardening;
mod heal;
mod hostile;
mod intake;
mod learn;
mod openapi;
mod pg;
mod polyglot;
mod redeliver;
mod replicas;
mod sandbox;
mod store;
mod util;

/// Paths of the components built by build.rs.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
