#!/usr/bin/env python3
"""perf/soak.py — a tunnel under mixed TCP and UDP traffic while its ends are killed and
restarted at random moments. Run through perf/soak.sh (which builds the binary).

What it reports (and what must hold):
  - TCP sessions started / completed byte-exact / ended visibly (refused, reset, EOF before
    the end, timeout) / silently corrupted (bytes that arrived but differ: must be 0);
  - UDP datagrams sent / echoed intact / lost / corrupted (must be 0);
  - recovery time after each kill+restart: from the new process's start to the first good
    echo (p50, p99, max);
  - RSS and open fds of both processes over time (per process instance: must stay flat).

Everything runs on 127.0.0.1 with ports checked free; every loop is bounded by the
duration; every process it starts is killed at the end (also on Ctrl-C).
"""

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

from ports import free_ports  # perf/ports.py: TCP+UDP-free ports on 127.0.0.1


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}

    def add(self, key, n=1):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n

    def get(self, key):
        with self.lock:
            return self.c.get(key, 0)


def echo_server(stop):
    """A TCP and UDP echo on one port (the tunnel's target)."""
    (port,) = free_ports(1)
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(1024)
    tcp.settimeout(0.5)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    udp.settimeout(0.5)

    def serve_conn(c):
        c.settimeout(30)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def accept_loop():
        while not stop.is_set():
            try:
                c, _ = tcp.accept()
            except OSError:
                continue
            threading.Thread(target=serve_conn, args=(c,), daemon=True).start()

    def udp_loop():
        while not stop.is_set():
            try:
                d, a = udp.recvfrom(65536)
                udp.sendto(d, a)
            except OSError:
                continue

    threading.Thread(target=accept_loop, daemon=True).start()
    threading.Thread(target=udp_loop, daemon=True).start()
    return port


def tcp_session(addr, data, timeout):
    """One echo session. Returns 'ok', 'visible' (ended early, refused, reset, timeout) or
    'corrupt' (some bytes came back different from what was sent)."""
    try:
        s = socket.create_connection(addr, timeout=timeout)
    except OSError:
        return "visible"
    s.settimeout(timeout)
    got = bytearray()
    result = {}

    def reader():
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got.extend(d)
        except OSError:
            result["err"] = True

    r = threading.Thread(target=reader, daemon=True)
    r.start()
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    r.join(timeout + 1)
    s.close()
    if bytes(got) != data[: len(got)]:
        return "corrupt"
    if len(got) == len(data):
        return "ok"
    return "visible"


def tcp_worker(addr, stop, counts, timeout):
    rnd = random.Random()
    while not stop.is_set():
        size = rnd.choice([1, 100, 4096, 65536, 262144, 1 << 20])
        data = os.urandom(size)
        counts.add("tcp_started")
        outcome = tcp_session(addr, data, timeout)
        counts.add("tcp_" + outcome)
        if outcome != "ok":
            # A user whose connection failed tries again a little later, not in a hot loop
            # (so the counts are sessions, not refused connects while a process is down).
            stop.wait(0.1)


