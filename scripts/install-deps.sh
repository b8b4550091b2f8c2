#!/usr/bin/env bash
# Installs what the test command needs on a fresh Debian machine: the real Ceph CLI (for the
# admin-socket compatibility tests), ceph-mon, ceph-osd and python3-rados (for the tests
# against Ceph 16), C/C++ compilers, and a venv with maturin and pytest.
# Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v ceph >/dev/null || need+=(ceph-common)
command -v ceph-mon >/dev/null || need+=(ceph-mon)
command -v ceph-osd >/dev/null || need+=(ceph-osd)
# python-rados for Debian's python3: the comparison test runs one script on it and on osdkit.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import rados" 2>/dev/null || need+=(python3-rados)
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v nm >/dev/null || need+=(binutils)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cmake >/dev/null || need+=(cmake make)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
venv=${OSDKIT_VENV:-target/venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import maturin, pytest" 2>/dev/null && ! [ -x "$venv/bin/maturin" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.9.4,<2" "pytest>=7"
fi
"$venv/bin/python" -c "import pytest" 2>/dev/null || "$venv/bin/pip" install -q --disable-pip-version-check "pytest>=7"
[ -x "$venv/bin/maturin" ] || "$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.9.4,<2"
