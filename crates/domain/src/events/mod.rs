//! The vocabulary of the stream, one module per aggregate: each event and
//! the types it carries. Nothing here imports an aggregate: the envelope
//! (`crate::event`) and the aggregates (`crate::need`, ...) both import
//! from here, so the domain has no module circle.

pub mod donation;
pub mod need;
pub mod placement;
pub mod provider;
pub mod standing;
