"""Probe that a relay on 127.0.0.1:PORT really reaches its backend; exit 0 when it does.

  probe.py PORT http|hold [--deadline S]

http: send one GET and require an HTTP status line back (the nginx backend).
hold: connect and require that the connection stays open for 0.3 s without EOF/reset (a
relay that cannot reach its target closes the user's connection at once; iperf3 and
sockperf servers wait for the client to speak first, so silence means "through").
Retries until the deadline (default 10 s).
"""
import socket
import sys
import time


def once(port, kind):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        if kind == "http":
            s.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.")
        s.settimeout(0.3)
        try:
            return s.recv(1) != b""  # data first: odd, but the path is through
        except socket.timeout:
            return True


def main():
    port, kind = int(sys.argv[1]), sys.argv[2]
    deadline = time.monotonic() + (float(sys.argv[4]) if len(sys.argv) > 4 else 10.0)
    while True:
        try:
            if once(port, kind):
                return 0
        except OSError:
            pass
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
