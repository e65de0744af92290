# perf/lib.sh — shared helpers for perf/run.sh and perf/idle_memory.sh (sourced, not run).
#
# Every process is started through `spawn`: its own process group (setsid, no fork, so
# the pid is the group id and stays a child of the script), logged to a file, and killed
# by group in `cleanup`. Contenders are started one relay instance at a time with
# `start_relay CONTENDER LISTEN_PORT TARGET_PORT TAG`, which sets RELAY_PIDS.

PERF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$PERF_DIR/.." && pwd)"
NODEPASS_BIN="${NODEPASS_BIN:-$ROOT_DIR/target/release/nodepass}"
NP_KEY="${NP_KEY:-perfkey}"
NP_QUERY="${NP_QUERY:-}"             # extra query for nodepass URLs, e.g. "log=warn"
HAPROXY_NBTHREAD="${HAPROXY_NBTHREAD:-2}"
NGINX_STREAM_WORKERS="${NGINX_STREAM_WORKERS:-2}"
NGINX_STREAM_MODULE="${NGINX_STREAM_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}"
NP_WARM_POOL="${NP_WARM_POOL:-64}"    # tunnel ready when the client's CHECK_POINT shows POOL >= this (min=64)
NP_WARM_TIMEOUT="${NP_WARM_TIMEOUT:-10}"
RATHOLE_BIN="${RATHOLE_BIN:-$(command -v rathole || echo "$HOME/.cargo/bin/rathole")}"
RATHOLE_LOG="${RATHOLE_LOG:-warn}"   # rathole's RUST_LOG (info logs every visitor connection)
# Peers that cannot be installed from this machine's registries are measured when named:
# NP_GO_BIN = a Go NodePass binary (contenders go-nodepass, go-nodepass-tunnel[-rev][-tls]),
# REALM_BIN = a realm binary (contender realm; github.com/zhboner/realm, built by hand).
NP_GO_BIN="${NP_GO_BIN:-}"
REALM_BIN="${REALM_BIN:-$(command -v realm || true)}"

PGIDS=()
FREE_PORTS=()
WORK_DIR="${WORK_DIR:-$(mktemp -d /tmp/np-perf.XXXXXX)}"
RELAY_PIDS=""
RELAY_LOGS=""

log() { printf '[perf %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# spawn LOGFILE CMD... : start CMD in its own process group; sets SPAWNED_PID.
spawn() {
    local logfile=$1
    shift
    setsid "$@" >"$logfile" 2>&1 </dev/null &
    SPAWNED_PID=$!
    PGIDS+=("$SPAWNED_PID")
}

# kill_group PGID : TERM the group, then KILL what is left after a short grace.
kill_group() {
    local pg=$1 i
    kill -TERM -- "-$pg" 2>/dev/null || return 0
    for i in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 -- "-$pg" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pg" 2>/dev/null || true
    wait "$pg" 2>/dev/null || true
}

cleanup() {
    local pg
    for pg in "${PGIDS[@]}"; do kill_group "$pg"; done
    PGIDS=()
    [[ -n "${KEEP_WORK_DIR:-}" ]] || rm -rf "$WORK_DIR"
}

# alloc_ports N : fill FREE_PORTS with N ports free for both TCP and UDP on 127.0.0.1.
alloc_ports() {
    mapfile -t FREE_PORTS < <(python3 "$PERF_DIR/ports.py" "$1")
    [[ ${#FREE_PORTS[@]} -eq $1 ]] || { log "could not allocate $1 free ports"; return 1; }
}

# next_port : pop one port from FREE_PORTS into NEXT_PORT.
next_port() {
    NEXT_PORT=${FREE_PORTS[0]}
    FREE_PORTS=("${FREE_PORTS[@]:1}")
}

# is_listening PORT : true when some socket listens on TCP 127.0.0.1/any PORT.
is_listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" 'substr($2, length($2)-4) == p && $4 == "0A" { found=1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# all_alive PID... : true when every pid still runs (not a zombie).
all_alive() {
    local p st
    for p in "$@"; do
        st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) || return 1
        [[ -n "$st" && "$st" != Z ]] || return 1
    done
}

# wait_ready PORT SECONDS PID... : poll until PORT listens while the pids stay alive.
wait_ready() {
    local port=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    while ((SECONDS <= deadline)); do
        all_alive "$@" || return 1
        is_listening "$port" && return 0
        sleep 0.1
    done
    return 1
}

# why_failed : one line describing why the last start_relay failed (tail of its logs).
why_failed() {
    local f out=""
    for f in $RELAY_LOGS; do
        [[ -s "$f" ]] && out+="$(basename "$f"): $(tail -n 3 "$f" | tr '\n' ' ' | cut -c1-300) "
    done
    printf '%s' "${out:-no output}"
}

haproxy_maxconn() {
    local nofile
    nofile=$(ulimit -n)
    [[ "$nofile" == unlimited ]] && nofile=1048576
    local m=$(((nofile - 200) / 5))
    ((m > 4000)) && m=4000
    ((m < 100)) && m=100
    echo "$m"
}

write_haproxy_cfg() { # FILE LISTEN TARGET
    cat >"$1" <<EOF
global
    nbthread $HAPROXY_NBTHREAD
    maxconn $(haproxy_maxconn)
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-request
    option splice-response
frontend fe
    bind 127.0.0.1:$2
    default_backend be
backend be
    server target 127.0.0.1:$3
EOF
}

write_nginx_stream_cfg() { # FILE DIR LISTEN TARGET
    cat >"$1" <<EOF
load_module $NGINX_STREAM_MODULE;
daemon off;
worker_processes $NGINX_STREAM_WORKERS;
pid $2/nginx.pid;
error_log $2/error.log warn;
events { worker_connections 8192; }
stream {
    server { listen 127.0.0.1:$3; proxy_pass 127.0.0.1:$4; }
    server { listen 127.0.0.1:$3 udp; proxy_pass 127.0.0.1:$4; proxy_timeout 30s; }
}
EOF
}

# wait_pool CLIENT_LOG SECONDS PID... : poll until the nodepass tunnel client reports a
# CHECK_POINT with POOL >= NP_WARM_POOL (its pool is warm) while the pids stay alive. The
# first CHECK_POINT comes right after the handshake, mid-fill (POOL 30-60 of 64); the pool
# is full about a second later. At the deadline a POOL > 0 is accepted with a warning.
wait_pool() {
    local f=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs)) n
    while ((SECONDS <= deadline)); do
        all_alive "$@" || return 1
        n=$(grep -ao 'CHECK_POINT|[^ ]*POOL=[0-9]*' "$f" 2>/dev/null | tail -n 1 | sed 's/.*POOL=//')
        [[ -n "$n" ]] && ((n >= NP_WARM_POOL)) && return 0
        sleep 0.1
    done
    if [[ -n "$n" ]] && ((n > 0)); then
        log "WARN $(basename "$(dirname "$f")"): pool only at POOL=$n after $secs s (wanted $NP_WARM_POOL); measuring anyway"
        return 0
    fi
    echo "pool not warm (POOL >= $NP_WARM_POOL) within $secs s; last POOL=${n:-none}" >>"$(dirname "$f")/start.log"
    RELAY_LOGS+=" $(dirname "$f")/start.log"
    return 1
}

# start_np_tunnel CONTENDER A B DIR QUERY [BIN] : a nodepass tunnel (server + client) taking
# users on 127.0.0.1:A to 127.0.0.1:B, both ends run by BIN (default: ours; the go-* contenders
# pass NP_GO_BIN). Name tokens: "rev" = flow - (server mode=1: the server listens on A, the
# client dials B), else flow + (server mode=2: the client listens on A, the server dials B);
# "tls" = tls=1 on the pool connections, else tls=0.
start_np_tunnel() {
    local c=$1 a=$2 b=$3 d=$4 q=$5 bin=${6:-$NODEPASS_BIN} tls=0 rev=0 tok
    [[ -x "$bin" ]] || { echo "no binary at ${bin:-(NP_GO_BIN unset)}" >"$d/start.log"; RELAY_LOGS="$d/start.log"; return 1; }
    for tok in ${c//-/ }; do
        case "$tok" in
        rev) rev=1 ;;
        tls) tls=1 ;;
        # nodepass-tunnel-quic* / -ws* / -h2*: pool type 1 (QUIC), 2 (WebSocket), 3 (HTTP/2).
        quic) q="&type=1$q" ;;
        ws) q="&type=2$q" ;;
        h2) q="&type=3$q" ;;
        esac
    done
    next_port
    local tun=$NEXT_PORT srv cli
    if ((rev)); then
        srv="server://$NP_KEY@127.0.0.1:$tun/127.0.0.1:$a?mode=1&tls=$tls$q"
        cli="client://$NP_KEY@127.0.0.1:$tun/127.0.0.1:$b?mode=2$q"
    else
        srv="server://$NP_KEY@127.0.0.1:$tun/127.0.0.1:$b?mode=2&tls=$tls$q"
        cli="client://$NP_KEY@127.0.0.1:$tun/127.0.0.1:$a?mode=2$q"
    fi
    spawn "$d/server.log" env NP_REPORT_INTERVAL=1s "$bin" "$srv"
    RELAY_PIDS=$SPAWNED_PID RELAY_LOGS="$d/server.log"
    wait_ready "$tun" 10 "$RELAY_PIDS" || return 1
    spawn "$d/client.log" env NP_REPORT_INTERVAL=1s "$bin" "$cli"
    RELAY_PIDS+=" $SPAWNED_PID" RELAY_LOGS+=" $d/client.log"
}

# rathole_certs DIR : a throw-away CA and a localhost server identity (PKCS#12, password
# "perf") for rathole's tls transport; made once per run.
rathole_certs() {
    local k=$1
    [[ -f "$k/identity.pfx" ]] && return 0
    mkdir -p "$k"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    {
        openssl req -x509 "${ec[@]}" -days 30 -subj /CN=perf-ca -keyout "$k/ca.key" -out "$k/ca.crt" &&
            openssl req "${ec[@]}" -subj /CN=localhost -keyout "$k/server.key" -out "$k/server.csr" &&
            printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$k/ext.cnf" &&
            openssl x509 -req -in "$k/server.csr" -CA "$k/ca.crt" -CAkey "$k/ca.key" -CAcreateserial \
                -days 30 -extfile "$k/ext.cnf" -out "$k/server.crt" &&
            openssl pkcs12 -export -out "$k/identity.pfx" -inkey "$k/server.key" -in "$k/server.crt" \
                -certfile "$k/ca.crt" -passout pass:perf
    } >"$k/openssl.log" 2>&1
}

# start_rathole CONTENDER A B DIR TAG : a rathole tunnel (server + client) taking users on
# 127.0.0.1:A to 127.0.0.1:B over the tcp (rathole) or tls (rathole-tls) transport; the
# sockperf backend also gets a UDP service on the same ports.
start_rathole() {
    local c=$1 a=$2 b=$3 d=$4 tag=$5
    [[ -x "$RATHOLE_BIN" ]] || { echo "rathole not installed (cargo install rathole)" >"$d/start.log"; RELAY_LOGS="$d/start.log"; return 1; }
    next_port
    local tun=$NEXT_PORT k="$WORK_DIR/rathole-tls" st="" ct=""
    if [[ "$c" == rathole-tls ]]; then
        rathole_certs "$k" || { cp "$k/openssl.log" "$d/start.log"; RELAY_LOGS="$d/start.log"; return 1; }
        st=$(printf '[server.transport]\ntype = "tls"\n[server.transport.tls]\npkcs12 = "%s"\npkcs12_password = "perf"\n' "$k/identity.pfx")
        ct=$(printf '[client.transport]\ntype = "tls"\n[client.transport.tls]\ntrusted_root = "%s"\nhostname = "localhost"\n' "$k/ca.crt")
    fi
    local su="" cu=""
    if [[ "$tag" == sock ]]; then
        su=$(printf '[server.services.u]\ntype = "udp"\nbind_addr = "127.0.0.1:%s"\n' "$a")
        cu=$(printf '[client.services.u]\ntype = "udp"\nlocal_addr = "127.0.0.1:%s"\n' "$b")
    fi
    printf '[server]\nbind_addr = "127.0.0.1:%s"\ndefault_token = "%s"\n%s\n[server.services.s]\nbind_addr = "127.0.0.1:%s"\n%s\n' \
        "$tun" "$NP_KEY" "$st" "$a" "$su" >"$d/server.toml"
    printf '[client]\nremote_addr = "127.0.0.1:%s"\ndefault_token = "%s"\n%s\n[client.services.s]\nlocal_addr = "127.0.0.1:%s"\n%s\n' \
        "$tun" "$NP_KEY" "$ct" "$b" "$cu" >"$d/client.toml"
    spawn "$d/server.log" env RUST_LOG="$RATHOLE_LOG" "$RATHOLE_BIN" --server "$d/server.toml"
    RELAY_PIDS=$SPAWNED_PID RELAY_LOGS="$d/server.log"
    wait_ready "$tun" 10 "$RELAY_PIDS" || return 1
    spawn "$d/client.log" env RUST_LOG="$RATHOLE_LOG" "$RATHOLE_BIN" --client "$d/client.toml"
    RELAY_PIDS+=" $SPAWNED_PID" RELAY_LOGS+=" $d/client.log"
}

