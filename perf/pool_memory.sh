#!/usr/bin/env bash
# perf/pool_memory.sh — memory per idle pool connection of a nodepass tunnel.
#
#   bash perf/pool_memory.sh [--conns N] [--queries 'tls=0,tls=1,type=2&tls=1']
#   NODEPASS_BIN=/path/to/other/nodepass bash perf/pool_memory.sh   # compare two builds
#
# For each server query, starts a server (max=N) and a client (min=max=N), waits until the
# client's CHECK_POINT shows POOL=N, lets it settle SETTLE s (default 7: past one CHECK_POINT
# tick, on which the control thread hands the heap freed by the fill back to the kernel), and
# prints the PSS (smaps_rollup) of both processes. The difference between two queries divided by N is what one idle pool
# connection of the second kind costs beyond one of the first (both ends together).
set -uo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

CONNS=512 QUERIES="tls=0,tls=1"
while (($#)); do
    case "$1" in
    --conns) CONNS=$2; shift ;;
    --queries) QUERIES=$2; shift ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 64 ;;
    esac
    shift
done
[[ -x "$NODEPASS_BIN" ]] || { echo "no binary at $NODEPASS_BIN (cargo build --release)"; exit 1; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
IFS=, read -r -a LIST <<<"$QUERIES"
alloc_ports $((2 * ${#LIST[@]})) || exit 1
pss() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }

echo "binary: $NODEPASS_BIN ($(stat -c %s "$NODEPASS_BIN") bytes, built $(date -r "$NODEPASS_BIN" -Is))"
printf '| server query | idle pool connections | PSS server KiB | PSS client KiB | total KiB |\n|---|---|---|---|---|\n'
base=""
for q in "${LIST[@]}"; do
    next_port; tun=$NEXT_PORT
    next_port; users=$NEXT_PORT
    d="$WORK_DIR/pool-${q//[^a-z0-9]/_}"
    mkdir -p "$d"
    spawn "$d/server.log" "$NODEPASS_BIN" "server://$NP_KEY@127.0.0.1:$tun/127.0.0.1:9?mode=2&max=$CONNS&log=warn&$q"
    srv=$SPAWNED_PID
    wait_ready "$tun" 10 "$srv" || { echo "| $q | server did not start ||||"; continue; }
    spawn "$d/client.log" env NP_REPORT_INTERVAL=1s "$NODEPASS_BIN" \
        "client://$NP_KEY@127.0.0.1:$tun/127.0.0.1:$users?min=$CONNS&max=$CONNS&log=info"
    cli=$SPAWNED_PID
    NP_WARM_POOL=$CONNS wait_pool "$d/client.log" 30 "$srv" "$cli" || { echo "| $q | pool did not fill ||||"; continue; }
    sleep "${SETTLE:-7}"
    s=$(pss "$srv") c=$(pss "$cli")
    printf '| %s | %s | %s | %s | %s |\n' "$q" "$CONNS" "$s" "$c" "$((s + c))"
    if [[ -z "$base" ]]; then
        base=$((s + c)) base_q=$q
    else
        echo "  $q costs $(awk -v a=$((s + c)) -v b="$base" -v n="$CONNS" 'BEGIN { printf "%.1f", (a - b) / n }') KiB per idle pool connection more than $base_q (both ends)"
    fi
    kill_group "$cli"; kill_group "$srv"
done
