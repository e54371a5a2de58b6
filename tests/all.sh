#!/usr/bin/env bash
# Runs every check of ratewatch: installs missing test components, then the Dockerfile lint,
# formatting, clippy, the monitoring checks, the live dashboard queries and every cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/install-deps.sh

hadolint Dockerfile
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked

bash tests/monitoring/check.sh
python3 tests/monitoring/live_queries.py target/debug/ratewatch

cargo test --locked --all-targets
