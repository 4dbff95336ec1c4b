//! Shared helpers for the benchmarks (each bench is a binary in `benches/`).
