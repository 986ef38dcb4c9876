"""Property-based: whatever bytes a folder receives, the parsers answer with a value or a
French refusal — never another exception — and each input is handled in well under a second.

Each example is timed and the test fails only above a generous 1 s bound (a real regression,
e.g. catastrophic backtracking), never on ordinary speed; the number of generated cases is
printed (`pytest -s` shows it).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import BridgeError
from bridge.folder_formats import FolderFormat, FolderProfile, read_file_set
from bridge.hprim import parse_hprim_net, parse_hprim_sante
from bridge.sidecar import parse_sidecar
from bridge.xdm import read_xdm, unsafe_member_name
from tests.factories import make_sidecar_dict
from tests.intake_formats.builders import hprim_net, hprim_sante

BOUND_SECONDS = 1.0
SETTINGS = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           # the timer counts across examples on purpose
                                           HealthCheck.function_scoped_fixture])
DOCTOR = {"rpps": "10101010101", "family_name": "MARTIN", "given_name": "Claire",
          "profession": "10", "structure_id": "499700366240007", "structure_name": "Cabinet"}


class Timer:
    """Counts and times the examples of one property."""

    def __init__(self) -> None:
        self.count = 0
        self.slowest = 0.0

    def run(self, function: Callable[[], object]) -> None:
        start = time.perf_counter()
        try:
            function()
        except BridgeError as exc:
            assert exc.message_fr and exc.code  # a refusal says what is wrong
        finally:
            elapsed = time.perf_counter() - start
            self.count += 1
            self.slowest = max(self.slowest, elapsed)
        assert elapsed < BOUND_SECONDS, f"one input took {elapsed:.2f} s"


@pytest.fixture
def timer(request: pytest.FixtureRequest) -> Iterator[Timer]:
    timing = Timer()
    yield timing
    print(f"\n{request.node.name}: {timing.count} cas générés, le plus lent "
          f"{timing.slowest * 1000:.1f} ms")
    assert timing.count > 0


# ------------------------------------------------------------------------------ HPRIM inputs

_FIELD = st.text(alphabet=st.sampled_from("AZaz09 ~^\\&|.-/éÈ:"), max_size=12)
_RECORD = st.builds(
    lambda name, fields: "|".join([name, *fields]),
    st.sampled_from(["H", "P", "OBR", "OBX", "A", "C", "L", "ZZ", "", "h", "OBX|1|FIC"]),
    st.lists(_FIELD, max_size=18))
_HEADER = st.builds(lambda d, rest: f"H|{d}|{rest}", st.text(
    alphabet=st.sampled_from("~^\\&|#!A "), min_size=0, max_size=6), _FIELD)
_END = st.sampled_from(["\r", "\n", "\r\n", "\n\r"])
_ENCODING = st.sampled_from(["utf-8", "latin-1", "cp1252", "utf-16"])


@st.composite
def hprim_sante_bytes(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=600))
    if choice == 1:  # the real fixture, cut or with a byte changed
        data = bytearray(hprim_sante())
        cut = draw(st.integers(0, len(data)))
        if draw(st.booleans()) and cut < len(data):
            data[cut] = draw(st.integers(0, 255))
            return bytes(data)
        return bytes(data[:cut])
    lines = [draw(_HEADER), *draw(st.lists(_RECORD, max_size=25))]
    if draw(st.booleans()):
        lines.append("L|1")
    text = draw(_END).join(lines)
    return text.encode(draw(_ENCODING), errors="replace")


@st.composite
def hprim_net_bytes(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=600))
    if choice == 1:
        data = hprim_net()
        return data[:draw(st.integers(0, len(data)))]
    marker = st.sampled_from(["****LAB****", "****FIN****", "****FINFICHIER****",
                              "RES|a|b|N|1|u|0|2|N|F", "TEX|x", "01/02/2003", "24/06/26",
                              "99/99/9999", "1234567890123 45", "&eacute;<br />"])
    lines = draw(st.lists(st.one_of(marker, st.text(max_size=40)), max_size=30))
    return draw(_END).join(lines).encode(draw(_ENCODING), errors="replace")


@SETTINGS
@given(data=hprim_sante_bytes())
def test_hprim_sante_never_raises_anything_but_a_refusal(timer: Timer, data: bytes) -> None:
    timer.run(lambda: parse_hprim_sante(data, file_name="F.HPR"))


@SETTINGS
@given(data=hprim_net_bytes())
def test_hprim_net_never_raises_anything_but_a_refusal(timer: Timer, data: bytes) -> None:
    timer.run(lambda: parse_hprim_net(data, file_name="F.HPM"))


@SETTINGS
@given(data=hprim_sante_bytes(), pdf_name=st.sampled_from(["echo-0042-cr.pdf", "F.pdf"]))
def test_an_hprim_file_set_never_raises_anything_but_a_refusal(
        timer: Timer, data: bytes, pdf_name: str) -> None:
    profile = FolderProfile(author=DOCTOR)
    timer.run(lambda: read_file_set(FolderFormat.HPRIM_SANTE, "F.HPR", data,
                                    {pdf_name: b"%PDF-1.4\n%%EOF"}, profile=profile,
                                    matrix=None))


# ---------------------------------------------------------------------------- sidecar inputs

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=15)


@st.composite
def sidecar_bytes(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=400))
    if choice == 1:
        return json.dumps(draw(_JSON)).encode()
    sidecar: dict[str, Any] = make_sidecar_dict()
    for _ in range(draw(st.integers(1, 4))):
        part = draw(st.sampled_from(["patient", "document", "author"]))
        key = draw(st.sampled_from([*sorted(sidecar[part]), "inconnu"]))
        if draw(st.booleans()):
            sidecar[part].pop(key, None)
        else:
            sidecar[part][key] = draw(_JSON)
    return json.dumps(sidecar, ensure_ascii=draw(st.booleans())).encode()


@SETTINGS
@given(data=sidecar_bytes())
def test_the_sidecar_parser_never_raises_anything_but_a_refusal(timer: Timer,
                                                               data: bytes) -> None:
    timer.run(lambda: parse_sidecar(data, file_name="F.json"))


# ------------------------------------------------------------------------------- XDM inputs

_NAME = st.text(alphabet=st.sampled_from("aZ09._-/\\:\x00 "), max_size=30) | st.sampled_from(
    ["../x", "IHE_XDM/SUBSET01/METADATA.XML", "IHE_XDM/SUBSET01/DOC0001.XML", "/abs", "C:/x"])


@SETTINGS
@given(name=_NAME)
def test_a_member_name_accepted_never_leaves_the_folder(timer: Timer, name: str) -> None:
    def check() -> None:
        if unsafe_member_name(name) is None:
            parts = name.removesuffix("/").split("/")  # a directory ends with one "/"
            assert ".." not in parts and "" not in parts and not name.startswith("/")
            assert "\\" not in name and ":" not in name

    timer.run(check)


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    buffer = io.BytesIO()
    metadata = draw(st.booleans())
    written: set[str] = {"IHE_XDM/SUBSET01/METADATA.XML"} if metadata else set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in draw(st.lists(_NAME, max_size=5)):
            stored = zipfile.ZipInfo(name).filename  # as zipfile normalises it
            if stored and stored not in written:
                written.add(stored)
                archive.writestr(name, draw(st.binary(max_size=200)))
        if metadata:
            archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", draw(st.sampled_from([
                b"<x/>", b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>",
                b'<r xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><rim:ExtrinsicObject'
                b' mimeType="text/xml"><rim:Slot name="URI"><rim:ValueList><rim:Value>DOC.XML'
                b"</rim:Value></rim:ValueList></rim:Slot></rim:ExtrinsicObject></r>"])))
    data = buffer.getvalue()
    cut = draw(st.integers(0, len(data)))
    return data if draw(st.booleans()) else data[:cut]


@SETTINGS
@given(data=archives())
def test_the_xdm_reader_never_raises_anything_but_a_refusal(timer: Timer, data: bytes) -> None:
    timer.run(lambda: read_xdm(data, file_name="F.zip"))
