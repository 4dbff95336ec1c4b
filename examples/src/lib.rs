//! Example programs embedding the videdit crates; see `src/bin/`.
