#!/usr/bin/env bash
# Install what a fresh Debian 12 machine needs for kyso, skipping what is already there.
#   scripts/bootstrap.sh run    Debian packages for the service + the Python virtual environment
#                               with kyso's devtools and web extras (`kyso dev init`, `kyso web`)
#   scripts/bootstrap.sh test   the same + the test-only packages (Ceph RADOS Gateway, Chromium for the browser tests) + PostgreSQL up,
#                               and the dev extra (devtools + test, lint and code-generation tools)
# Idempotent and quiet when nothing is missing. Needs root (or sudo) only when a package is missing.
set -euo pipefail

cd "$(dirname "$0")/.."
purpose="${1:-run}"

RUN_PACKAGES=(softhsm2 opensc poppler-utils libnss3-tools fonts-noto-core)
# The interoperability corpus (tests/interop): other signers and checkers — iText 5 and PDFBox 2
# with BouncyCastle, driven by small Java programs the tests compile (poppler and NSS are above);
# the console's browser tests (tests/web): Debian's Chromium and its driver; the operations tests:
# promtool (prometheus) for the alert rules and docker-compose to validate compose.yaml; the
# replica tests (tests/kyso/test_replicas.py): HAProxy in front of several `kyso serve`; tmux to
# drive `kyso agent` as a person would (tests/twophase/test_agent_terminal.py); curl and jq run
# docs/api.md's HTTP/JSON examples (tests/api).
TEST_PACKAGES=(radosgw ceph-mon ceph-osd ceph-common faketime stress-ng
  openjdk-17-jdk-headless libitext5-java libpdfbox2-java libbcprov-java libbcpkix-java
  chromium chromium-driver prometheus docker-compose haproxy tmux curl jq)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
  done
}

install_debian() {
  local recommends="$1"; shift
  mapfile -t missing < <(missing_packages "$@")
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $recommends "${missing[@]}" >/dev/null
  fi
}

install_debian "" "${RUN_PACKAGES[@]}"
if [ "$purpose" = "test" ]; then
  install_debian "--no-install-recommends" "${TEST_PACKAGES[@]}"
fi

# Python: a virtual environment pinned by constraints.txt, reinstalled when the inputs change.
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
fi
# The stamp holds the extra that was installed; `dev` includes `devtools`, so a test install
# also serves `run`, while a run install is completed when the tests are wanted.
stamp=.venv/.kyso-installed
extra=devtools,web
if [ "$purpose" = "test" ]; then extra=dev; fi
installed="$(cat "$stamp" 2>/dev/null || true)"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ] \
   || { [ "$installed" != "$extra" ] && [ "$installed" != "dev" ]; }; then
  echo "bootstrap: installing Python packages into .venv (kyso[$extra])"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -c constraints.txt -e ".[$extra]"
  echo "$extra" > "$stamp"
fi

if [ "$purpose" = "test" ]; then
  # The Node projects of the tests, each pinned by its lockfile: the interoperability corpus's
  # signer (@signpdf/signpdf) and the contract's tools (buf, @grpc/grpc-js, @grpc/proto-loader).
  # Debian's nodejs and npm only where no npm exists (a NodeSource nodejs bundles its own npm and
  # conflicts with Debian's npm package).
  if ! command -v npm >/dev/null 2>&1; then install_debian "" nodejs npm; fi
  for node_dir in tests/interop/node tests/api/node; do
    if { [ ! -d "$node_dir/node_modules" ] \
         || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules" ]; }; then
      echo "bootstrap: installing the Node packages of $node_dir"
      npm ci --prefix "$node_dir" --no-audit --no-fund --silent
      touch "$node_dir/node_modules"
    fi
  done
  # The persistence tests need PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth).
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
      echo "bootstrap: starting PostgreSQL"
      version="$(ls /etc/postgresql | sort -V | tail -n 1)"
      sudo_if_needed pg_ctlcluster --skip-systemctl-redirect "$version" main start
      for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
  fi
  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "bootstrap: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi
