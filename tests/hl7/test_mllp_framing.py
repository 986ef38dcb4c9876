"""MLLP framing fed byte by byte, in odd chunks, broken, oversized; and property-based tests of
the framing and the parser (hypothesis): no uncaught exception, each case under 1 s."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.hl7v2 import BrokenFrame, Frame, HL7Rejected, MllpDecoder, frame, parse_message
from bridge.hl7v2.mllp import HEAD_BYTES, split_frames
from tests.hl7.messages import encode, nurse_mdm, sample

MESSAGE = encode(nurse_mdm())


def test_one_frame_byte_by_byte() -> None:
    decoder = MllpDecoder()
    events = [e for byte in frame(MESSAGE) for e in decoder.feed(bytes([byte]))]
    assert events == [Frame(MESSAGE)]
    assert not decoder.in_frame


def test_several_frames_in_one_chunk_with_noise_between() -> None:
    data = frame(b"A") + b"\r\n" + frame(b"B") + b"noise" + frame(b"C")
    assert split_frames(data) == [Frame(b"A"), Frame(b"B"), Frame(b"C")]
    decoder = MllpDecoder()
    decoder.feed(data)
    assert decoder.skipped == len(b"\r\nnoise")


def test_end_block_split_between_two_reads() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0bMSH|x\x1c") == []
    assert decoder.feed(b"\x0d") == [Frame(b"MSH|x")]


def test_a_lone_0x1c_inside_a_frame_is_data() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0ba\x1c") == []
    assert decoder.feed(b"b\x1c\x0d") == [Frame(b"a\x1cb")]


def test_an_interrupted_frame_is_reported_and_the_next_one_served() -> None:
    events = split_frames(b"\x0bMSH|^~\\&|half" + frame(b"MSH|whole"))
    assert events == [BrokenFrame("interrupted", b"MSH|^~\\&|half"), Frame(b"MSH|whole")]


def test_an_oversized_frame_is_dropped_but_keeps_its_head_and_the_next_frame_is_served() -> None:
    decoder = MllpDecoder(max_frame=1000)
    big = b"MSH|^~\\&|" + b"x" * 5000
    events = [e for i in range(0, len(big), 700) for e in decoder.feed(
        (b"\x0b" if i == 0 else b"") + big[i:i + 700])]
    events += decoder.feed(b"\x1c\x0d" + frame(b"small"))
    assert events == [BrokenFrame("oversized", big[:HEAD_BYTES]), Frame(b"small")]
    assert len(decoder._buffer) == 0


def test_exactly_max_frame_is_accepted() -> None:
    assert split_frames(frame(b"y" * 100), max_frame=100) == [Frame(b"y" * 100)]
    assert split_frames(frame(b"y" * 101), max_frame=100)[0] == BrokenFrame("oversized",
                                                                           b"y" * 101)


# ------------------------------------------------------------------------------- properties

MESSAGES = st.lists(st.binary(max_size=300).map(
    lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")), max_size=6)


class Counter:
    """Counts generated cases and checks each one's time (asked: under 1 s each)."""

    def __init__(self, name: str) -> None:
        self.name, self.cases = name, 0

    def case(self, started: float) -> None:
        self.cases += 1
        assert time.perf_counter() - started < 1.0

    def report(self) -> None:
        print(f"\nhypothesis {self.name}: {self.cases} generated cases")  # shown with -s
        assert self.cases > 0


def test_framing_finds_every_message_whatever_the_chunks() -> None:
    counter = Counter("framing (chunks)")

    @settings(max_examples=300, deadline=1000)
    @given(messages=MESSAGES, cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=40))
    def check(messages: list[bytes], cuts: list[int]) -> None:
        started = time.perf_counter()
        data = b"".join(frame(m) for m in messages)
        decoder, events, pos = MllpDecoder(), [], 0
        for cut in cuts:
            events += decoder.feed(data[pos:pos + cut])
            pos += cut
        events += decoder.feed(data[pos:])
        assert events == [Frame(m) for m in messages]
        counter.case(started)

    check()
    counter.report()


def test_framing_never_fails_on_random_bytes() -> None:
    counter = Counter("framing (random bytes)")

    @settings(max_examples=300, deadline=1000)
    @given(data=st.binary(max_size=2000), max_frame=st.integers(min_value=1, max_value=500))
    def check(data: bytes, max_frame: int) -> None:
        started = time.perf_counter()
        decoder = MllpDecoder(max_frame=max_frame)
        for event in decoder.feed(data):
            if isinstance(event, Frame):
                assert len(event.data) <= max_frame
        assert len(decoder._buffer) <= max_frame + 1
        counter.case(started)

    check()
    counter.report()


SAMPLES = [MESSAGE, sample("01-hl7-mdm-t02-cr-imagerie-init.er7"),
           sample("05-hl7-oru-r01-cr-bio-n1-n3.hl7")]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real message with a few bytes changed, deleted or inserted."""
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        pos = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["set", "delete", "insert", "cut"]))
        byte = draw(st.sampled_from([*b"|^~\\&\r\n\x00\xff\xc3Z9 ", 0x0B, 0x1C]))
        if action == "set" and pos < len(data):
            data[pos] = byte
        elif action == "delete" and pos < len(data):
            del data[pos]
        elif action == "insert":
            data.insert(pos, byte)
        elif action == "cut":
            del data[pos:]
    return bytes(data)


def test_the_parser_only_ever_raises_hl7_rejected() -> None:
    counter = Counter("parser (mutated and random messages)")
    outcomes = {"accepted": 0, "rejected": 0}

    @settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.one_of(mutated(), st.binary(max_size=500),
                          st.binary(max_size=200).map(lambda b: b"MSH|^~\\&|" + b)))
    def check(data: bytes) -> None:
        started = time.perf_counter()
        try:
            parse_message(data)
            outcomes["accepted"] += 1
        except HL7Rejected as exc:
            assert exc.message_fr and 100 <= int(exc.error) <= 207
            outcomes["rejected"] += 1
        counter.case(started)

    check()
    counter.report()
    print(f"parser outcomes: {outcomes}")
