#!/usr/bin/env bash
# benches/vs_ceph.sh: osdkit against Ceph 16 (Debian's ceph-mon/ceph-osd/ceph-mgr, memstore),
# side by side in one run on this machine: the same rados-bench-like cases on a throwaway Ceph
# cluster (rados bench) and on a throwaway osdkit cluster (osdkit bench osd), mem and kv stores.
#
#   benches/vs_ceph.sh [--osds N] [--size S] [--seconds SECS] [--cases LIST] [--ms-threads T]
#
# --ms-threads T sets ms_async_op_threads to T on both sides (default: each side's default, 3).
# --osdkit-set KEY=VALUE (repeatable) sets an option of the osdkit cluster only (vstart -o).
# --prefault BYTES, --prefault-frames BYTES: memstore_prefault_bytes and
# memstore_prefault_frame_bytes of the osdkit mem cluster (default: a quarter and a half of the
# memory available once Ceph is stopped, the second at most 2 GiB per second of a case; 0: none).
# w4m16 then first runs on a mem cluster without them, reported as its own row.
# LIST is comma separated, from w4k16,w4k1,seq4k16,w4m16 (default all). Nothing outside a temp
# dir is touched (no /etc/ceph, /var/lib/ceph, systemd or root); every daemon started is killed
# and the temp dirs removed on any exit.
set -euo pipefail

CMDLINE="$0${*:+ $*}"
OSDS=1
SIZE=1
SECS=10
MS_THREADS=
OSDKIT_SET=()
PREFAULT=auto
PREFAULT_FRAMES=auto
CASES="w4k16,w4k1,seq4k16,w4m16"
ALL_CASES="w4k16 w4k1 seq4k16 w4m16"

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
}
die() {
    echo "vs_ceph: error: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --osds) OSDS="${2:?--osds needs a value}"; shift 2 ;;
    --size) SIZE="${2:?--size needs a value}"; shift 2 ;;
    --seconds) SECS="${2:?--seconds needs a value}"; shift 2 ;;
    --cases) CASES="${2:?--cases needs a value}"; shift 2 ;;
    --ms-threads) MS_THREADS="${2:?--ms-threads needs a value}"; shift 2 ;;
    --osdkit-set) OSDKIT_SET+=(-o "${2:?--osdkit-set needs KEY=VALUE}"); shift 2 ;;
    --prefault) PREFAULT="${2:?--prefault needs a value}"; shift 2 ;;
    --prefault-frames) PREFAULT_FRAMES="${2:?--prefault-frames needs a value}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ "$OSDS" =~ ^[1-9][0-9]*$ ]] || die "--osds must be a positive integer (got $OSDS)"
[[ "$SIZE" =~ ^[1-9][0-9]*$ ]] || die "--size must be a positive integer (got $SIZE)"
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a positive integer (got $SECS)"
[ "$PREFAULT" = auto ] || [[ "$PREFAULT" =~ ^[0-9]+$ ]] || die "--prefault must be a byte count or auto (got $PREFAULT)"
[ "$PREFAULT_FRAMES" = auto ] || [[ "$PREFAULT_FRAMES" =~ ^[0-9]+$ ]] ||
    die "--prefault-frames must be a byte count or auto (got $PREFAULT_FRAMES)"
[ -z "$MS_THREADS" ] || [[ "$MS_THREADS" =~ ^[1-9][0-9]*$ ]] || die "--ms-threads must be a positive integer (got $MS_THREADS)"
[ "$SIZE" -le "$OSDS" ] || die "--size $SIZE needs at least $SIZE OSDs (got --osds $OSDS)"
CASE_LIST=()
IFS=',' read -r -a _cases <<<"$CASES"
for c in "${_cases[@]}"; do
    case " $ALL_CASES " in
    *" $c "*) CASE_LIST+=("$c") ;;
    *) die "unknown case '$c' (known: ${ALL_CASES// /,})" ;;
    esac
done
[ "${#CASE_LIST[@]}" -gt 0 ] || die "--cases is empty"

for tool in ceph-mon ceph-osd ceph-mgr monmaptool ceph rados cargo jq uuidgen; do
    command -v "$tool" >/dev/null || die "$tool not found in PATH"
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OSDKIT="$ROOT/target/release/osdkit"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/vs_ceph.XXXXXX")"
CEPH_DIR="$WORK/ceph"
CEPH_PIDS=()
OSDKIT_DIRS=()
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# SIGKILL, not SIGTERM: a memstore OSD saves every object to its data dir on a clean shutdown,
# which takes long and is pointless for a throwaway cluster.
ceph_kill() {
    if [ "${#CEPH_PIDS[@]}" -gt 0 ]; then
        kill -KILL "${CEPH_PIDS[@]}" 2>/dev/null || true
        wait "${CEPH_PIDS[@]}" 2>/dev/null || true
    fi
    CEPH_PIDS=()
}

