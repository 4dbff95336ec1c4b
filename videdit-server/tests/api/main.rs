//! API integration tests: the real server on a free port, real PostgreSQL,
//! local storage or s3s-fs, and a local JWKS endpoint with real RS256 keys.

mod auth;
mod billing;
mod connections;
mod idempotency;
mod jobs;
mod openapi;
mod ops;
mod pictures;
mod pipeline;
mod publications;
mod publishing;
mod recipes;
mod roles;
mod rust_client;
mod schemathesis;
mod seed;
mod support;
mod tenancy;
mod typescript_client;
mod uploads;
mod webhooks;
