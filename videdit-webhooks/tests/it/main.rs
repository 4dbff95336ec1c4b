//! The crate's integration tests, in one binary to save link time.

mod delivery;
mod ssrf;
mod support;