# Runs a long command in the background and waits for it, so a signal is handled at once (bash
# defers traps until a foreground child exits); cleanup kills it.
CUR_PID=""
run() {
    local rc=0
    "$@" &
    CUR_PID=$!
    wait "$CUR_PID" || rc=$?
    CUR_PID=""
    return "$rc"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ -n "$CUR_PID" ]; then
        kill -TERM "$CUR_PID" 2>/dev/null
        wait "$CUR_PID" 2>/dev/null
    fi
    for d in "${OSDKIT_DIRS[@]}"; do
        [ -d "$d" ] && "$OSDKIT" stop --dir "$d" >/dev/null 2>&1
        # Belt and braces: anything with a pid file under the dir that still runs.
        for pf in "$d"/run/*.pid; do
            [ -f "$pf" ] || continue
            local p
            p="$(cat "$pf" 2>/dev/null)"
            [ -n "$p" ] && grep -qF "$d" "/proc/$p/cmdline" 2>/dev/null && kill -9 "$p" 2>/dev/null
        done
    done
    ceph_kill
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "vs_ceph: interrupted" >&2; exit 130' INT TERM

# A free loopback TCP port: random in 20000..59999, checked by binding it (python) and by ss.
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if python3 - "$port" 2>/dev/null <<'EOF'; then
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()
EOF
            if ! ss -Htln 2>/dev/null | awk '{print $4}' | grep ":$port\$" >/dev/null; then
                echo "$port"
                return 0
            fi
        fi
    done
    die "no free port found on 127.0.0.1"
}

log_tail() { # file
    echo "---- last lines of $1 ----" >&2
    tail -n 40 "$1" >&2 2>/dev/null || echo "(no log)" >&2
    echo "----" >&2
}

# ---------------------------------------------------------------------------------------------
# Ceph side
# ---------------------------------------------------------------------------------------------
CEPH_CONF_FILE="$CEPH_DIR/ceph.conf"
export CEPH_CONF="$CEPH_CONF_FILE"
CEPH=(ceph -c "$CEPH_CONF_FILE" --connect-timeout 30)
RADOS=(rados -c "$CEPH_CONF_FILE")

# Starts a ceph daemon in the foreground under our control (so its pid is ours), checks it stays up.
start_ceph_daemon() { # name log args...
    local name="$1" log="$2"
    shift 2
    "$@" --foreground >"$CEPH_DIR/$name.stdout" 2>&1 &
    local pid=$!
    CEPH_PIDS+=("$pid")
    sleep 0.5
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "vs_ceph: $name failed to start: $*" >&2
        log_tail "$CEPH_DIR/$name.stdout"
        log_tail "$log"
        die "$name did not start"
    fi
}

ceph_check_alive() {
    for p in "${CEPH_PIDS[@]}"; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "vs_ceph: a Ceph daemon (pid $p) died" >&2
            for f in "$CEPH_DIR"/log/*.log "$CEPH_DIR"/*.stdout; do [ -f "$f" ] && log_tail "$f"; done
            die "Ceph daemon died"
        fi
    done
}

ceph_start() {
    mkdir -p "$CEPH_DIR"/{run,log}
    local port fsid
    port="$(free_port)"
    fsid="$(uuidgen)"
    cat >"$CEPH_CONF_FILE" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$port]
public network = 127.0.0.0/8
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = none
auth service required = none
auth client required = none
keyring = $CEPH_DIR/keyring
run dir = $CEPH_DIR/run
admin socket = $CEPH_DIR/run/\$name.asok
pid file = $CEPH_DIR/run/\$name.pid
log file = $CEPH_DIR/log/\$name.log
log to stderr = false
err to stderr = true
mon cluster log file = $CEPH_DIR/log/cluster.log
log to syslog = false
crash dir = $CEPH_DIR/crash
exporter sock dir = $CEPH_DIR/run
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
osd pool default size = $SIZE
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon warn on insecure global id reclaim allowed = false
# debug logging off everywhere (the comparison must be fair to Ceph)
debug default = 0/0
debug none = 0/0
debug lockdep = 0/0
debug context = 0/0
debug crush = 0/0
debug mds = 0/0
debug buffer = 0/0
debug timer = 0/0
debug filer = 0/0
debug striper = 0/0
debug objecter = 0/0
debug rados = 0/0
debug rbd = 0/0
debug journaler = 0/0
debug objectcacher = 0/0
debug client = 0/0
debug osd = 0/0
debug optracker = 0/0
debug objclass = 0/0
debug filestore = 0/0
debug journal = 0/0
debug ms = 0/0
debug mon = 0/0
debug monc = 0/0
debug paxos = 0/0
debug tp = 0/0
debug auth = 0/0
debug crypto = 0/0
debug finisher = 0/0
debug heartbeatmap = 0/0
debug perfcounter = 0/0
debug asok = 0/0
debug throttle = 0/0
debug refs = 0/0
debug compressor = 0/0
debug bluestore = 0/0
debug bluefs = 0/0
debug bdev = 0/0
debug kstore = 0/0
debug rocksdb = 0/0
debug memdb = 0/0
debug memstore = 0/0
debug fuse = 0/0
debug mgr = 0/0
debug mgrc = 0/0
debug dpdk = 0/0
debug eventtrace = 0/0
debug prioritycache = 0/0
debug bluestore = 0/0

[mon]
mon data = $CEPH_DIR/mon.\$id
mon initial members = a
mon pg warn min per osd = 0
mon max pg per osd = 1000
${MS_THREADS:+ms async op threads = $MS_THREADS}

[mgr]
mgr data = $CEPH_DIR/mgr.\$id

[osd]
osd data = $CEPH_DIR/osd.\$id
osd objectstore = memstore
# Room for 10 s of 4 MiB writes at 1 GB/s: at 4 GiB a faster run filled the OSD and stalled.
memstore device bytes = 12884901888
osd memory target = 2147483648
osd class load list = *
osd class default list = *
osd op queue = wpq
EOF
    : >"$CEPH_DIR/keyring"

    monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$CEPH_DIR/monmap" >/dev/null ||
        die "monmaptool failed"
    mkdir -p "$CEPH_DIR/mon.a"
    if ! ceph-mon -c "$CEPH_CONF_FILE" --mkfs -i a --monmap "$CEPH_DIR/monmap" >"$CEPH_DIR/mon-mkfs.out" 2>&1; then
        log_tail "$CEPH_DIR/mon-mkfs.out"
        log_tail "$CEPH_DIR/log/mon.a.log"
        die "ceph-mon --mkfs failed"
    fi
    start_ceph_daemon mon.a "$CEPH_DIR/log/mon.a.log" ceph-mon -c "$CEPH_CONF_FILE" -i a
    local ok=0
    for _ in $(seq 1 60); do
        if timeout 10 "${CEPH[@]}" mon stat >/dev/null 2>&1; then ok=1; break; fi
        ceph_check_alive
        sleep 0.5
    done
    [ "$ok" = 1 ] || { log_tail "$CEPH_DIR/log/mon.a.log"; die "ceph-mon did not answer 'ceph mon stat' within 30 s"; }

    # A mgr: Ceph >= 14 reports PG states (ceph pg stat, ceph -s) through it.
    mkdir -p "$CEPH_DIR/mgr.x"
    start_ceph_daemon mgr.x "$CEPH_DIR/log/mgr.x.log" ceph-mgr -c "$CEPH_CONF_FILE" -i x

    local i uuid id
    for i in $(seq 0 $((OSDS - 1))); do
        uuid="$(uuidgen)"
        id="$(timeout 30 "${CEPH[@]}" osd new "$uuid")" || die "ceph osd new failed"
        [ "$id" = "$i" ] || die "ceph osd new gave id $id, expected $i"
        mkdir -p "$CEPH_DIR/osd.$i"
        if ! ceph-osd -c "$CEPH_CONF_FILE" -i "$i" --mkfs --osd-uuid "$uuid" >"$CEPH_DIR/osd.$i-mkfs.out" 2>&1; then
            log_tail "$CEPH_DIR/osd.$i-mkfs.out"
            log_tail "$CEPH_DIR/log/osd.$i.log"
            die "ceph-osd -i $i --mkfs failed"
        fi
        start_ceph_daemon "osd.$i" "$CEPH_DIR/log/osd.$i.log" ceph-osd -c "$CEPH_CONF_FILE" -i "$i"
    done

    local up=0
    for _ in $(seq 1 120); do
        up="$(timeout 10 "${CEPH[@]}" osd stat --format json 2>/dev/null | jq -r '.num_up_osds // 0' 2>/dev/null || echo 0)"
        [ "$up" = "$OSDS" ] && break
        ceph_check_alive
        sleep 0.5
    done
    [ "$up" = "$OSDS" ] || {
        for i in $(seq 0 $((OSDS - 1))); do log_tail "$CEPH_DIR/log/osd.$i.log"; done
        die "only $up of $OSDS Ceph OSDs came up within 60 s"
    }

    timeout 30 "${CEPH[@]}" osd pool create bench 32 32 >/dev/null 2>&1 || die "ceph osd pool create bench failed"
    timeout 30 "${CEPH[@]}" osd pool set bench size "$SIZE" --yes-i-really-mean-it >/dev/null 2>&1 ||
        die "ceph osd pool set bench size $SIZE failed"
    if [ "$SIZE" = 1 ]; then
        timeout 30 "${CEPH[@]}" osd pool set bench min_size 1 >/dev/null 2>&1 || die "ceph osd pool set bench min_size 1 failed"
    fi
    timeout 30 "${CEPH[@]}" osd pool application enable bench rados >/dev/null 2>&1 || true
    ceph_wait_clean 120
}

# Waits until every PG in the cluster is active+clean (the mgr's view), or dies after $1 s.
ceph_wait_clean() {
    local deadline=$((SECONDS + $1)) js total clean
    while :; do
        js="$(timeout 10 "${CEPH[@]}" pg stat --format json 2>/dev/null || true)"
        total="$(jq -r '(.pg_summary // .).num_pgs // 0' <<<"$js" 2>/dev/null || echo 0)"
        clean="$(jq -r '[((.pg_summary // .).num_pg_by_state // [])[] | select(.name == "active+clean") | .num] | add // 0' <<<"$js" 2>/dev/null || echo 0)"
        if [ "${total:-0}" -ge 32 ] && [ "$total" = "$clean" ]; then
            return 0
        fi
        ceph_check_alive
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "vs_ceph: PGs not active+clean after $1 s ($clean of $total):" >&2
            timeout 10 "${CEPH[@]}" -s >&2 || true
            timeout 10 "${CEPH[@]}" pg stat >&2 || true
            log_tail "$CEPH_DIR/log/mgr.x.log"
            die "Ceph PGs did not become active+clean"
        fi
        sleep 1
    done
}

# Parses rados bench's final summary into JSON {iops, mb_per_sec, avg_latency}.
parse_rados_bench() { # file
    awk -F: '
        /^Bandwidth \(MB\/sec\)/ { bw = $2 }
        /^Average IOPS/ { iops = $2 }
        /^Average Latency\(s\)/ { lat = $2 }
        /^Total time run/ { t = $2 }
        /^Total (writes|reads) made/ { n = $2 }
        END {
            gsub(/ /, "", bw); gsub(/ /, "", iops); gsub(/ /, "", lat); gsub(/ /, "", t); gsub(/ /, "", n)
            if (bw == "" || iops == "" || lat == "") exit 1
            if (t == "") t = "null"
            if (n == "") n = "null"
            printf "{\"iops\":%s,\"mb_per_sec\":%s,\"avg_latency\":%s,\"time_run\":%s,\"ops\":%s}\n", iops, bw, lat, t, n
        }' "$1"
}

record() { # side case json
    jq -c --arg side "$1" --arg case "$2" --argjson secs "$SECS" --argjson osds "$OSDS" --argjson size "$SIZE" \
        '{side: $side, case: $case, seconds: $secs, osds: $osds, size: $size} + .' <<<"$3" >>"$RESULTS"
}

ceph_rados_bench() { # case out mode args...
    local c="$1" out="$2"
    shift 2
    if ! run timeout $((SECS * 3 + 60)) "${RADOS[@]}" -p bench bench "$SECS" "$@" >"$out" 2>&1; then
        ceph_check_alive
        cat "$out" >&2
        die "rados bench $* failed (case $c)"
    fi
}

ceph_cleanup_objects() {
    run timeout 300 "${RADOS[@]}" -p bench cleanup >/dev/null 2>&1 || die "rados -p bench cleanup failed"
}

ceph_case() { # case
    local c="$1" out="$CEPH_DIR/bench-$1.out" js
    case "$c" in
    w4k16) ceph_rados_bench "$c" "$out" write -b 4096 -t 16 --no-cleanup ;;
    w4k1) ceph_rados_bench "$c" "$out" write -b 4096 -t 1 --no-cleanup ;;
    seq4k16)
        ceph_rados_bench "$c" "$CEPH_DIR/bench-$c-prep.out" write -b 4096 -t 16 --no-cleanup
        ceph_rados_bench "$c" "$out" seq -t 16
        ;;
    w4m16) ceph_rados_bench "$c" "$out" write -b 4194304 -t 16 --no-cleanup ;;
    esac
    js="$(parse_rados_bench "$out")" || { cat "$out" >&2; die "could not parse rados bench output (case $c)"; }
    record ceph "$c" "$js"
    ceph_cleanup_objects
}

# ---------------------------------------------------------------------------------------------
# osdkit side
# ---------------------------------------------------------------------------------------------
osdkit_case() { # side dir case
    local side="$1" dir="$2" c="$3" out js
    out="$dir/bench-$c.json"
    local bench=("$OSDKIT" bench osd -c "$dir/osdkit.conf" -p data "$SECS")
    run_osdkit_bench() { # args...
        if ! run timeout $((SECS * 3 + 60)) "${bench[@]}" "$@" --json >"$out" 2>"$out.err"; then
            cat "$out" "$out.err" >&2
            for f in "$dir"/*.log; do [ -f "$f" ] && log_tail "$f"; done
            die "osdkit bench osd $* failed ($side, case $c)"
        fi
    }
    case "$c" in
    w4k16) run_osdkit_bench write -b 4096 -t 16 ;;
    w4k1) run_osdkit_bench write -b 4096 -t 1 ;;
    seq4k16)
        run_osdkit_bench write -b 4096 -t 16 --no-cleanup
        run_osdkit_bench seq -t 16
        # As the Ceph side does after each case (rados -p bench cleanup): the next case starts
        # on an empty store. The report of this run is not the case's, so it goes aside.
        local seq_out="$out.seq"
        cp "$out" "$seq_out"
        run_osdkit_bench cleanup -t 16
        mv "$seq_out" "$out"
        ;;
    w4m16) run_osdkit_bench write -b 4194304 -t 16 ;;
    esac
    js="$(jq -c '{iops, mb_per_sec, avg_latency, p50_latency, p99_latency}' "$out")" ||
        { cat "$out" >&2; die "could not parse osdkit bench output ($side, case $c)"; }
    record "$side" "$c" "$js"
}

osdkit_side() { # store side prefault-bytes prefault-frame-bytes cases...
    local store="$1" side="$2" prefault="$3" frames="$4"
    shift 4
    local dir="$WORK/$side"
    OSDKIT_DIRS+=("$dir")
    if ! "$OSDKIT" vstart --dir "$dir" --osds "$OSDS" --store "$store" --size "$SIZE" \
        -o "memstore_prefault_bytes=$prefault" -o "memstore_prefault_frame_bytes=$frames" \
        ${MS_THREADS:+-o ms_async_op_threads=$MS_THREADS} ${OSDKIT_SET[@]+"${OSDKIT_SET[@]}"} >"$WORK/vstart-$side.out" 2>&1; then
        cat "$WORK/vstart-$side.out" >&2
        for f in "$dir"/*.log; do [ -f "$f" ] && log_tail "$f"; done
        die "osdkit vstart --store $store ($side) failed"
    fi
    local c
    for c in "$@"; do
        echo "  $side: $c" >&2
        osdkit_case "$side" "$dir" "$c"
    done
    "$OSDKIT" stop --dir "$dir" >/dev/null 2>&1 || echo "vs_ceph: warning: osdkit stop --dir $dir failed" >&2
}

# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------
T0=$SECONDS
echo "# osdkit vs Ceph 16 (memstore): $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo
echo "    $CMDLINE"
echo
echo "$(nproc) cores, $(ceph --version 2>/dev/null | awk '{print $1, $2, $3}'), osdkit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?');" \
    "$OSDS OSD(s), size $SIZE, 32 PGs, ${SECS} s per case"
echo

echo "building osdkit (cargo build --release --bin osdkit) ..." >&2
run cargo build --manifest-path "$ROOT/Cargo.toml" --release --quiet --bin osdkit || die "cargo build --release --bin osdkit failed"
[ -x "$OSDKIT" ] || die "$OSDKIT missing after the build"

echo "starting Ceph: mon.a, mgr.x, $OSDS memstore OSD(s) in $CEPH_DIR ..." >&2
ceph_start
CEPH_HEALTH="$(timeout 10 "${CEPH[@]}" health 2>/dev/null || echo '?')"
for c in "${CASE_LIST[@]}"; do
    echo "  ceph: $c" >&2
    ceph_case "$c"
done
CEPH_HEALTH_END="$(timeout 10 "${CEPH[@]}" health detail 2>/dev/null || echo '?')"
# Stop Ceph before osdkit runs, so the two never share the CPUs.
ceph_kill

avail_kb="$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)"
if [ "$PREFAULT" = auto ]; then
    PREFAULT=$((avail_kb * 1024 / 4 >> 20 << 20))
fi
if [ "$PREFAULT_FRAMES" = auto ]; then
    PREFAULT_FRAMES=0
    if [[ " ${CASE_LIST[*]} " == *" w4m16 "* ]]; then
        PREFAULT_FRAMES=$((avail_kb * 1024 / 2))
        [ "$PREFAULT_FRAMES" -le $((SECS << 31)) ] || PREFAULT_FRAMES=$((SECS << 31))
        PREFAULT_FRAMES=$((PREFAULT_FRAMES >> 20 << 20))
    fi
fi
# The cluster without them runs first, right after Ceph, where every earlier run of this script
# ran its mem cluster.
if [ $((PREFAULT + PREFAULT_FRAMES)) -gt 0 ] && [[ " ${CASE_LIST[*]} " == *" w4m16 "* ]]; then
    echo "starting osdkit (mem, nothing faulted in ahead) ..." >&2
    osdkit_side mem osdkit-mem-defaults 0 0 w4m16
fi
echo "starting osdkit (mem, memstore_prefault_bytes=$PREFAULT, memstore_prefault_frame_bytes=$PREFAULT_FRAMES) ..." >&2
osdkit_side mem osdkit-mem "$PREFAULT" "$PREFAULT_FRAMES" "${CASE_LIST[@]}"
echo "starting osdkit (kv) ..." >&2
osdkit_side kv osdkit-kv 0 0 "${CASE_LIST[@]}"

# The table.
fmt_row() { # case [mem side] [label]
    local c="$1" mem="${2:-osdkit-mem}" label="${3:-$1}" metric target kind
    case "$c" in
    w4k16) metric=iops; target=5; kind=ge ;;
    w4k1) metric=avg_latency; target=0.3; kind=le ;;
    seq4k16) metric=iops; target=3; kind=ge ;;
    w4m16) metric=mb_per_sec; target=3; kind=ge ;;
    esac
    jq -rs --arg c "$c" --arg mem "$mem" --arg title "$label" --arg m "$metric" --argjson t "$target" --arg k "$kind" '
        def get(s): (map(select(.side == s and .case == $c)) | first);
        def show(r):
            if r == null then "-"
            elif $m == "iops" then "\(r.iops | floor) IOPS"
            elif $m == "mb_per_sec" then "\(r.mb_per_sec * 10 | round / 10) MB/s"
            else "\(r.avg_latency * 1e6 | round) us avg" end;
        get("ceph") as $ce | get($mem) as $om | get("osdkit-kv") as $ok |
        (if $ce == null or $om == null then null else ($om[$m] / $ce[$m]) end) as $ratio |
        (if $ratio == null then "-"
         elif $k == "ge" then (if $ratio >= $t then "pass" else "FAIL" end)
         else (if $ratio <= $t then "pass" else "FAIL" end) end) as $verdict |
        "| \($title) | \(show($ce)) | \(show($om)) | \(if $ratio == null then "-" else "\($ratio * 100 | round / 100)x" end) | \(if $k == "ge" then ">= \($t)x" else "<= \($t)x (latency)" end) \($verdict) | \(show($ok)) |"
    ' "$RESULTS"
}

echo "| case | Ceph 16 (rados bench) | osdkit mem | ratio | target | osdkit kv |"
echo "|---|---|---|---|---|---|"
for c in "${CASE_LIST[@]}"; do fmt_row "$c"; done
if grep -q '"side":"osdkit-mem-defaults"' "$RESULTS"; then
    fmt_row w4m16 osdkit-mem-defaults "w4m16, nothing faulted in ahead"
fi
echo
echo "osdkit mem: memstore_prefault_bytes=$PREFAULT, memstore_prefault_frame_bytes=$PREFAULT_FRAMES (faulted in while its OSD starts, before any case)"
echo
echo "Ceph health at start: $CEPH_HEALTH"
echo "Ceph health at end:   $(tr '\n' ' ' <<<"$CEPH_HEALTH_END")"
echo
echo "JSON (one line per measurement):"
cat "$RESULTS"
echo
echo "wall clock: $((SECONDS - T0)) s"
