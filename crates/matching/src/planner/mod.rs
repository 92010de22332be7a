//! The matcher's planning, pure: no I/O, and time is an input. Given the
//! same ordered events it plans the same decisions, which is what makes a
//! replay of the stream reproduce history.
//!
//! - `fold`: the projection of every provider, donation and need, and the
//!   indexes planning reads;
//! - `housekeeping`: settling holds, finishing half-done proposals, expiry;
//! - `batch`: the needs that wait, placed together by `assign` (the policy
//!   `refer solve` runs: beds first, bundles measured from the bed, priority
//!   tiers, keep-together, keep-apart as a constraint);
//! - `ledger`: decisions planned and not yet seen on the stream;
//! - `driver`: the `Planner` that folds commits, plans, and replays, and
//!   what a failed decision does to the plan;
//! - `decision`: what is decided, with everything needed to carry it out;
//! - `partition`: which regions' providers, donations and needs a matcher
//!   keeps, when matching is split by region.
//!
//! Every decision is derived from the state, so a matcher that crashed
//! between two steps of a decision finds the half-done step in the state and
//! completes it (hold ids are derived from the need and its attempt number,
//! and every command carries a derived idempotency key).

mod batch;
mod decision;
mod driver;
mod fold;
mod housekeeping;
mod ledger;
mod partition;
mod policy;

pub use decision::{hold_id, Decision};
pub use driver::Planner;
pub(crate) use fold::site_pool as site_pool_of;
pub use fold::{Projection, Tally};
pub use ledger::{Ledger, Pool};
pub use partition::Partition;
pub use policy::Policy;
