#!/usr/bin/env bash
# The one test command: formatting, lints, Rust tests, the header check, the C tests (as C and
# C++, and under AddressSanitizer), and the Python module's tests against a freshly built wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { printf '\n=== %s ===\n' "$*"; }

step "dependencies"
scripts/install-deps.sh
venv=${OSDKIT_VENV:-target/venv}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "Rust tests"
OSDKIT_REQUIRE_CEPH=1 cargo test -p osdkit --quiet 2>&1 | tee target/rust-tests.log
grep -q "test result: ok" target/rust-tests.log

step "fuzz target: builds, and replays its seeded inputs (stable toolchain)"
CARGO_TARGET_DIR=target/fuzz cargo test --quiet --manifest-path fuzz/Cargo.toml 2>&1 | grep -E "test result|panicked|error"

step "header check"
cargo build -p osdkit --lib --quiet
scripts/gen-header.sh --check

step "C tests"
scripts/c-tests.sh

step "Python wheel and pytest"
rm -rf target/wheels
"$venv/bin/maturin" build --quiet -m python/Cargo.toml --out target/wheels 2>&1 | tail -2
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/osdkit-*.whl
OSDKIT_REQUIRE_CEPH=1 OSDKIT_C_HOST="$PWD/target/ctests/asok_host" \
  "$venv/bin/python" -m pytest -q python/tests
