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
trap 'rm -rf "$out"' EXIT

run() { # NAME ARGS...
  local name=$1
  shift
  "$bin" bench msgr --json --seconds "$secs" "$@" | tee "$out/$name.json"
}

# iperf3 before and after the cases; the better of the two is the baseline (it varies a lot
# from run to run on a shared VM, and the better one is the harder to match).
iperf() { # NAME
  if command -v iperf3 >/dev/null; then
    local port=$((20000 + RANDOM % 20000))
    iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
    sleep 0.5
    iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J >"$out/$1.json"
    wait
  else
    echo '{"end":{"sum_received":{"bits_per_second":0}}}' >"$out/$1.json"
    echo "iperf3 not installed (apt-get install iperf3): no bandwidth baseline" >&2
  fi
}

iperf iperf3_a
# Ping-pong latency is the most sensitive to the neighbours' load: three alternating pairs,
# the median of each side's p50 is compared.
for i in 1 2 3; do
  run tcp_pingpong_$i --mode pingpong --size 4096 --transport tcp
  run msgr_pingpong_$i --mode pingpong --size 4096
done
run tcp_stream_4m --mode stream --size 4M --depth 8 --transport tcp
run msgr_stream_4m --mode stream --size 4M --depth 8
run tcp_stream_4k --mode stream --size 4096 --depth 128 --transport tcp
run msgr_stream_4k --mode stream --size 4096 --depth 128
run msgr_stream_4k_8conns_inject --mode stream --size 4096 --depth 128 --conns 8 --inject-socket-failures 200

iperf iperf3_b

python3 - "$out" <<'EOF'
import json, sys, os
d = sys.argv[1]
r = {f[:-5]: json.load(open(os.path.join(d, f))) for f in os.listdir(d) if f.endswith('.json')}
iperf = max(r[k]['end']['sum_received']['bits_per_second'] for k in ('iperf3_a', 'iperf3_b')) / 8 / 2**20
def median_run(prefix):
    runs = sorted((r[f"{prefix}_{i}"] for i in (1, 2, 3)), key=lambda v: v['p50_us'])
    return runs[1]
m, t = median_run('msgr_pingpong'), median_run('tcp_pingpong')
s4m, t4m = r['msgr_stream_4m'], r['tcp_stream_4m']
s4k, t4k = r['msgr_stream_4k'], r['tcp_stream_4k']
inj = r['msgr_stream_4k_8conns_inject']
rows = [
    ("4 KiB ping-pong, p50 round trip (median of 3 alternating runs)", f"{m['p50_us']:.0f} us (p99 {m['p99_us']:.0f})",
     f"raw TCP {t['p50_us']:.0f} us (p99 {t['p99_us']:.0f})", f"{m['p50_us'] / max(t['p50_us'], 1):.2f}x", "<= 1.5x"),
    ("4 MiB stream, depth 8", f"{s4m['mib_per_sec']:.0f} MiB/s",
     f"iperf3 {iperf:.0f} MiB/s, raw TCP {t4m['mib_per_sec']:.0f} MiB/s",
     (f"{s4m['mib_per_sec'] / iperf:.2f}x of iperf3, " if iperf else "") + f"{s4m['mib_per_sec'] / max(t4m['mib_per_sec'], 1):.2f}x of raw TCP", ">= 0.8x of iperf3"),
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
bad = [k for k, v in r.items() if not k.startswith('iperf3') and (v['lost'] or v['duplicated'] or v['reordered'])]
if bad:
    print("messages lost, duplicated or reordered in: " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
