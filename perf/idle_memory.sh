#!/usr/bin/env bash
# perf/idle_memory.sh — W8: memory and threads per idle connection held through a relay.
#
#   bash perf/idle_memory.sh                          # nodepass single-end, 1000 connections
#   bash perf/idle_memory.sh --conns 5000 --contenders nodepass,haproxy,socat
#
# A python echo target, the relay in front of it, then a holder opens N connections through
# the relay, sends 1 byte on each, waits for every echo, holds 3 s. Measured on the relay's
# process tree before/after: ΔPSS (smaps_rollup) per connection, threads (and io-wq `iou-wrk`
# workers); machine-wide: Δ /proc/net/sockstat TCP mem pages (every socket of the chain:
# holder, relay, target). Results are appended to the newest perf/results/<date>-<commit>*.jsonl
# of this commit and date (a new one if none) and its .md is regenerated.
set -uo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

CONNS=1000 HOLD_SECS=3 CONTENDERS=nodepass OUT_DIR="$PERF_DIR/results"
while (($#)); do
    case "$1" in
    --conns) CONNS=$2; shift ;;
    --hold) HOLD_SECS=$2; shift ;;
    --contenders) CONTENDERS=$2; shift ;;
    --out) OUT_DIR=$2; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 64 ;;
    esac
    shift
done

trap cleanup EXIT
trap 'exit 130' INT TERM
# Holder, relay and target each need about CONNS descriptors (a tunnel twice that).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 3 * CONNS)); then
    log "ulimit -n $(ulimit -n) is too low for $CONNS connections (need ~$((3 * CONNS)))"
    exit 1
fi

DATE=$(date +%Y-%m-%d)
COMMIT=$(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo nogit)
[[ -n "$(git -C "$ROOT_DIR" status --porcelain -- . ':!perf/results' 2>/dev/null)" ]] && COMMIT+="-dirty"
mkdir -p "$OUT_DIR"
JSONL=$(ls -t "$OUT_DIR/$DATE-$COMMIT"*.jsonl 2>/dev/null | head -n 1)
if [[ -z "$JSONL" ]]; then
    JSONL="$OUT_DIR/$DATE-$COMMIT.jsonl"
    {
        printf 'date\t%s\n' "$(date -Is)"
        printf 'commit\t%s\n' "$COMMIT"
        printf 'kernel\t%s\n' "$(uname -r)"
        printf 'cpu\t%s × %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
        printf 'command\tbash perf/idle_memory.sh --conns %s --contenders %s\n' "$CONNS" "$CONTENDERS"
        printf 'np_workers\t%s\n' "${NP_WORKERS:-default (one per core)}"
        printf 'nofile\t%s\n' "$(ulimit -n)"
    } >"${JSONL%.jsonl}.meta"
fi
META="${JSONL%.jsonl}.meta" MD="${JSONL%.jsonl}.md"

alloc_ports 16 || exit 1
next_port
ECHO_PORT=$NEXT_PORT
spawn "$WORK_DIR/echo.log" python3 "$PERF_DIR/idle_hold.py" echo "$ECHO_PORT"
wait_ready "$ECHO_PORT" 10 "$SPAWNED_PID" || { log "echo target did not start: $(cat "$WORK_DIR/echo.log")"; exit 1; }

# record CONTENDER JSON_FIELDS : append one W8 line.
record() {
    printf '{"test":"W8","contender":"%s",%s}\n' "$1" "$2" >>"$JSONL"
}

measure_one() {
    local c=$1
    next_port
    local lp=$NEXT_PORT
    if ! start_relay "$c" "$lp" "$ECHO_PORT" w8; then
        local why
        why=$(why_failed | tr '"\\' "'/")
        log "SKIP $c: did not start: $why"
        record "$c" "\"conns\":$CONNS,\"value\":null,\"error\":\"did not start: ${why:0:200}\""
        return 0
    fi
    local pids=$RELAY_PIDS before after
    # shellcheck disable=SC2086
    before=$(python3 "$PERF_DIR/idle_hold.py" stat $pids)
    local hlog="$WORK_DIR/hold-$c.log" fifo="$WORK_DIR/hold-$c.in"
    mkfifo "$fifo"
    spawn "$hlog" bash -c 'exec python3 "$0" hold "$1" "$2" "$3" <"$4"' \
        "$PERF_DIR/idle_hold.py" "$lp" "$CONNS" 60 "$fifo"
    local holder=$SPAWNED_PID
    exec {keep}>"$fifo"  # holds the holder's stdin open until we close it
    local deadline=$((SECONDS + 70))
    until grep -q '^ready\|^timeout\|Error' "$hlog" 2>/dev/null || ((SECONDS > deadline)); do
        kill -0 "$holder" 2>/dev/null || break
        sleep 0.2
    done
    if ! grep -q '^ready' "$hlog"; then
        local why
        why=$(tail -n 2 "$hlog" | tr '\n"\\' "  '/")
        log "$c: holder failed: $why"
        record "$c" "\"conns\":$CONNS,\"value\":null,\"error\":\"holder: ${why:0:200}\""
    else
        sleep "$HOLD_SECS"
        # shellcheck disable=SC2086
        after=$(python3 "$PERF_DIR/idle_hold.py" stat $pids)
        local fields
        fields=$(python3 - "$before" "$after" "$CONNS" <<'EOF'
import json, sys
b, a, n = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
print(json.dumps({
    "conns": n, "value": round((a["pss_kib"] - b["pss_kib"]) / n, 2), "unit": "KiB/conn",
    "pss_before_kib": b["pss_kib"], "pss_after_kib": a["pss_kib"],
    "rss_before_kib": b["rss_kib"], "rss_after_kib": a["rss_kib"],
    "sockstat_mem_pages_delta": a["sockstat_tcp_mem_pages"] - b["sockstat_tcp_mem_pages"],
    "threads_before": b["threads"], "threads_after": a["threads"],
    "procs_before": b["procs"], "procs_after": a["procs"],
    "iou_wrk_before": b["iou_wrk"], "iou_wrk_after": a["iou_wrk"],
    "iou_wrk_system_before": b["iou_wrk_system"], "iou_wrk_system_after": a["iou_wrk_system"],
})[1:-1])
EOF
)
        record "$c" "$fields"
        log "$c: $fields"
    fi
    exec {keep}>&-
    kill_group "$holder"
    local pg
    for pg in $pids; do kill_group "$pg"; done
}

IFS=, read -r -a LIST <<<"$CONTENDERS"
for c in "${LIST[@]}"; do measure_one "$c"; done

if [[ -f "$META" ]]; then
    python3 "$PERF_DIR/report.py" "$JSONL" "$META" >"$MD"
    # Print only the W8 section of the regenerated report.
    sed -n '/^### W8/,$p' "$MD"
fi
log "results: $JSONL, $MD"
