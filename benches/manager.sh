#!/usr/bin/env bash
# Many OSDs in one `osdkit manager` process against one process per OSD, real processes, one run
# on this machine (issue: hosting, `osd_manager_shared_messengers`).
#   benches/manager.sh [N]      (default 32 OSDs, mem store)
# Starts a monitor, then N OSDs in one manager with the shared messengers (the default), then
# the same with messengers per OSD, then 4 `osdkit osd` processes; prints each one's threads,
# sockets and resident memory once every OSD is up, and a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-32}
cargo build --release --quiet --bin osdkit
bin=$PWD/target/release/osdkit
work=$(mktemp -d)
trap 'for p in "$work"/*/run/*.pid; do kill -9 "$(cat "$p")" 2>/dev/null || true; done; rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cluster() { # DIR EXTRA-GLOBAL-LINES: a conf and a monitor
  local d=$1
  mkdir -p "$d"
  printf '[global]\nmon_host = v2:127.0.0.1:%s\nrun_dir = %s/run\nlog_file = %s/$name.log\nosd_manager_data = %s/$name\n%b[mon]\nmon_data = %s/mon.$id\n[osd]\nosd_objectstore = mem\n' \
    "$(port)" "$d" "$d" "$d" "$2" "$d" >"$d/osdkit.conf"
  "$bin" mon -c "$d/osdkit.conf" -i a
  # An OSD must exist in the map before it boots (`ceph osd create`).
  for i in $(seq 0 $((n > 4 ? n - 1 : 3))); do "$bin" osd create -c "$d/osdkit.conf" "$i" >/dev/null; done
}

wait_up() { # DIR COUNT
  for _ in $(seq 1 300); do
    local up
    up=$("$bin" status -c "$1/osdkit.conf" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["num_up_osds"])')
    [ "$up" = "$2" ] && return 0
    sleep 0.2
  done
  echo "only $up of $2 OSDs up" >&2
  return 1
}

footprint() { # PID...: threads sockets rss_kib, summed
  local t=0 s=0 r=0
  for p in "$@"; do
    t=$((t + $(ls "/proc/$p/task" | wc -l)))
    s=$((s + $(find "/proc/$p/fd" -lname 'socket:*' | wc -l)))
    r=$((r + $(awk '/VmRSS/ {print $2}' "/proc/$p/status")))
  done
  echo "$t $s $r"
}

manager() { # NAME EXTRA
  local d=$work/$1
  cluster "$d" "$2"
  "$bin" manager -c "$d/osdkit.conf" -i a
  for i in $(seq 0 $((n - 1))); do
    "$bin" daemon -c "$d/osdkit.conf" client.manager-a osd start "$i" >/dev/null
  done
  wait_up "$d" "$n"
  sleep 2
  read -r t s r < <(footprint "$(cat "$d/run/client.manager-a.pid")")
  echo "| $n OSDs in one manager, $1 messengers | $t | $s | $((r / 1024)) MiB |"
}

echo "| process(es) | threads | sockets | RSS |"
echo "|---|---|---|---|"
manager shared ""
manager own 'osd_manager_shared_messengers = false\n'
d=$work/processes
cluster "$d" ""
for i in 0 1 2 3; do "$bin" osd -c "$d/osdkit.conf" -i "$i"; done
wait_up "$d" 4
sleep 2
read -r t s r < <(footprint $(cat "$d"/run/osd.*.pid))
echo "| 4 osdkit osd processes | $t | $s | $((r / 1024)) MiB |"
