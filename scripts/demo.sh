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

# The seed's example, end to end: its Dockerfile (examples/seed) built unchanged on a
# python base image made from Debian's packages (no registry is needed), run with a
# published port, and its page fetched from the host.
PY_IMG=python:3.9-slim
$P image inspect "$PY_IMG" >/dev/null 2>&1 ||
  $P image bootstrap --include python3,python3-pip,python-is-python3 "$PY_IMG"
$P build -t my-web-app examples/seed
$P rm -f my-web-app-demo >/dev/null 2>&1 || true
$P run -d --name my-web-app-demo -p 8000:8000 my-web-app
trap '$P rm -f my-web-app-demo >/dev/null 2>&1; rm -rf "$SHOW"' EXIT
for _ in $(seq 50); do
  page=$(curl -fsS -m 2 http://127.0.0.1:8000/ 2>/dev/null) && break
  sleep 0.2
done
echo "GET http://127.0.0.1:8000/ ->"
echo "${page:?the page did not answer}"
