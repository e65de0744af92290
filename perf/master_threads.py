#!/usr/bin/env python3
"""perf/master_threads.py — threads and memory of a master running N instances.

    python3 perf/master_threads.py                      # 500 instances, target/debug/nodepass
    python3 perf/master_threads.py --instances 100 --bin target/release/nodepass

Starts `nodepass master://127.0.0.1:<port>/api` with NP_MASTER_STATE_DIR in a temp dir,
creates N instances through the API (`client://127.0.0.1:<p>/127.0.0.1:<q>?mode=1&log=warn`,
single-end forwarders on free ports, real children of the master), waits until every one is
`running` and printing CHECK_POINTs, then reads the master's /proc: threads (by name),
VmRSS, PSS (smaps_rollup). The same figures with 0 instances come first. The master and
its instances are stopped at the end (SIGTERM, Go's shutdown order).
"""
import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ports import free_ports  # noqa: E402


def proc_figures(pid):
    names = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        # np-inst-<id> / np-inst-err-<id>: one kind, whatever the id.
        for prefix in ("np-inst-err-", "np-inst-"):
            if name.startswith(prefix):
                name = prefix + "*"
                break
        names[name] += 1
    status = dict(
        line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line
    )
    pss = "?"
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                pss = line.split()[1] + " kB"
    except OSError:
        pass
    return {
        "threads": int(status["Threads"]),
        "rss": status["VmRSS"].strip(),
        "pss": pss,
        "names": dict(sorted(names.items())),
    }


def api(base, key, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("X-API-Key", key)
    if data:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def wait_for(what, pred, limit):
    end = time.time() + limit
    while time.time() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--bin", default="target/debug/nodepass")
    ap.add_argument("--settle", type=float, default=6.0, help="seconds after all run")
    args = ap.parse_args()

    state = tempfile.mkdtemp(prefix="np-master-threads-")
    out = open(os.path.join(state, "master.log"), "w+")
    (port,) = free_ports(1)
    env = dict(os.environ, NP_MASTER_STATE_DIR=state)
    master = subprocess.Popen(
        [args.bin, f"master://127.0.0.1:{port}/api?log=warn"],
        stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    try:
        state_file = os.path.join(state, "nodepass.json")

        def key():
            try:
                doc = json.load(open(state_file))
            except (OSError, ValueError):
                return None
            return next(i["url"] for i in doc["instances"] if i["id"] == "********")

        key = wait_for("the API key", key, 10)
        base = f"http://127.0.0.1:{port}/api/v1"
        time.sleep(1)
        print(f"kernel {os.uname().release}, {os.cpu_count()} cpus, binary {args.bin}")
        print("0 instances:", json.dumps(proc_figures(master.pid)))

        ports = free_ports(2 * args.instances)
        t0 = time.time()
        for i in range(args.instances):
            url = f"client://127.0.0.1:{ports[2*i]}/127.0.0.1:{ports[2*i+1]}?mode=1&log=warn"
            api(base, key, "POST", "/instances", {"url": url})

        def all_running():
            insts = [i for i in api(base, key, "GET", "/instances") if i["id"] != "********"]
            up = [i for i in insts if i["status"] == "running" and i["mode"] == 1]
            return len(up) == args.instances

        wait_for("every instance running with a CHECK_POINT", all_running, 120)
        print(f"{args.instances} instances running after {time.time() - t0:.1f} s")
        time.sleep(args.settle)
        fig = proc_figures(master.pid)
        print(f"{args.instances} instances:", json.dumps(fig))
        t0 = time.time()
        info = api(base, key, "GET", "/info")
        print(f"GET /info answered in {1000 * (time.time() - t0):.1f} ms (ver {info.get('ver')})")
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait()


if __name__ == "__main__":
    main()