def udp_worker(addr, stop, counts):
    """Datagrams of 8..1400 bytes, each tagged with a sequence number, echoed one at a time.
    A reply equal to the one just sent is intact; equal to an earlier one, late; anything
    else (merged, split, altered) is corrupt."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    rnd = random.Random()
    sent = {}
    seq = 0
    while not stop.is_set():
        seq += 1
        data = seq.to_bytes(8, "big") + os.urandom(rnd.randint(0, 1392))
        sent[seq] = data
        sent.pop(seq - 2000, None)
        counts.add("udp_sent")
        try:
            s.sendto(data, addr)
            while True:
                d, _ = s.recvfrom(65536)
                if d == data:
                    counts.add("udp_ok")
                    break
                earlier = sent.get(int.from_bytes(d[:8], "big")) if len(d) >= 8 else None
                counts.add("udp_late" if earlier == d else "udp_corrupt")
        except OSError:
            counts.add("udp_lost")


def proc_stats(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds
    except (OSError, StopIteration):
        return None


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--tls", type=int, default=0)
    ap.add_argument("--tcp-workers", type=int, default=8)
    ap.add_argument("--udp-workers", type=int, default=4)
    ap.add_argument("--kill-every", type=float, nargs=2, default=[5, 20],
                    help="seconds between faults: uniform in [a, b]")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    minutes = min(max(a.minutes, 0.1), 120)
    stop = threading.Event()
    target = echo_server(stop)
    tun, user = free_ports(2)
    env = dict(os.environ, NP_SERVICE_COOLDOWN="1s")
    server_url = f"server://soak@127.0.0.1:{tun}/127.0.0.1:{user}?mode=1&max=64&tls={a.tls}&log=warn"
    client_url = f"client://soak@127.0.0.1:{tun}/127.0.0.1:{target}?mode=2&min=16&log=warn"
    logdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(logdir, exist_ok=True)
    procs = {}
    starts = {"server": 0, "client": 0}

    def start(name):
        url = server_url if name == "server" else client_url
        log = open(os.path.join(logdir, f"soak-{name}.log"), "a")
        procs[name] = subprocess.Popen([a.bin, url], stdout=log, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        starts[name] += 1
        return time.monotonic()

    def kill_all(*_):
        stop.set()
        for p in procs.values():
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass

    signal.signal(signal.SIGINT, lambda *x: (kill_all(), sys.exit(130)))
    signal.signal(signal.SIGTERM, lambda *x: (kill_all(), sys.exit(143)))

    counts = Counters()
    user_addr = ("127.0.0.1", user)
    start("server")
    time.sleep(0.3)
    start("client")
    # Wait for the first good echo (bounded).
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        if tcp_session(user_addr, b"warmup", 2) == "ok":
            break
        time.sleep(0.1)
    else:
        kill_all()
        print("the tunnel never came up; see perf/results/soak-*.log")
        return 1

    recoveries = []
    faults = []
    samples = []  # (t, name, instance, rss_kib, fds)
    began = time.monotonic()
    end = began + minutes * 60

    def chaos():
        rnd = random.Random()
        while not stop.is_set():
            wait = rnd.uniform(*a.kill_every)
            if stop.wait(wait) or time.monotonic() > end - 10:
                return
            name = rnd.choice(["server", "client"])
            how = rnd.choice(["KILL", "TERM"])
            p = procs[name]
            p.send_signal(signal.SIGKILL if how == "KILL" else signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if stop.wait(rnd.uniform(0, 2)):
                return
            restarted = start(name)
            faults.append((round(time.monotonic() - began, 1), name, how))
            probe = os.urandom(4096)
            while not stop.is_set() and time.monotonic() - restarted < 60:
                if tcp_session(user_addr, probe, 3) == "ok":
                    recoveries.append(time.monotonic() - restarted)
                    break
                time.sleep(0.05)

    def monitor():
        while not stop.wait(5):
            for name, p in list(procs.items()):
                st = proc_stats(p.pid)
                if st:
                    samples.append((round(time.monotonic() - began), name, starts[name], st[0], st[1]))

    threads = [threading.Thread(target=tcp_worker, args=(user_addr, stop, counts, 10), daemon=True)
               for _ in range(a.tcp_workers)]
    threads += [threading.Thread(target=udp_worker, args=(user_addr, stop, counts), daemon=True)
                for _ in range(a.udp_workers)]
    threads += [threading.Thread(target=chaos, daemon=True), threading.Thread(target=monitor, daemon=True)]
    for t in threads:
        t.start()
    while time.monotonic() < end:
        time.sleep(1)
    stop.set()
    for t in threads:
        t.join(15)
    final = {n: proc_stats(p.pid) for n, p in procs.items()}
    kill_all()

    # Per process instance: first and last sample after its first 10 s (warm), to see drift.
    drift = []
    by_inst = {}
    for t, n, i, rss, fds in samples:
        by_inst.setdefault((n, i), []).append((t, rss, fds))
    for (n, i), xs in sorted(by_inst.items()):
        if len(xs) >= 3:
            first, last = xs[1], xs[-1]
            drift.append((n, i, last[0] - first[0], first[1], last[1], first[2], last[2]))

    c = counts
    lines = []
    lines.append(f"# Soak: {minutes:g} min, tls={a.tls}, {a.tcp_workers} TCP + {a.udp_workers} UDP workers")
    lines.append("")
    lines.append(f"Command: `bash perf/soak.sh --minutes {minutes:g} --tls {a.tls}`")
    lines.append("")
    lines.append("| TCP sessions | count |")
    lines.append("|---|---|")
    for k, label in [("tcp_started", "started"), ("tcp_ok", "completed byte-exact"),
                     ("tcp_visible", "ended visibly (refused/reset/EOF/timeout)"),
                     ("tcp_corrupt", "**silently corrupted (must be 0)**")]:
        lines.append(f"| {label} | {c.get(k)} |")
    lines.append("")
    lines.append("| UDP datagrams | count |")
    lines.append("|---|---|")
    for k, label in [("udp_sent", "sent"), ("udp_ok", "echoed intact"), ("udp_lost", "lost (1 s timeout)"),
                     ("udp_late", "late echo of an earlier datagram"),
                     ("udp_corrupt", "**merged, split or altered (must be 0)**")]:
        lines.append(f"| {label} | {c.get(k)} |")
    lines.append("")
    lines.append(f"Faults: {len(faults)} (" + ", ".join(f"{t}s {n} SIG{h}" for t, n, h in faults) + ")")
    lines.append("")
    if recoveries:
        lines.append(f"Recovery (restart → first good echo): p50 {statistics.median(recoveries):.2f} s, "
                     f"p99 {percentile(recoveries, 99):.2f} s, max {max(recoveries):.2f} s, "
                     f"{len(recoveries)}/{len(faults)} recovered")
    lines.append("")
    lines.append("| process (instance) | span s | RSS KiB first → last | fds first → last |")
    lines.append("|---|---|---|---|")
    for n, i, span, r0, r1, f0, f1 in drift:
        lines.append(f"| {n} #{i} | {span} | {r0} → {r1} | {f0} → {f1} |")
    lines.append("")
    lines.append(f"Final: {final}")
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 1 if c.get("tcp_corrupt") or c.get("udp_corrupt") else 0


if __name__ == "__main__":
    sys.exit(main())
