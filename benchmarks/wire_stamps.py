"""Kernel arrival times of DTLS application-data datagrams on the loopback interface.

    python benchmarks/wire_stamps.py OUT.jsonl

A helper process of `telepresence.py` (run in its own process so that it takes nothing from
the measured server's CPU or GIL): an AF_PACKET socket on `lo` with SO_TIMESTAMPNS gives the
time each UDP datagram reached the kernel. A line per datagram whose payload starts with
0x17 (DTLS application data: SCTP, the data channel): [time_s, dst_port, record], record
being the hex of the DTLS record's epoch and sequence number (header bytes 3-10, in clear),
which the benchmark also reads from the datagram the server handles.
Needs CAP_NET_RAW (root, or the benchmark's `unshare -n`, where it runs as root); without it
the benchmark leaves the wire split out. Stops on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import sys

ETH_P_IP = 0x0800
SO_TIMESTAMPNS = 35  # Linux; not exported by the socket module
ETH_HEADER = 14


def main() -> int:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.bind(("lo", 0))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(sys.argv[1], "w", buffering=1) as out:
        print("ready", file=out)
        while True:
            record = _arrival(*sock.recvmsg(65535, 256))
            if record is not None:
                out.write(json.dumps(record) + "\n")


def _arrival(data: bytes, ancillary: list[tuple[int, int, bytes]], _flags: int,
             addr: tuple[object, ...]) -> list[float | int | str] | None:
    """[kernel time, UDP destination port, record key] of an incoming DTLS application data
    datagram; None for anything else."""
    if addr[2] == socket.PACKET_OUTGOING or len(data) < ETH_HEADER + 29:
        return None
    ip = data[ETH_HEADER:]
    if ip[9] != socket.IPPROTO_UDP:
        return None
    udp = ip[(ip[0] & 0x0F) * 4:]
    payload = udp[8:struct.unpack("!H", udp[4:6])[0]]
    if len(payload) < 11 or payload[0] != 0x17:
        return None
    stamp = next((struct.unpack("qq", d[:16]) for level, kind, d in ancillary
                  if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
    if stamp is None:
        return None
    return [stamp[0] + stamp[1] * 1e-9, struct.unpack("!H", udp[2:4])[0], payload[3:11].hex()]

if __name__ == "__main__":
    sys.exit(main())
