//! Integration tests of videdit-core, in one binary to save link time.
//!
//! They need the services the test runner (`scripts/test`) starts:
//! PostgreSQL (`DATABASE_URL`) and s3s-fs (`VIDEDIT_TEST_S3_*`). A missing
//! service fails the tests with a message saying what to start.

mod db;
mod storage;
mod support;
