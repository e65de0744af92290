#!/usr/bin/env bash
# Build the image and check it: --check runs, and a master keeps its API key in the /data
# volume across two containers (uid 65532, the image's layout). Run by .ci/run when a Docker
# daemon is reachable; exits 0 with a message otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "docker image check skipped: no Docker daemon (tests/it/ops_state_dir.rs covers the layout)"
    exit 0
fi
IMAGE=nodepass-ci:$$
VOLUME=nodepass-ci-data-$$
CID=
cleanup() {
    [[ -n $CID ]] && docker rm -f "$CID" >/dev/null 2>&1 || true
    docker volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    docker image rm -f "$IMAGE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

docker build -t "$IMAGE" .
docker run --rm "$IMAGE" --check "server://secret@:10101/127.0.0.1:8080" | grep -q '^server://secret@'
docker volume create "$VOLUME" >/dev/null

# run_master NEEDLE: start a master on the volume, wait ≤ 20 s for NEEDLE in its log, stop it.
run_master() {
    CID=$(docker run -d -v "$VOLUME:/data" --network none "$IMAGE" "master://127.0.0.1:9090/api")
    local i
    for i in $(seq 1 100); do
        if docker logs "$CID" 2>&1 | grep -q "$1"; then
            docker stop -t 10 "$CID" >/dev/null
            if docker logs "$CID" 2>&1 | grep -q 'saveState'; then
                docker logs "$CID" 2>&1 | tail -n 20
                return 1
            fi
            docker rm "$CID" >/dev/null
            CID=
            return 0
        fi
        sleep 0.2
    done
    echo "no \"$1\" within 20 s:"
    docker logs "$CID" 2>&1 | tail -n 20
    return 1
}
run_master "API Key created"
run_master "API Key loaded from /data/nodepass.json"
echo "docker image: --check works; the master's key survives a new container in /data"
