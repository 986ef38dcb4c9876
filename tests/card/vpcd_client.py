"""Our client of the vsmartcard `vpcd` reader driver: it plugs an emulated card into pcscd.

vpcd (a pcscd driver) listens on TCP 35963 for reader "Virtual PCD 00 00" and 35964 for
"Virtual PCD 00 01", one card per port. Each frame is a 2-byte big-endian length and a payload;
a 1-byte payload is a control code (0 power off, 1 power on, 2 reset, 4 send the ATR), anything
else a command APDU answered with the response APDU (spec/card-auth.md B2).

`serve_forever` reconnects in a loop, so a pcscd restart does not lose the card: while pcscd is
down the card is simply powered off, and it comes back when vpcd listens again. The card stays
"inserted" until this process ends. Nothing here logs an APDU.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Protocol

VPCD_PORTS = (35963, 35964)
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4


class SmartcardOS(Protocol):
    """virtualsmartcard's card surface."""

    def getATR(self) -> bytes: ...
    def powerUp(self) -> None: ...
    def powerDown(self) -> None: ...
    def reset(self) -> None: ...
    def execute(self, apdu: bytes) -> bytes: ...


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("vpcd closed the connection")
        data += chunk
    return data


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack("!H", len(payload)) + payload)


def serve_connection(card: SmartcardOS, sock: socket.socket) -> None:
    """Answer vpcd on one connection until it closes (raises ConnectionError/OSError then)."""
    while True:
        (length,) = struct.unpack("!H", _recv_exact(sock, 2))
        message = _recv_exact(sock, length) if length else b""
        if length == 1:
            code = message[0]
            if code == CTRL_OFF:
                card.powerDown()
            elif code == CTRL_ON:
                card.powerUp()
            elif code == CTRL_RESET:
                card.reset()
            elif code == CTRL_ATR:
                _send(sock, card.getATR())
            continue
        _send(sock, card.execute(message))


def serve_forever(card: SmartcardOS, *, host: str = "127.0.0.1", port: int = VPCD_PORTS[0],
                  retry_seconds: float = 0.2, stop: threading.Event | None = None) -> None:
    """Keep the card plugged into vpcd at `host:port`, reconnecting whenever vpcd goes away."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            sock = socket.create_connection((host, port), timeout=retry_seconds * 5)
        except OSError:
            stop.wait(retry_seconds)
            continue
        try:
            sock.settimeout(None)
            serve_connection(card, sock)
        except (ConnectionError, OSError):
            card.powerDown()  # pcscd went away: the card loses power, and its PIN state
        finally:
            sock.close()
        stop.wait(retry_seconds)
