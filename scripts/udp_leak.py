#!/usr/bin/env python3
"""Measure nodepass's RSS across rounds of many short-lived UDP sessions.

usage: scripts/udp_leak.py [BINARY] [ROUNDS] [ADDRS_PER_ROUND] [single|tunnel]
single (default): BINARY (default target/debug/nodepass) runs as
  client://127.0.0.1:P/127.0.0.1:E?mode=1.
tunnel: a reverse tunnel, server://k@127.0.0.1:T/127.0.0.1:P?mode=1&tls=1 with
  client://k@127.0.0.1:T/127.0.0.1:E?mode=2&min=8; both RSS values are printed.
Each round sends one datagram from each of ADDRS_PER_ROUND fresh client sockets to P
(NP_UDP_READ_TIMEOUT=1s), waits until the sessions have expired (fd counts back to
their idle values), and prints VmRSS.
"""
import os, socket, subprocess, sys, threading, time

binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/nodepass"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
per_round = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
mode = sys.argv[4] if len(sys.argv) > 4 else "single"
batch = 500 if mode == "single" else 100

echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
echo.bind(("127.0.0.1", 0))
echo.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
eport = echo.getsockname()[1]

def serve():
    while True:
        data, addr = echo.recvfrom(65536)
        echo.sendto(data, addr)

threading.Thread(target=serve, daemon=True).start()

def free_port():
    """A port free for TCP and UDP, below the ephemeral range (as tests/it/common does)."""
    import random
    while True:
        port = random.randint(10000, 30000)
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as p:
                    p.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue

port = free_port()
env = dict(os.environ, NP_UDP_READ_TIMEOUT="1s", NP_WORKERS="2")
log = os.environ.get("NP_LEAK_LOG")  # e.g. NP_LEAK_LOG=debug shows nodepass's output
if mode == "single":
    urls = [f"client://127.0.0.1:{port}/127.0.0.1:{eport}?mode=1"]
else:
    tun = free_port()
    urls = [f"server://k3y@127.0.0.1:{tun}/127.0.0.1:{port}?mode=1&tls=1",
            f"client://k3y@127.0.0.1:{tun}/127.0.0.1:{eport}?mode=2&min=8"]
out = None if log else subprocess.DEVNULL
procs = []
for url in urls:
    url += f"&log={log or 'warn'}"
    procs.append(subprocess.Popen([binary, url], env=env, stdout=out, stderr=out))
    time.sleep(0.3)

def rss_kb():
    out = []
    for proc in procs:
        with open(f"/proc/{proc.pid}/status") as f:
            out += [int(l.split()[1]) for l in f if l.startswith("VmRSS:")]
    return "/".join(str(v) for v in out)

def fds():
    return sum(len(os.listdir(f"/proc/{p.pid}/fd")) for p in procs)

def wait_for(cond, limit):
    end = time.time() + limit
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()

try:
    def ready():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(b"x", ("127.0.0.1", port))
            return s.recv(16) == b"x"
        except OSError:
            return False
        finally:
            s.close()
    assert wait_for(ready, 15), "forwarder not answering"
    wait_for(lambda: False, 2.5)
    idle_fds = fds()
    print(f"start: rss={rss_kb()} kB fds={idle_fds}", flush=True)
    for r in range(1, rounds + 1):
        answered = 0
        for base in range(0, per_round, batch):
            socks = []
            for i in range(min(batch, per_round - base)):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", 0))
                s.sendto(b"ping%d" % i, ("127.0.0.1", port))
                socks.append(s)
            for s in socks:
                s.settimeout(1.0)
                try:
                    s.recv(64)
                    answered += 1
                except OSError:
                    pass
                s.close()
        if mode == "single":
            settled = wait_for(lambda: fds() <= idle_fds, 20)
        else:
            # Pool connections come and go: let the sessions expire (1 s idle) instead.
            time.sleep(2.5)
            settled = "n/a"
        print(f"round {r}: answered={answered}/{per_round} settled={settled} "
              f"rss={rss_kb()} kB fds={fds()}", flush=True)
finally:
    for proc in procs:
        proc.kill()
        proc.wait()