# start_relay CONTENDER LISTEN_PORT TARGET_PORT TAG : start one relay instance that
# forwards 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT (TCP, and UDP where the relay
# can). Sets RELAY_PIDS (the instance's process-group leaders) and RELAY_LOGS; returns 1
# (reason via why_failed) when it does not come up.
start_relay() {
    local c=$1 lp=$2 tp=$3 tag=$4 d="$WORK_DIR/$1-$4"
    mkdir -p "$d"
    RELAY_PIDS=""
    RELAY_LOGS=""
    local q=""
    [[ -n "$NP_QUERY" ]] && q="&$NP_QUERY"
    case "$c" in
    nodepass-tunnel | nodepass-tunnel-*)
        start_np_tunnel "$c" "$lp" "$tp" "$d" "$q" || return 1
        ;;
    rathole | rathole-tls)
        start_rathole "$c" "$lp" "$tp" "$d" "$tag" || return 1
        ;;
    go-nodepass-tunnel | go-nodepass-tunnel-*)
        start_np_tunnel "$c" "$lp" "$tp" "$d" "$q" "$NP_GO_BIN" || return 1
        ;;
    go-nodepass)
        [[ -x "$NP_GO_BIN" ]] || { echo "NP_GO_BIN does not name a Go NodePass binary" >"$d/start.log"; RELAY_LOGS="$d/start.log"; return 1; }
        spawn "$d/np.log" "$NP_GO_BIN" "client://127.0.0.1:$lp/127.0.0.1:$tp?mode=1$q"
        RELAY_PIDS=$SPAWNED_PID RELAY_LOGS="$d/np.log"
        ;;
    realm)
        [[ -x "$REALM_BIN" ]] || { echo "realm not found (REALM_BIN)" >"$d/start.log"; RELAY_LOGS="$d/start.log"; return 1; }
        spawn "$d/realm.log" "$REALM_BIN" -l "127.0.0.1:$lp" -r "127.0.0.1:$tp" -u
        RELAY_PIDS=$SPAWNED_PID RELAY_LOGS="$d/realm.log"
        ;;
    nodepass | nodepass-w[0-9]* | nodepass-legacy | nodepass-uring | nodepass-copy | nodepass-usplice | nodepass-*-*)
        [[ -x "$NODEPASS_BIN" ]] || { echo "no binary at $NODEPASS_BIN" >"$d/start.log"; RELAY_LOGS="$d/start.log"; return 1; }
        # Variants: nodepass-wN sets NP_WORKERS=N; nodepass-legacy/-uring set NP_DRIVER;
        # nodepass-copy / nodepass-usplice pick the relay method (NP_RELAY=copy / uring-splice).
        local envs=() tok
        for tok in ${c//-/ }; do
            case "$tok" in
            w[0-9]*) envs+=("NP_WORKERS=${tok#w}") ;;
            legacy | uring) envs+=("NP_DRIVER=$tok") ;;
            copy) envs+=("NP_RELAY=copy") ;;
            usplice) envs+=("NP_RELAY=uring-splice") ;;
            esac
        done
        spawn "$d/np.log" env "${envs[@]}" "$NODEPASS_BIN" "client://127.0.0.1:$lp/127.0.0.1:$tp?mode=1$q"
        RELAY_PIDS=$SPAWNED_PID RELAY_LOGS="$d/np.log"
        ;;
    socat)
        command -v socat >/dev/null || { echo "socat not installed" >"$d/start.log"; RELAY_LOGS="$d/start.log"; return 1; }
        spawn "$d/socat.log" socat "TCP4-LISTEN:$lp,bind=127.0.0.1,fork,reuseaddr" "TCP4:127.0.0.1:$tp"
        RELAY_PIDS=$SPAWNED_PID RELAY_LOGS="$d/socat.log"
        spawn "$d/socat-udp.log" socat "UDP4-LISTEN:$lp,bind=127.0.0.1,fork,reuseaddr" "UDP4:127.0.0.1:$tp"
        RELAY_PIDS+=" $SPAWNED_PID" RELAY_LOGS+=" $d/socat-udp.log"
        ;;
    haproxy)
        command -v haproxy >/dev/null || { echo "haproxy not installed" >"$d/start.log"; RELAY_LOGS="$d/start.log"; return 1; }
        write_haproxy_cfg "$d/haproxy.cfg" "$lp" "$tp"
        spawn "$d/haproxy.log" haproxy -db -f "$d/haproxy.cfg"
        RELAY_PIDS=$SPAWNED_PID RELAY_LOGS="$d/haproxy.log"
        ;;
    nginx-stream)
        command -v nginx >/dev/null || { echo "nginx not installed" >"$d/start.log"; RELAY_LOGS="$d/start.log"; return 1; }
        [[ -f "$NGINX_STREAM_MODULE" ]] || { echo "no $NGINX_STREAM_MODULE (libnginx-mod-stream)" >"$d/start.log"; RELAY_LOGS="$d/start.log"; return 1; }
        write_nginx_stream_cfg "$d/nginx.conf" "$d" "$lp" "$tp"
        spawn "$d/nginx.log" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
        RELAY_PIDS=$SPAWNED_PID RELAY_LOGS="$d/nginx.log $d/error.log"
        ;;
    *)
        echo "unknown contender $c" >"$d/start.log"
        RELAY_LOGS="$d/start.log"
        return 1
        ;;
    esac
    # shellcheck disable=SC2086
    wait_ready "$lp" 10 $RELAY_PIDS || return 1
    # A tunnel is ready when its pool is warm (nodepass) and a first request goes through.
    if [[ "$c" == nodepass-tunnel* || "$c" == go-nodepass-tunnel* ]]; then
        # shellcheck disable=SC2086
        wait_pool "$d/client.log" "$NP_WARM_TIMEOUT" $RELAY_PIDS || return 1
    fi
    if [[ "$c" == nodepass-tunnel* || "$c" == go-nodepass-tunnel* || "$c" == rathole* ]]; then
        local kind=hold
        [[ "$tag" == http ]] && kind=http
        python3 "$PERF_DIR/probe.py" "$lp" "$kind" --deadline 10 ||
            { echo "no request got through 127.0.0.1:$lp within 10 s" >>"$d/start.log"; RELAY_LOGS+=" $d/start.log"; return 1; }
    fi
    # shellcheck disable=SC2086
    all_alive $RELAY_PIDS
}
