"""A real server's DNS, for the tests' real servers (not a test module itself): answers
every query with the rcode in RCODE_FILE (NOERROR without one), no records.

    python tests/dns_server.py ADDRESS [RCODE_FILE]
"""

from __future__ import annotations

import socket
import struct
import sys


def main() -> None:
    address = sys.argv[1]
    rcode_file = sys.argv[2] if len(sys.argv) > 2 else None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    while True:
        query, peer = sock.recvfrom(512)
        rcode = 0
        if rcode_file is not None:
            with open(rcode_file, encoding="ascii") as fh:
                rcode = int(fh.read())
        sock.sendto(query[:2] + struct.pack("!HHHHH", 0x8180 | rcode, 1, 0, 0, 0)
                    + query[12:], peer)


if __name__ == "__main__":
    main()
