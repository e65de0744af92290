"""Helpers for perf/idle_memory.sh (W8): a TCP echo target, a connection holder, a process-tree probe.

  idle_hold.py echo PORT              echo server on 127.0.0.1:PORT (one process, asyncio)
  idle_hold.py hold PORT N SECS       open N connections, send 1 byte on each, wait (≤ SECS) until
                                      every byte came back, print "ready N", hold until stdin closes
  idle_hold.py stat PID...            JSON: PSS KiB, threads, iou-wrk threads of the pids' trees,
                                      system-wide iou-wrk count, /proc/net/sockstat TCP mem pages
"""
import asyncio
import json
import os
import selectors
import socket
import sys
import time


def echo(port):
    async def handle(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def hold(port, n, secs):
    sel = selectors.DefaultSelector()
    socks = []
    deadline = time.monotonic() + secs
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=max(1.0, deadline - time.monotonic()))
        s.sendall(b"x")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    pending = n
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            if key.fileobj.recv(16):
                sel.unregister(key.fileobj)
                pending -= 1
    if pending:
        print(f"timeout: {pending} of {n} connections got no echo", flush=True)
        return 1
    print(f"ready {n}", flush=True)
    sys.stdin.read()
    return 0


def tree(roots):
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    s = f.read()
            except OSError:
                continue
            kids.setdefault(int(s[s.rfind(")") + 2:].split()[1]), []).append(int(name))
    seen, stack = [], list(roots)
    while stack:
        p = stack.pop()
        if p not in seen:
            seen.append(p)
            stack.extend(kids.get(p, []))
    return seen


def field(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def task_names(pid):
    names = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/comm") as f:
                    names.append(f.read().strip())
            except OSError:
                pass
    except OSError:
        pass
    return names


def stat(roots):
    pids = tree(roots)
    names = [n for p in pids for n in task_names(p)]
    system_iou = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            system_iou += sum(1 for n in task_names(int(name)) if n.startswith("iou-wrk"))
    mem = 0
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                mem = int(parts[parts.index("mem") + 1])
    return {
        "procs": len(pids),
        "pss_kib": sum(field(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids),
        "rss_kib": sum(field(f"/proc/{p}/status", "VmRSS:") for p in pids),
        "threads": len(names),
        "iou_wrk": sum(1 for n in names if n.startswith("iou-wrk")),
        "iou_wrk_system": system_iou,
        "sockstat_tcp_mem_pages": mem,
    }


def main():
    cmd = sys.argv[1]
    if cmd == "echo":
        echo(int(sys.argv[2]))
    elif cmd == "hold":
        return hold(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "stat":
        print(json.dumps(stat([int(p) for p in sys.argv[2:]])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
