#!/usr/bin/env bash
# perf/run.sh — end-to-end benchmark of nodepass against direct loopback and peer relays.
#
#   bash perf/run.sh --quick            # 1 repetition, 2 s per tool run (~2-3 min)
#   bash perf/run.sh                    # 3 repetitions, 5 s per tool run
#   bash perf/run.sh --reps 5 --tunnel  # also the tunnels: nodepass (flow +/-, tls 0/1) and rathole
#
# Method (docs: /work/shared/BENCHMARKS.md §5): one run measures every contender, interleaved
# (each repetition visits every contender once per workload, starting contender rotated), medians
# over repetitions, ratios vs direct, relay CPU % and throughput per relay-core, noise guard on
# foreign CPU. Writes perf/results/<date>-<commit>.jsonl (one line per sample) and .md (tables),
# and prints the Markdown. Options: see usage() below.
set -uo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

usage() {
    cat <<'EOF'
usage: bash perf/run.sh [options]
  --quick              1 repetition, 2 s tool runs, short noise-guard wait
  --reps N             repetitions (default 3)
  --duration S         seconds per tool run (default 5; 2 with --quick)
  --tunnel             add the tunnel contenders: nodepass-tunnel (flow +), nodepass-tunnel-rev (flow -),
                       nodepass-tunnel-tls, nodepass-tunnel-rev-tls (tls=1), rathole, rathole-tls;
                       add -quic, -ws or -h2 for pool type 1 (QUIC), 2 (WebSocket) or 3 (HTTP/2),
                       e.g. nodepass-tunnel-ws, nodepass-tunnel-ws-tls, nodepass-tunnel-quic (types 1
                       and 3 are always TLS)
  --contenders LIST    comma list from: direct,nodepass,haproxy,nginx-stream,socat and the tunnels above;
                       variants nodepass-wN (NP_WORKERS=N), nodepass-legacy / nodepass-uring (NP_DRIVER),
                       combinable: nodepass-w1-legacy; realm (REALM_BIN or realm on PATH);
                       go-nodepass, go-nodepass-tunnel[-rev][-tls] (NP_GO_BIN = a Go NodePass binary);
                       realm and the go-* contenders join the default list when their binary is given
  --workloads LIST     comma list from: W1,W1R,W2,W3,W4,W5,W5q,W7 (default: all)
  --workers N          NP_WORKERS for nodepass (default: unset = one per core)
  --np-query Q         extra nodepass URL query, e.g. 'log=warn'
  --retries N          rerun a sample whose foreign CPU > 25 % up to N times (default 1; 0 with --quick)
  --no-install         do not apt-get missing tools
  --no-build           do not run cargo build --release (measure target/release/nodepass as it is)
  --out DIR            results directory (default perf/results)
EOF
}

REPS=3 DUR="" RETRIES="" QUICK=0 TUNNEL=0 INSTALL=1 BUILD=1 OUT_DIR="$PERF_DIR/results"
CONTENDERS="" WORKLOADS="W1,W1R,W2,W3,W4,W5,W5q,W7"
ARGS_LINE="$*"
while (($#)); do
    case "$1" in
    --quick) QUICK=1 REPS=1 ;;
    --reps) REPS=$2; shift ;;
    --duration) DUR=$2; shift ;;
    --tunnel) TUNNEL=1 ;;
    --contenders) CONTENDERS=$2; shift ;;
    --workloads) WORKLOADS=$2; shift ;;
    --workers) export NP_WORKERS=$2; shift ;;
    --np-query) NP_QUERY=$2; shift ;;
    --retries) RETRIES=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --no-build) BUILD=0 ;;
    --out) OUT_DIR=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 64 ;;
    esac
    shift
done
[[ -n "$DUR" ]] || { ((QUICK)) && DUR=2 || DUR=5; }
GUARD_WAIT=10
((QUICK)) && GUARD_WAIT=3
[[ -n "$RETRIES" ]] || { ((QUICK)) && RETRIES=0 || RETRIES=1; }
if [[ -z "$CONTENDERS" ]]; then
    CONTENDERS="direct,nodepass"
    ((TUNNEL)) && CONTENDERS+=",nodepass-tunnel,nodepass-tunnel-rev,nodepass-tunnel-tls,nodepass-tunnel-rev-tls,rathole,rathole-tls"
    CONTENDERS+=",haproxy,nginx-stream,socat"
    # The peers that come from outside this machine's registries, when named.
    [[ -x "$REALM_BIN" ]] && CONTENDERS+=",realm"
    if [[ -x "$NP_GO_BIN" ]]; then
        CONTENDERS+=",go-nodepass"
        ((TUNNEL)) && CONTENDERS+=",go-nodepass-tunnel,go-nodepass-tunnel-rev,go-nodepass-tunnel-tls,go-nodepass-tunnel-rev-tls"
    fi
