"""Print N distinct ports that are free on 127.0.0.1 for both TCP and UDP, one per line."""
import socket
import sys


def free_ports(n):
    held, ports = [], []
    while len(ports) < n:
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            held.append(tcp)
            udp.close()
            continue
        held += [tcp, udp]
        ports.append(port)
    for s in held:
        s.close()
    return ports


if __name__ == "__main__":
    print("\n".join(str(p) for p in free_ports(int(sys.argv[1]))))
