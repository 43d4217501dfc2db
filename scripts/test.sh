#!/usr/bin/env bash
# Set up (Debian packages, virtualenv) and run pallet's whole test suite: lint, types,
# the import-direction contract, then unit, integration and compat tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check src tests bench
.venv/bin/lint-imports --config pyproject.toml
.venv/bin/mypy
exec .venv/bin/pytest "$@"
