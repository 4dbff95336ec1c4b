# Sourced by the project's scripts: one persistent cargo target directory
# outside the clone, keyed by the CPU's feature flags because whisper.cpp is
# built with -march=native (a binary built on one CPU may not run on another).
cpu_key=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | sha256sum | cut -c1-10)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/videdit/target-${cpu_key:-generic}}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
