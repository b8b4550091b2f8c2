#!/usr/bin/env bash
# Regenerates include/osdkit.h from src/capi/ with the pinned cbindgen.
#   scripts/gen-header.sh           write the header
#   scripts/gen-header.sh --check   fail if the committed header differs, or if an exported
#                                   symbol of the built library is not declared in it
set -euo pipefail
CBINDGEN_VERSION=0.29.2
cd "$(dirname "$0")/.."

if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
  echo "installing cbindgen $CBINDGEN_VERSION" >&2
  cargo install --locked --quiet cbindgen --version "$CBINDGEN_VERSION"
fi

out=include/osdkit.h
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# Parsing from src/capi/mod.rs keeps the header to the C ABI: the core's own constants stay out.
cbindgen --quiet --config cbindgen.toml --output "$tmp" src/capi/mod.rs

# Everything the header declares must carry the library's prefix.
stray=$(grep -Eo '^#define [A-Za-z_0-9]+|^typedef struct [A-Za-z_0-9]+' "$tmp" | awk '{print $NF}' | grep -Ev '^(OSDKIT_|osdkit_)' || true)
if [ -n "$stray" ]; then
  echo "header: names without the osdkit prefix (exclude them in cbindgen.toml): $stray" >&2
  exit 1
fi

if [ "${1:-}" != "--check" ]; then
  mkdir -p include
  cp "$tmp" "$out"
  echo "wrote $out"
  exit 0
fi

if ! diff -u "$out" "$tmp"; then
  echo "header check: $out is stale; run scripts/gen-header.sh and commit it" >&2
  exit 1
fi
lib=${CARGO_TARGET_DIR:-target}/debug/libosdkit.so
[ -f "$lib" ] || cargo build --quiet --lib
exported=$(nm -D --defined-only "$lib" | awk '$2=="T"{print $3}' | grep '^osdkit_' | sort -u)
missing=0
for sym in $exported; do
  if ! grep -Eq "\\b$sym\\(" "$out"; then
    echo "header check: exported symbol $sym is not declared in $out" >&2
    missing=1
  fi
done
[ $missing -eq 0 ] || exit 1
echo "header check: $out is current; $(echo "$exported" | wc -w) exported symbols all declared"
