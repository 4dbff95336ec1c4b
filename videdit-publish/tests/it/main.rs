//! Integration tests: the clients against the fake over real HTTP on loopback.

mod api;
mod instagram;
mod oauth;
mod support;
mod tiktok;
mod upload;
