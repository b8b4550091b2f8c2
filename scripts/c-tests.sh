#!/usr/bin/env bash
# The C/C++ face's tests. Run from anywhere after `cargo build -p osdkit --lib`
# (scripts/test.sh does that first):
#   - every tests/c/test_*.c built as C11 and again as C++17 against include/osdkit.h and
#     target/debug/libosdkit.so, then run;
#   - the C++ RAII wrapper's test (tests/c/test_*.cpp) built as C++17 and run;
#   - the C tests (and the C++ one) built with AddressSanitizer against the static library
#     target/debug/libosdkit.a and run with LeakSanitizer on;
#   - tests/c/asok_host.c built to target/ctests/asok_host (the Python CLI-compat tests run it);
#   - the examples in bindings/c/examples and bindings/cpp built (those that stop by themselves
#     are also run); msgr_echo_server run in the background with msgr_client (C, then the C++
#     build) against it, then stopped with SIGTERM;
#   - scripts/install.sh into a scratch prefix (debug library), and hello_daemon.c built with
#     `pkg-config --cflags --libs osdkit` against it (shared and static) and run; where cmake is
#     installed, also through find_package(osdkit) and both imported targets.
# Outputs (binaries, one log per test) go to target/ctests/.
# Prints one line per test and ends with "N passed, M failed"; exits non-zero if M > 0.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac
libdir=$target/debug
out=$target/ctests
mkdir -p "$out"

if [ ! -f include/osdkit.h ]; then
  echo "include/osdkit.h is missing: run scripts/gen-header.sh" >&2
  exit 1
fi
if [ ! -f "$libdir/libosdkit.so" ] || [ ! -f "$libdir/libosdkit.a" ]; then
  echo "$libdir/libosdkit.{so,a} missing: run cargo build -p osdkit --lib" >&2
  exit 1
fi

CC=${CC:-gcc}
CXX=${CXX:-g++}
warn=(-Wall -Wextra -Werror)
inc=(-Iinclude -Itests/c -Ibindings/cpp)
shared=(-L"$libdir" -losdkit -Wl,-rpath,"$libdir" -lpthread)
static=("$libdir/libosdkit.a" -lpthread -ldl -lm)
asan=(-fsanitize=address -fno-omit-frame-pointer)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/osdkit-ctests.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# LeakSanitizer works in this environment (it needs to ptrace the process; checked with a
# deliberate leak), so leaks are errors. abort_on_error makes any ASan report fail the run even
# if the test exits 0. The Rust library is built without frame pointers, so malloc stacks are
# taken with the slow unwinder (fast_unwind_on_malloc=0): otherwise they stop at the first Rust
# frame and neither the reports nor the suppressions below can name the leaking function.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0:strict_string_checks=1:detect_stack_use_after_return=1}
# Known leaks in the library, one suppression per line, each naming its bug (none today).
cat >"$tmp/lsan.supp" <<'SUPP'
SUPP
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$tmp/lsan.supp:print_suppressions=0}
export TMPDIR=$tmp
run_timeout=${OSDKIT_CTEST_TIMEOUT:-180}

passed=0
failed=0
failures=()

# check NAME CMD...: one test; its output goes to $out/NAME.log, shown on failure.
check() {
  local name=$1
  shift
  local log
  log=$out/$(printf '%s' "$name" | tr -c 'A-Za-z0-9_.+-' '_').log
  local start=$SECONDS rc=0
  # Not `if "$@"`: bash ignores `set -e` inside a command run as a condition, and the steps
  # below rely on it. The subshell turns errexit back on; its status is collected here.
  set +e
  (
    set -e
    "$@"
  ) >"$log" 2>&1
  rc=$?
  set -e
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
    printf 'PASS  %-40s (%ds)\n' "$name" $((SECONDS - start))
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf 'FAIL  %-40s (%ds)\n' "$name" $((SECONDS - start))
    sed 's/^/    | /' "$log" | tail -40
  fi
}

# build_run NAME BIN RUN_ARGS -- COMPILE...: compile, then run the binary with a timeout.
build_run() {
  local name=$1 bin=$2
  shift 2
  local -a runargs=()
  while [ "$1" != "--" ]; do
    runargs+=("$1")
    shift
  done
  shift
  "$@" -o "$bin" && timeout "$run_timeout" "$bin" ${runargs[@]+"${runargs[@]}"}
}

ctests=(tests/c/test_*.c)
cxxtests=(tests/c/test_*.cpp)

