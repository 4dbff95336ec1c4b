# Common commands (https://github.com/casey/just). Each is also a plain script.
set shell := ["bash", "-c"]

# Run every test (what CI runs).
test *ARGS:
    scripts/test {{ARGS}}

# Format the code.
fmt:
    cargo fmt --all

# Lint like CI.
lint:
    source scripts/env.sh && cargo clippy --workspace --all-features --all-targets -- -D warnings

# Run a benchmark: just bench queue
bench NAME:
    source scripts/env.sh && cargo bench -p videdit-benches --bench {{NAME}}
