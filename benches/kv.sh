#!/usr/bin/env bash
# The kv store's commit path against the disk under it, one run on this machine (issue: the
# durable path). First a probe of what the disk allows: 4 KiB `pwrite` + `fdatasync` of an
# already written file, 2,000 times (p50 and p90). Then one `osdkit osd` on the kv store (pool
# size 1) under `osdkit bench osd`, 4 KiB writes for SECONDS at 16 and at 1 in flight, with the
# store's own counters from `perf dump kvstore`: time per committed batch, transactions per
# batch, time per log record (append + fdatasync).
#   benches/kv.sh [SECONDS] [BIN]      (default 10 s, this tree's release build)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
if [ -n "${2:-}" ]; then
  bin=$2
else
  cargo build --release --quiet --bin osdkit
  bin=$PWD/target/release/osdkit
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/osdkit-kv.XXXXXX")
trap '"$bin" stop --dir "$work/c" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

python3 - "$work/probe" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"\0" * (1 << 20)); os.fsync(fd)
buf, lat = b"x" * 4096, []
for i in range(2000):
    t = time.perf_counter(); os.pwrite(fd, buf, (i % 256) * 4096); os.fdatasync(fd); lat.append(time.perf_counter() - t)
lat.sort()
print("disk: 4 KiB pwrite + fdatasync: p50 %.0f µs, p90 %.0f µs" % (lat[1000] * 1e6, lat[1800] * 1e6))
EOF

out=$("$bin" vstart --dir "$work/c" --osds 1 --store kv --size 1 2>&1) || { echo "$out" >&2; exit 1; }
echo "| in flight | IOPS | avg latency | per batch | txns per batch | per log record |"
echo "|---|---|---|---|---|---|"
for t in 16 1; do
  r=$("$bin" bench osd -c "$work/c/osdkit.conf" -p data -b 4K -t "$t" "$secs" write --json 2>/dev/null)
  p=$("$bin" daemon -c "$work/c/osdkit.conf" osd.0 perf dump kvstore)
  # The counters are cumulative: the row at 1 in flight subtracts what the row at 16 counted.
  python3 - "$t" "$r" "$p" "$work/prev.json" <<'EOF'
import json, os, sys
t, r, p, prev_path = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])["kvstore"], sys.argv[4]
prev = json.load(open(prev_path)) if os.path.exists(prev_path) else {}
json.dump(p, open(prev_path, "w"))
def d(name, field):  # absent in builds before the log: 0
    return p.get(name, {}).get(field, 0) - prev.get(name, {}).get(field, 0)
per = lambda n: 1e6 * d(n, "sum") / max(1, d(n, "avgcount"))
print("| %s | %s | %.0f µs | %.0f µs | %.1f | %.0f µs |" % (
    t, format(round(r["iops"]), ","), r["avg_latency"] * 1e6, per("kv_commit_latency"),
    d("kv_batch_size", "sum") / max(1, d("kv_batch_size", "avgcount")), per("kv_wal_latency")))
EOF
done
