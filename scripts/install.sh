#!/usr/bin/env bash
# Installs osdkit's C/C++ face into PREFIX:
#   PREFIX/lib/libosdkit.so, PREFIX/lib/libosdkit.a
#   PREFIX/include/osdkit.h, PREFIX/include/osdkit.hpp, osdkit_rados.hpp and
#   osdkit_hosting.hpp (C++17 RAII wrappers)
#   PREFIX/lib/pkgconfig/osdkit.pc
#   PREFIX/lib/cmake/osdkit/osdkitConfig.cmake, osdkitConfigVersion.cmake
#
#   scripts/install.sh PREFIX
#
# Builds the release library first (`cargo build --release -p osdkit --lib`). With
# OSDKIT_PROFILE=debug it installs the debug build instead (scripts/c-tests.sh uses that to
# check the installed files without a release build). DESTDIR is honoured for staging.
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 PREFIX" >&2
  exit 2
fi
cd "$(dirname "$0")/.."

prefix=$1
case $prefix in
  /*) ;;
  *) prefix=$PWD/$prefix ;;
esac
prefix=${prefix%/}
dest=${DESTDIR:-}${prefix}

profile=${OSDKIT_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
case $profile in
  release) cargo build --release --quiet -p osdkit --lib ;;
  debug) cargo build --quiet -p osdkit --lib ;;
  *)
    echo "OSDKIT_PROFILE must be release or debug, not '$profile'" >&2
    exit 2
    ;;
esac
libdir=$target/$profile

# The package's version (from Cargo.toml, via cargo so a workspace-inherited version works).
version=$(cargo pkgid -p osdkit | sed -E 's/.*[#@]([0-9][^#@]*)$/\1/')
if ! [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]]; then
  echo "could not read the version from Cargo.toml (got '$version')" >&2
  exit 1
fi
# The committed header must describe the same version.
hv=$(awk '/^#define OSDKIT_VERSION_(MAJOR|MINOR|PATCH) /{v = v (v == "" ? "" : ".") $3} END{print v}' include/osdkit.h)
if [ "$hv" != "${version%%[-+]*}" ]; then
  echo "include/osdkit.h says version $hv but Cargo.toml says $version: run scripts/gen-header.sh" >&2
  exit 1
fi
sizeof_void_p=$(getconf LONG_BIT)
sizeof_void_p=$((sizeof_void_p / 8))

subst() {
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@SIZEOF_VOID_P@|$sizeof_void_p|g" "$1" >"$2"
  if grep -q '@[A-Z_]*@' "$2"; then
    echo "unsubstituted placeholder left in $2" >&2
    exit 1
  fi
}

install -d "$dest/lib" "$dest/include" "$dest/lib/pkgconfig" "$dest/lib/cmake/osdkit"
install -m 0755 "$libdir/libosdkit.so" "$dest/lib/libosdkit.so"
install -m 0644 "$libdir/libosdkit.a" "$dest/lib/libosdkit.a"
install -m 0644 include/osdkit.h "$dest/include/osdkit.h"
install -m 0644 bindings/cpp/osdkit.hpp "$dest/include/osdkit.hpp"
install -m 0644 bindings/cpp/osdkit_rados.hpp "$dest/include/osdkit_rados.hpp"
install -m 0644 bindings/cpp/osdkit_hosting.hpp "$dest/include/osdkit_hosting.hpp"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
subst bindings/c/osdkit.pc.in "$tmp/osdkit.pc"
subst bindings/c/osdkitConfig.cmake.in "$tmp/osdkitConfig.cmake"
subst bindings/c/osdkitConfigVersion.cmake.in "$tmp/osdkitConfigVersion.cmake"
install -m 0644 "$tmp/osdkit.pc" "$dest/lib/pkgconfig/osdkit.pc"
install -m 0644 "$tmp/osdkitConfig.cmake" "$tmp/osdkitConfigVersion.cmake" "$dest/lib/cmake/osdkit/"

echo "installed osdkit $version ($profile) into ${DESTDIR:+$DESTDIR }$prefix"