for src in "${ctests[@]}"; do
  t=$(basename "$src" .c)
  check "$t [c11]" build_run "$t" "$out/$t" -- \
    "$CC" -std=c11 "${warn[@]}" -g "${inc[@]}" "$src" "${shared[@]}"
done
for src in "${ctests[@]}"; do
  t=$(basename "$src" .c)
  check "$t [c++17]" build_run "$t" "$out/$t-cxx" -- \
    "$CXX" -x c++ -std=c++17 "${warn[@]}" -g "${inc[@]}" "$src" -x none "${shared[@]}"
done
for src in "${cxxtests[@]}"; do
  [ -e "$src" ] || continue
  t=$(basename "$src" .cpp)
  check "$t [c++17]" build_run "$t" "$out/$t" -- \
    "$CXX" -std=c++17 "${warn[@]}" -g "${inc[@]}" "$src" "${shared[@]}"
done
for src in "${ctests[@]}"; do
  t=$(basename "$src" .c)
  check "$t [asan, static]" build_run "$t" "$out/$t-asan" -- \
    "$CC" -std=c11 "${warn[@]}" -g "${asan[@]}" "${inc[@]}" "$src" "${static[@]}"
done
for src in "${cxxtests[@]}"; do
  [ -e "$src" ] || continue
  t=$(basename "$src" .cpp)
  check "$t [asan, static]" build_run "$t" "$out/$t-asan" -- \
    "$CXX" -std=c++17 "${warn[@]}" -g "${asan[@]}" "${inc[@]}" "$src" "${static[@]}"
done

# The C host for the Python CLI-compat tests: built (as C and as C++), not run here.
check "asok_host [build]" \
  "$CC" -std=c11 "${warn[@]}" -g "${inc[@]}" tests/c/asok_host.c "${shared[@]}" -o "$out/asok_host"
check "asok_host [build c++17]" \
  "$CXX" -x c++ -std=c++17 "${warn[@]}" -g "${inc[@]}" tests/c/asok_host.c -x none "${shared[@]}" \
  -o "$out/asok_host-cxx"

