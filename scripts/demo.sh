#!/usr/bin/env bash
# The main job: set up, bootstrap a Debian image from Debian's packages and run a container from it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
P=.venv/bin/pallet
$P --version

# A container from the bootstrapped Debian image, and what it sees: its own pid 1,
# no host processes, its own hostname, Debian's os-release.
IMG=debian:bookworm-slim
$P image inspect "$IMG" >/dev/null 2>&1 || $P image bootstrap "$IMG"
$P images
SHOW=$(mktemp -d)
trap 'rm -rf "$SHOW"' EXIT
cat >"$SHOW/show.sh" <<'SCRIPT'
echo "pid 1 in the container: $(tr '\0' ' ' </proc/1/cmdline)"
echo "processes it can see (pid, command):"
for p in /proc/[0-9]*; do echo "  ${p#/proc/} $(cat "$p/comm" 2>/dev/null)"; done
echo "hostname: $(hostname)"
grep -E '^(PRETTY_NAME|VERSION_CODENAME)=' /etc/os-release
SCRIPT
$P run --rm --hostname pallet-demo -v "$SHOW:/demo:ro" "$IMG" sh /demo/show.sh
