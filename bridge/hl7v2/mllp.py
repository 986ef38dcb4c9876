"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol): `0x0B` message `0x1C 0x0D`.

Pure bytes in, frames out: the socket lives in connectors/mllp_server.py. The decoder is fed
whatever the network delivers (one byte at a time or many frames at once) and never holds more
than `max_frame` bytes of one frame: a sender that never closes its frame cannot exhaust memory.

What the decoder reports:
- `Frame`: a complete message (the bytes between the start and end blocks);
- `BrokenFrame("oversized")`: the frame passed `max_frame`; its bytes are dropped up to its end
  block, `head` keeps its first bytes so the receiver can still read MSH-10 for the ACK;
- `BrokenFrame("interrupted")`: a new start block came before the end block (the sender gave up
  on that frame and started another): the partial frame is dropped.
Bytes outside any frame (CR/LF between frames, noise) are skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
DEFAULT_MAX_FRAME = 32 * 1024 * 1024  # a 20 MiB CDA in base64 plus its HL7 segments
HEAD_BYTES = 4096  # enough for the MSH segment of any real message


def frame(message: bytes) -> bytes:
    """The MLLP frame of one message."""
    return START_BLOCK + message + END_BLOCK


@dataclass(frozen=True)
class Frame:
    """One complete message."""

    data: bytes = field(repr=False)


@dataclass(frozen=True)
class BrokenFrame:
    """A frame that cannot be delivered; `head` = its first bytes (for the ACK)."""

    reason: Literal["oversized", "interrupted"]
    head: bytes = field(repr=False)


@dataclass
class MllpDecoder:
    """Incremental decoder: `feed(bytes)` returns the frames completed by these bytes."""

    max_frame: int = DEFAULT_MAX_FRAME
    skipped: int = 0  # bytes seen outside any frame
    _buffer: bytearray = field(default_factory=bytearray, repr=False)
    _in_frame: bool = False
    _discarding: bool = False  # inside an oversized frame: drop until its end block
    _head: bytes = b""
    _pending_cr: bool = False  # the last byte fed was 0x1C, its 0x0D may come next

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and not ended (the server times it)."""
        return self._in_frame

    def feed(self, data: bytes) -> list[Frame | BrokenFrame]:
        out: list[Frame | BrokenFrame] = []
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if not self._in_frame:
                start = data.find(START_BLOCK, pos)
                if start < 0:
                    self.skipped += len(view) - pos
                    break
                self.skipped += start - pos
                self._open()
                pos = start + 1
                continue
            pos = self._consume(data, pos, out)
        return out

    def _open(self) -> None:
        self._in_frame = True
        self._discarding = False
        self._buffer.clear()
        self._head = b""
        self._pending_cr = False

    def _consume(self, data: bytes, pos: int, out: list[Frame | BrokenFrame]) -> int:
        """Read frame bytes from `pos`; return where reading stopped."""
        if self._pending_cr:
            self._pending_cr = False
            if data[pos] == 0x0D:
                self._close(out, drop_last=1)
                return pos + 1
        end = data.find(END_BLOCK, pos)
        restart = data.find(START_BLOCK, pos)
        if restart >= 0 and (end < 0 or restart < end):
            # A new frame starts before this one ended: this one is lost.
            self._append(data[pos:restart])
            out.append(BrokenFrame("interrupted", self._head_bytes()))
            self._open()
            return restart + 1
        if end < 0:
            self._append(data[pos:])
            self._pending_cr = data.endswith(b"\x1c")
            return len(data)
        self._append(data[pos:end])
        self._close(out, drop_last=0)
        return end + len(END_BLOCK)

    def _append(self, chunk: bytes) -> None:
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]
        if self._discarding:
            return
        self._buffer += chunk
        # Allow for a trailing 0x1C whose 0x0D has not arrived yet.
        if len(self._buffer) > self.max_frame + 1:
            self._discarding = True
            self._buffer.clear()

    def _head_bytes(self) -> bytes:
        return self._head

    def _close(self, out: list[Frame | BrokenFrame], *, drop_last: int) -> None:
        if self._discarding:
            out.append(BrokenFrame("oversized", self._head))
        else:
            data = bytes(self._buffer[: len(self._buffer) - drop_last])
            if len(data) > self.max_frame:
                out.append(BrokenFrame("oversized", self._head))
            else:
                out.append(Frame(data))
        self._in_frame = False
        self._discarding = False
        self._buffer.clear()
        self._head = b""


def split_frames(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> list[Frame | BrokenFrame]:
    """Every complete frame in a byte string (a file of framed messages, a test buffer)."""
    return MllpDecoder(max_frame=max_frame).feed(data)
