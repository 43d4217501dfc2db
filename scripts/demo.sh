#!/usr/bin/env bash
# The main job: set up, bootstrap a Debian image from Debian's packages and run a container from it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
P=.venv/bin/pallet
$P --version
