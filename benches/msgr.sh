#!/usr/bin/env bash
# The messenger against raw TCP, side by side in one run on this machine (issue: messenger).
#   benches/msgr.sh [SECONDS]      (default 5 s per case)
# Each case is `osdkit bench msgr` (a server process and a client process over loopback); the
# baselines are the same load over plain sockets (`--transport tcp`) and iperf3 for bandwidth.
# Prints one JSON line per case and a Markdown table with the ratios, for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
cargo build --release --quiet --bin osdkit
bin=target/release/osdkit
out=$(mktemp -d)
trap 'rm -rf "$out"; kill %1 2>/dev/null || true' EXIT

run() { # NAME ARGS...
  local name=$1
  shift
  "$bin" bench msgr --json --seconds "$secs" "$@" | tee "$out/$name.json"
}

run tcp_pingpong --mode pingpong --size 4096 --transport tcp
run msgr_pingpong --mode pingpong --size 4096
run tcp_stream_4m --mode stream --size 4M --depth 8 --transport tcp
run msgr_stream_4m --mode stream --size 4M --depth 8
run tcp_stream_4k --mode stream --size 4096 --depth 128 --transport tcp
run msgr_stream_4k --mode stream --size 4096 --depth 128
run msgr_stream_4k_8conns_inject --mode stream --size 4096 --depth 128 --conns 8 --inject-socket-failures 200

if command -v iperf3 >/dev/null; then
  port=$((20000 + RANDOM % 20000))
  iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
  sleep 0.5
  iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J >"$out/iperf3.json"
else
  echo '{"end":{"sum_received":{"bits_per_second":0}}}' >"$out/iperf3.json"
  echo "iperf3 not installed (apt-get install iperf3): no bandwidth baseline" >&2
fi

python3 - "$out" <<'EOF'
import json, sys, os
d = sys.argv[1]
r = {f[:-5]: json.load(open(os.path.join(d, f))) for f in os.listdir(d) if f.endswith('.json')}
iperf = r['iperf3']['end']['sum_received']['bits_per_second'] / 8 / 2**20
m, t = r['msgr_pingpong'], r['tcp_pingpong']
s4m, t4m = r['msgr_stream_4m'], r['tcp_stream_4m']
s4k, t4k = r['msgr_stream_4k'], r['tcp_stream_4k']
inj = r['msgr_stream_4k_8conns_inject']
rows = [
    ("4 KiB ping-pong, p50 round trip", f"{m['p50_us']:.0f} us (p99 {m['p99_us']:.0f})",
     f"raw TCP {t['p50_us']:.0f} us (p99 {t['p99_us']:.0f})", f"{m['p50_us'] / max(t['p50_us'], 1):.2f}x", "<= 1.5x"),
    ("4 MiB stream, depth 8", f"{s4m['mib_per_sec']:.0f} MiB/s",
     f"iperf3 {iperf:.0f} MiB/s, raw TCP {t4m['mib_per_sec']:.0f} MiB/s",
     f"{s4m['mib_per_sec'] / iperf:.2f}x of iperf3" if iperf else "n/a", ">= 0.8x"),
    ("4 KiB stream, depth 128", f"{s4k['msgs_per_sec']:.0f} msgs/s",
     f"raw TCP {t4k['msgs_per_sec']:.0f} msgs/s", f"{s4k['msgs_per_sec'] / max(t4k['msgs_per_sec'], 1):.2f}x", ">= 100,000/s"),
    ("4 KiB stream, 8 conns, ms_inject_socket_failures=200",
     f"{inj['msgs_per_sec']:.0f} msgs/s, {inj['messages']} msgs",
     f"{inj['injected_failures']} faults injected",
     f"lost {inj['lost']}, dup {inj['duplicated']}, reordered {inj['reordered']}", "all 0"),
]
print()
print("| case | osdkit messenger | baseline (same run) | ratio | target |")
print("|---|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")
bad = [k for k, v in r.items() if k != 'iperf3' and (v['lost'] or v['duplicated'] or v['reordered'])]
if bad:
    print("messages lost, duplicated or reordered in: " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