fi
IFS=, read -r -a CONTENDER_LIST <<<"$CONTENDERS"
IFS=, read -r -a WORKLOAD_LIST <<<"$WORKLOADS"

trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
chmod 755 "$WORK_DIR"

install_tools() {
    local missing=() t
    for t in iperf3 socat haproxy nginx wrk sockperf; do command -v "$t" >/dev/null || missing+=("$t"); done
    [[ -f "$NGINX_STREAM_MODULE" ]] || missing+=(libnginx-mod-stream)
    ((${#missing[@]})) || return 0
    if ((INSTALL == 0)); then log "missing (not installing): ${missing[*]}"; return 0; fi
    log "installing tools (missing: ${missing[*]})"
    local sudo=""
    ((EUID == 0)) || sudo="sudo -n"
    if $sudo timeout 300 apt-get update -qq >"$WORK_DIR/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive $sudo timeout 600 apt-get install -y --no-install-recommends \
            iperf3 socat haproxy nginx-light libnginx-mod-stream wrk sockperf >>"$WORK_DIR/apt.log" 2>&1; then
        log "tools installed"
    else
        log "apt-get failed (see below); contenders/workloads needing missing tools are skipped"
        tail -n 3 "$WORK_DIR/apt.log" >&2
    fi
}

build_nodepass() {
    # cargo is a no-op when the binary is fresh, and rebuilds it when src/ changed.
    if ((BUILD)) && command -v cargo >/dev/null; then
        log "building nodepass (cargo build --release; fat LTO takes minutes when src/ changed)"
        (cd "$ROOT_DIR" && timeout 1800 cargo build --release --bin nodepass >"$WORK_DIR/build.log" 2>&1) ||
            log "build failed: $(tail -n 3 "$WORK_DIR/build.log" | tr '\n' ' ')"
    fi
    [[ -x "$NODEPASS_BIN" ]] || log "no $NODEPASS_BIN: nodepass contenders will be skipped"
}

# rathole (the tunnel peer) comes from crates.io: `cargo install rathole` (3-4 min on 2 cores;
# not --locked: its locked `time` no longer builds on current rustc). Without it, skipped.
install_rathole() {
    [[ ",$CONTENDERS," == *,rathole* ]] || return 0
    [[ -x "$RATHOLE_BIN" ]] && return 0
    if ((INSTALL == 0)) || ! command -v cargo >/dev/null; then log "rathole missing (not installing)"; return 0; fi
    log "installing rathole (cargo install rathole, ~4 min)"
    if timeout 1200 cargo install rathole >"$WORK_DIR/rathole-install.log" 2>&1; then
        RATHOLE_BIN="${CARGO_HOME:-$HOME/.cargo}/bin/rathole"
        log "rathole installed: $RATHOLE_BIN"
    else
        log "cargo install rathole failed: $(tail -n 3 "$WORK_DIR/rathole-install.log" | tr '\n' ' ')"
    fi
}

install_tools
install_rathole
build_nodepass

# --- naming and header -----------------------------------------------------------------
DATE=$(date +%Y-%m-%d)
COMMIT=$(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo nogit)
[[ -n "$(git -C "$ROOT_DIR" status --porcelain -- . ':!perf/results' 2>/dev/null)" ]] && COMMIT+="-dirty"
mkdir -p "$OUT_DIR"
BASE="$OUT_DIR/$DATE-$COMMIT"
n=2
while [[ -e "$BASE.jsonl" ]]; do BASE="$OUT_DIR/$DATE-$COMMIT-$n"; n=$((n + 1)); done
JSONL="$BASE.jsonl" META="$BASE.meta" MD="$BASE.md" RAW_DIR="$BASE.raw"
mkdir -p "$RAW_DIR"
: >"$JSONL"
ver() { command -v "$1" >/dev/null && "$@" 2>&1 | grep -m1 -iE 'version|[0-9]+\.[0-9]+' | cut -c1-90 || echo "not installed"; }
{
    printf 'date\t%s\n' "$(date -Is)"
    printf 'commit\t%s\n' "$COMMIT"
    printf 'kernel\t%s\n' "$(uname -r)"
    printf 'cpu\t%s × %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    printf 'command\tbash perf/run.sh %s\n' "$ARGS_LINE"
    printf 'reps\t%s\n' "$REPS"
    printf 'duration_s\t%s\n' "$DUR"
    printf 'np_workers\t%s\n' "${NP_WORKERS:-default (one per core)}"
    printf 'np_query\t%s\n' "${NP_QUERY:-none}"
    printf 'np_driver\t%s\n' "${NP_DRIVER:-auto (default)}"
    printf 'nofile\t%s\n' "$(ulimit -n)"
    printf 'tool\tnodepass: %s\n' "$([[ -x "$NODEPASS_BIN" ]] && echo "$(stat -c %s "$NODEPASS_BIN") bytes, built $(date -r "$NODEPASS_BIN" -Is)" || echo "not built")"
    printf 'tool\tiperf3: %s\n' "$(ver iperf3 --version)"
    printf 'tool\twrk: %s\n' "$(ver wrk -v)"
    printf 'tool\tsockperf: %s\n' "$(ver sockperf --version)"
    printf 'tool\tsocat: %s\n' "$(command -v socat >/dev/null && socat -V 2>&1 | grep -m1 'socat version' || echo "not installed")"
    printf 'tool\thaproxy: %s\n' "$(ver haproxy -v)"
    printf 'tool\tnginx: %s\n' "$(ver nginx -v)"
    printf 'tool\trathole: %s\n' "$([[ -x "$RATHOLE_BIN" ]] && "$RATHOLE_BIN" --version 2>&1 | grep -m1 "Build Version" | tr -s " " || echo "not installed")"
    printf 'tool\trealm: %s\n' "$([[ -x "$REALM_BIN" ]] && "$REALM_BIN" --version 2>&1 | head -n 1 || echo "not given (REALM_BIN)")"
    printf 'tool\tgo-nodepass: %s\n' "$([[ -x "$NP_GO_BIN" ]] && "$NP_GO_BIN" 2>&1 | grep -m1 -io 'version[^ ]* *[^ ]*' || echo "not given (NP_GO_BIN)")"
} >"$META"
skip() { # CONTENDER REASON
    printf 'skip\t%s\t%s\n' "$1" "$2" >>"$META"
    log "SKIP $1: $2"
}

# --- backends ----------------------------------------------------------------------------
alloc_ports $((4 + 7 * ${#CONTENDER_LIST[@]})) || exit 1
declare -A BACKEND LPORT RPIDS DEAD
start_backends() {
    local d="$WORK_DIR/backend"
    mkdir -p "$d/www"
    if command -v iperf3 >/dev/null; then
        next_port; BACKEND[iperf]=$NEXT_PORT
        spawn "$d/iperf3.log" iperf3 -s -B 127.0.0.1 -p "${BACKEND[iperf]}" --idle-timeout 60
        wait_ready "${BACKEND[iperf]}" 5 "$SPAWNED_PID" || { log "iperf3 server did not start"; unset 'BACKEND[iperf]'; }
    fi
    if command -v nginx >/dev/null; then
        next_port; BACKEND[http]=$NEXT_PORT
        head -c 127 /dev/zero | tr '\0' 'x' >"$d/www/index.html"; echo >>"$d/www/index.html"
        chmod -R a+rX "$d"
        cat >"$d/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 10000000;
    server { listen 127.0.0.1:${BACKEND[http]}; root $d/www; }
}
EOF
        spawn "$d/nginx.log" nginx -p "$d" -e "$d/nginx-error.log" -c "$d/nginx.conf"
        wait_ready "${BACKEND[http]}" 5 "$SPAWNED_PID" || { log "nginx backend did not start: $(tail -n 2 "$d/nginx.log")"; unset 'BACKEND[http]'; }
    fi
    if command -v sockperf >/dev/null; then
        next_port; BACKEND[sock]=$NEXT_PORT
        start_sockperf "$d" "${BACKEND[sock]}" || { log "sockperf server did not start"; unset 'BACKEND[sock]'; }
    fi
}

start_sockperf() { # DIR PORT : a sockperf server on TCP and UDP PORT
    mkdir -p "$1"
    spawn "$1/sockperf-tcp.log" sockperf server --tcp -i 127.0.0.1 -p "$2"
    wait_ready "$2" 5 "$SPAWNED_PID" || return 1
    spawn "$1/sockperf-udp.log" sockperf server -i 127.0.0.1 -p "$2"
}

start_contenders() {
    local c tag
    for c in "${CONTENDER_LIST[@]}"; do
        for tag in "${!BACKEND[@]}"; do
            if [[ "$c" == direct ]]; then
                LPORT[$c:$tag]=${BACKEND[$tag]} RPIDS[$c:$tag]=""
                continue
            fi
            local target=${BACKEND[$tag]}
            if [[ "$tag" == sock ]]; then
                # sockperf's server blocks in recvfrom() on a lone connection: one relay that
                # leaks a target connection would wedge it for every later contender.
                next_port
                target=$NEXT_PORT
                start_sockperf "$WORK_DIR/backend-$c" "$target" || { skip "$c" "own sockperf server did not start"; continue; }
            fi
            next_port
            local lp=$NEXT_PORT # start_relay may take more ports (a tunnel's T) via next_port
            if start_relay "$c" "$lp" "$target" "$tag"; then
                LPORT[$c:$tag]=$lp RPIDS[$c:$tag]=$RELAY_PIDS
            else
                skip "$c" "did not start: $(why_failed)"
                DEAD[$c]=1
                local pg
                for pg in $RELAY_PIDS; do kill_group "$pg"; done
                break
            fi
        done
    done
}

# workload W PORT : sets CMD, PARSER, TAG, PMQOS; returns 1 with WHY when it cannot run.
workload() {
    local w=$1 port=${2:-0}
    PMQOS="" WHY=""
    local t="timeout -k 3 $((DUR + 20))"
    case "$w" in
    W1 | W1R | W2)
        TAG=iperf PARSER=iperf
        CMD=($t iperf3 -c 127.0.0.1 -p "$port" -t "$DUR" -O 1 -J --connect-timeout 3000)
        [[ $w == W1R ]] && CMD+=(-R)
        [[ $w == W2 ]] && CMD+=(-P 8)
        ;;
    W3 | W4)
        TAG=http PARSER=wrk
        CMD=($t wrk -t2 -c64 -d"${DUR}s" --latency --timeout 2s)
        [[ $w == W3 ]] && CMD+=(-H 'Connection: close')
        CMD+=("http://127.0.0.1:$port/")
        ;;
    W5 | W5q)
        TAG=sock PARSER=sockperf
        CMD=($t sockperf ping-pong --tcp -i 127.0.0.1 -p "$port" -t "$DUR" -m 64)
        if [[ $w == W5q ]]; then
            [[ -w /dev/cpu_dma_latency ]] || { WHY="/dev/cpu_dma_latency not writable (needs root)"; return 1; }
            PMQOS=--pmqos
        fi
        ;;
    W7)
        TAG=sock PARSER=sockperf
        CMD=($t sockperf ping-pong -i 127.0.0.1 -p "$port" -t "$DUR" -m 64)
        ;;
    *) WHY="unknown workload"; return 1 ;;
    esac
    [[ -n "${BACKEND[$TAG]:-}" ]] || { WHY="no $TAG backend (tool missing)"; return 1; }
}

