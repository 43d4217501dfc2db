#!/usr/bin/env bash
# Install everything pallet and its tests need on Debian 12, as root. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  # runtime and images
  busybox-static mmdebstrap zstd e2fsprogs erofs-utils uidmap iproute2 procps psmisc
  libseccomp2 util-linux tini curl
  # networking (CNI plugins, firewall)
  containernetworking-plugins iptables
  # VM isolation
  qemu-system-x86 qemu-utils linux-image-cloud-amd64 gcc libc6-dev lz4
  # peers used as oracles in tests and baselines in benchmarks
  runc crun podman skopeo umoci buildah docker.io docker-registry apache2-utils hyperfine
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Subordinate ids for --userns=auto: podman's convention, the entries of the user "containers"
for f in /etc/subuid /etc/subgid; do
  grep -q '^containers:' "$f" 2>/dev/null || echo "containers:2147483647:2147483648" >> "$f"
done

# The virtualenv comes from the system's real interpreter, never a shim.
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  rm -rf .venv
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi

# The container monitor in C (like conmon, ~2 MB per container less than the Python one);
# without a compiler pallet falls back to its Python monitor.
mon_src=src/pallet/engine/cmonitor/pallet-monitor.c
if command -v cc >/dev/null 2>&1 && { [ ! -x .venv/bin/pallet-monitor ] || [ "$mon_src" -nt .venv/bin/pallet-monitor ]; }; then
  cc -O2 -Wall -o .venv/bin/pallet-monitor.tmp "$mon_src" && mv .venv/bin/pallet-monitor.tmp .venv/bin/pallet-monitor
fi

# Byte-compile pallet itself: with PYTHONDONTWRITEBYTECODE set, every command would
# otherwise compile the modules it imports anew (tens of milliseconds on `pallet run`).
.venv/bin/python -m compileall -q -j 0 src >/dev/null
