//! Integration tests: the client and the fake over real HTTP on loopback.
//! One binary to save link time.

mod client;
mod lifecycle;
mod support;
mod wire;
