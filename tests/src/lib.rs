#![forbid(unsafe_code)]
//! End-to-end tests live in `tests/tests/`.
