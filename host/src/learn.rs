//! Learning: turning a failure line no rule explains into a rule
//! ([`generalize`]), keeping learned rules in sled with their provenance
//! ([`rules`]), so they join the native scan at once and can be exported,
//! imported and built into pattern packs.

pub mod generalize;
pub mod rules;