udp_capable() { [[ "$1" != haproxy ]]; }

sample() { # W CONTENDER REP
    local w=$1 c=$2 r=$3
    workload "$w" 0 || return 0
    [[ -z "${DEAD[$c]:-}" ]] || return 0
    if [[ $w == W7 ]] && ! udp_capable "$c"; then return 0; fi
    local key="$c:$TAG"
    [[ -n "${LPORT[$key]:-}" ]] || return 0
    local pids=${RPIDS[$key]}
    # shellcheck disable=SC2086
    if [[ -n "$pids" ]] && ! all_alive $pids; then
        skip "$c" "relay exited before $w rep $r: $(tail -n 2 "$WORK_DIR"/"$c"-"$TAG"/*.log | tr '\n' ' ' | cut -c1-300)"
        DEAD[$c]=1
        return 0
    fi
    workload "$w" "${LPORT[$key]}"
    local meta
    meta=$(printf '{"test":"%s","contender":"%s","rep":%d,"duration_s":%s}' "$w" "$c" "$r" "$DUR")
    python3 "$PERF_DIR/measure.py" --root $$ --relay "$pids" --parser "$PARSER" --meta "$meta" \
        --jsonl "$JSONL" --raw "$RAW_DIR/$w-$c-$r.txt" $PMQOS --guard-wait "$GUARD_WAIT" --retries "$RETRIES" \
        --timeout $((DUR + 30)) -- "${CMD[@]}"
}

start_backends
[[ -n "${BACKEND[*]-}" ]] || { log "no backend could start (iperf3/nginx/sockperf missing)"; exit 1; }
start_contenders
for w in "${WORKLOAD_LIST[@]}"; do workload "$w" 0 || skip "$w" "$WHY"; done

log "contenders: ${CONTENDER_LIST[*]}; workloads: ${WORKLOAD_LIST[*]}; reps $REPS × ${DUR}s"
for ((r = 1; r <= REPS; r++)); do
    n=${#CONTENDER_LIST[@]}
    for w in "${WORKLOAD_LIST[@]}"; do
        for ((i = 0; i < n; i++)); do
            sample "$w" "${CONTENDER_LIST[$(((i + r - 1) % n))]}" "$r"
        done
    done
done

python3 "$PERF_DIR/report.py" "$JSONL" "$META" >"$MD"
cat "$MD"
log "results: $JSONL, $MD (raw tool output in $RAW_DIR)"
