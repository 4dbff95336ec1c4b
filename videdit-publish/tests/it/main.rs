//! Integration tests: the clients against the fake over real HTTP on loopback.

mod api;
mod oauth;
mod support;
mod tiktok;
mod upload;
