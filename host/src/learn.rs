//! Learning: turning a failure line no rule explains into a rule
//! ([`generalize`]), keeping learned rules in sled with their provenance
//! ([`rules`]), so they join the native scan at once and can be exported,
//! imported and built into pattern packs; mining the failures nothing
//! explains into templates that wait for promotion ([`candidates`]); and
//! counting how each rule fares ([`rule_stats`]); labelled examples and the
//! trained classifier ([`examples`]).

pub mod candidates;
pub mod examples;
pub mod generalize;
pub mod rule_stats;
pub mod rules;