# Examples. Those listed in run_args stop by themselves with these arguments ({dir}: a fresh
# directory); the others are only compiled.
declare -A run_args=(
  [hello_daemon]="{dir} 1"
)
example_run() {
  local name=$1 bin=$2
  shift 2
  "$@" -o "$bin"
  if [ -n "${run_args[$name]:-}" ]; then
    local d
    d=$(mktemp -d "$tmp/example.XXXXXX")
    # shellcheck disable=SC2086 # the argument list is meant to be split
    timeout "$run_timeout" "$bin" ${run_args[$name]//\{dir\}/$d}
  fi
}
for src in bindings/c/examples/*.c; do
  [ -e "$src" ] || continue
  e=$(basename "$src" .c)
  check "example $e [c11]" example_run "$e" "$out/example-$e" \
    "$CC" -std=c11 "${warn[@]}" -g "${inc[@]}" "$src" "${shared[@]}"
  check "example $e [c++17]" example_run "$e" "$out/example-$e-cxx" \
    "$CXX" -x c++ -std=c++17 "${warn[@]}" -g "${inc[@]}" "$src" -x none "${shared[@]}"
done
for src in bindings/cpp/*.cpp; do
  [ -e "$src" ] || continue
  e=$(basename "$src" .cpp)
  check "example $e [c++17]" example_run "$e" "$out/example-$e" \
    "$CXX" -std=c++17 "${warn[@]}" -g "${inc[@]}" "$src" "${shared[@]}"
done
# The messenger examples together: the echo server in the background (it writes its address
# to a file), the client (C build, then C++ build) against it, then SIGTERM to the server,
# which must exit 0. The server is killed if anything fails on the way.
msgr_echo_check() {
  local server=$out/example-msgr_echo_server client=$out/example-msgr_client
  local d pid rc=0
  d=$(mktemp -d "$tmp/msgr-echo.XXXXXX")
  "$server" 127.0.0.1:0 "$d/addr" >"$d/server.log" 2>&1 &
  pid=$!
  # shellcheck disable=SC2064 # expand now: the trap must name this server
  trap "kill $pid 2>/dev/null || true" EXIT
  local i
  for i in $(seq 1 200); do
    [ -s "$d/addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ ! -s "$d/addr" ]; then
    echo "msgr_echo_server did not write its address"
    cat "$d/server.log"
    return 1
  fi
  local addr
  addr=$(cat "$d/addr")
  echo "server at $addr"
  timeout "$run_timeout" "$client" "$addr" 500 4096
  timeout "$run_timeout" "$client-cxx" "$addr" 50 300000
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  trap - EXIT
  cat "$d/server.log"
  [ $rc -eq 0 ] || { echo "msgr_echo_server exited with $rc"; return 1; }
  grep -q "echoed 1100 messages" "$d/server.log"
}
check "example msgr_echo_server + msgr_client [run]" msgr_echo_check

# The hosting example: `osdkit mon` started here, hosted_osds (it daemonizes) hosting osd.0
# and osd.1 of it; both up in `osdkit status`, the example's own admin command answers on
# osd.0's socket; SIGTERM stops it cleanly (the sockets go), then the monitor is stopped.
hosted_osds_check() {
  local bin=$out/example-hosted_osds osdkit=$target/debug/osdkit
  [ -x "$osdkit" ] || { echo "$osdkit is missing: run cargo build -p osdkit"; return 1; }
  local d port pid i
  d=$(mktemp -d "$tmp/hosted.XXXXXX")
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf '[global]\nmon_host = v2:127.0.0.1:%s\nrun_dir = %s/run\nlog_file = %s/$name.log\n[mon]\nmon_data = %s/mon.$id\n[osd]\nosd_objectstore = mem\n' \
    "$port" "$d" "$d" "$d" >"$d/osdkit.conf"
  "$osdkit" mon -c "$d/osdkit.conf" -i a
  "$osdkit" osd create -c "$d/osdkit.conf" 0 >/dev/null
  "$osdkit" osd create -c "$d/osdkit.conf" 1 >/dev/null
  # shellcheck disable=SC2064 # expand now: the trap must name these files
  trap "kill \$(cat '$d/run/mon.a.pid' '$d/hosted.pid' 2>/dev/null) 2>/dev/null || true" EXIT
  timeout "$run_timeout" "$bin" "$d/osdkit.conf" "$d/hosted.pid"
  pid=$(cat "$d/hosted.pid")
  "$osdkit" status -c "$d/osdkit.conf" -f json | tee "$d/status.json"
  grep -q '"num_up_osds":2' "$d/status.json"
  "$osdkit" daemon "$d/run/ceph-osd.0.asok" hosted | tee "$d/hosted.json"
  grep -q "\"host_pid\": $pid" "$d/hosted.json"
  kill -TERM "$pid"
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then echo "hosted_osds did not stop on SIGTERM"; return 1; fi
  [ ! -e "$d/run/ceph-osd.0.asok" ] && [ ! -e "$d/run/ceph-osd.1.asok" ] && [ ! -e "$d/hosted.pid" ]
  grep -q "marked down" "$d/osd.0.log"
  kill -TERM "$(cat "$d/run/mon.a.pid")"
  trap - EXIT
}
check "example hosted_osds + osdkit mon [run]" hosted_osds_check

# The C++ headers are self-contained and clean under strict warnings.
for h in osdkit.hpp osdkit_rados.hpp osdkit_hosting.hpp; do
  check "$h [self-contained]" \
    "$CXX" -std=c++17 "${warn[@]}" -Wpedantic -Wshadow -Wconversion -Iinclude -Ibindings/cpp -fsyntax-only \
    -x c++ "bindings/cpp/$h"
done

# Install into a scratch prefix (the debug library, to avoid a release build here) and build
# the example the way a user would: with pkg-config, against the installed files only.
install_check() {
  local prefix=$tmp/prefix
  OSDKIT_PROFILE=debug scripts/install.sh "$prefix"
  for f in lib/libosdkit.so lib/libosdkit.a include/osdkit.h include/osdkit.hpp include/osdkit_rados.hpp include/osdkit_hosting.hpp \
    lib/pkgconfig/osdkit.pc lib/cmake/osdkit/osdkitConfig.cmake lib/cmake/osdkit/osdkitConfigVersion.cmake; do
    [ -f "$prefix/$f" ] || { echo "not installed: $f"; return 1; }
  done
  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
  local want
  want=$(awk '/^#define OSDKIT_VERSION_(MAJOR|MINOR|PATCH) /{v = v (v == "" ? "" : ".") $3} END{print v}' include/osdkit.h)
  [ "$(pkg-config --modversion osdkit)" = "$want" ] || {
    echo "pkg-config version $(pkg-config --modversion osdkit) != $want"
    return 1
  }
  local d
  d=$(mktemp -d "$tmp/installed.XXXXXX")
  # shellcheck disable=SC2046 # pkg-config output is meant to be split
  "$CC" -std=c11 "${warn[@]}" bindings/c/examples/hello_daemon.c $(pkg-config --cflags --libs osdkit) \
    -Wl,-rpath,"$prefix/lib" -o "$out/hello_daemon-installed"
  # grep reads all of ldd's output: with pipefail, `grep -q` leaving at the first match could
  # fail the pipeline with SIGPIPE on ldd (a CI run failed this step so, printing nothing).
  ldd "$out/hello_daemon-installed" | grep "$prefix/lib/libosdkit.so" >/dev/null
  timeout "$run_timeout" "$out/hello_daemon-installed" "$d" 1
  # Static linking with the flags pkg-config gives for it.
  # shellcheck disable=SC2046
  "$CC" -std=c11 "${warn[@]}" bindings/c/examples/hello_daemon.c $(pkg-config --cflags osdkit) \
    "$prefix/lib/libosdkit.a" $(pkg-config --static --libs osdkit | sed 's/-losdkit//') \
    -o "$out/hello_daemon-installed-static"
  if ldd "$out/hello_daemon-installed-static" | grep libosdkit >/dev/null; then
    echo "static build still links libosdkit.so"
    return 1
  fi
  timeout "$run_timeout" "$out/hello_daemon-installed-static" "$d" 1
}
if command -v pkg-config >/dev/null; then
  check "install.sh + pkg-config build" install_check
else
  echo "SKIP  install.sh + pkg-config build (pkg-config not installed)"
fi

# The installed CMake package: find_package with a version, both imported targets, and a
# version it must refuse. Only where cmake is installed (scripts/install-deps.sh does not
# install it).
cmake_check() {
  local prefix=$tmp/prefix proj=$tmp/cmake-consumer
  [ -f "$prefix/lib/cmake/osdkit/osdkitConfig.cmake" ] || OSDKIT_PROFILE=debug scripts/install.sh "$prefix"
  mkdir -p "$proj"
  cat >"$proj/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.13)
project(osdkit_consumer C CXX)
find_package(osdkit \${WANT} REQUIRED)
add_executable(hello_shared "$root/bindings/c/examples/hello_daemon.c")
target_link_libraries(hello_shared PRIVATE osdkit::osdkit)
add_executable(hello_static "$root/bindings/c/examples/hello_daemon.c")
target_link_libraries(hello_static PRIVATE osdkit::osdkit_static)
add_executable(test_cpp "$root/tests/c/test_cpp.cpp")
target_include_directories(test_cpp PRIVATE "$root/tests/c")
set_target_properties(test_cpp PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
target_link_libraries(test_cpp PRIVATE osdkit::osdkit)
EOF
  local major minor
  major=$(awk '/^#define OSDKIT_VERSION_MAJOR /{print $3}' include/osdkit.h)
  minor=$(awk '/^#define OSDKIT_VERSION_MINOR /{print $3}' include/osdkit.h)
  cmake -S "$proj" -B "$proj/build" -DWANT="$major.$minor" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_RPATH="$prefix/lib" >/dev/null
  cmake --build "$proj/build" -j 2 >/dev/null
  ldd "$proj/build/hello_shared" | grep "$prefix/lib/libosdkit.so" >/dev/null
  if ldd "$proj/build/hello_static" | grep libosdkit >/dev/null; then
    echo "osdkit::osdkit_static links the shared library"
    return 1
  fi
  local d
  d=$(mktemp -d "$tmp/cmake-run.XXXXXX")
  timeout "$run_timeout" "$proj/build/hello_shared" "$d" 0.2
  timeout "$run_timeout" "$proj/build/hello_static" "$d" 0.2
  timeout "$run_timeout" "$proj/build/test_cpp"
  if cmake -S "$proj" -B "$proj/build-too-new" -DWANT="$((major + 1)).0" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
    echo "find_package(osdkit $((major + 1)).0) accepted version $major.$minor"
    return 1
  fi
}
if command -v cmake >/dev/null; then
  check "install.sh + cmake find_package" cmake_check
else
  echo "SKIP  install.sh + cmake find_package (cmake not installed)"
fi

echo
if [ $failed -gt 0 ]; then
  echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
