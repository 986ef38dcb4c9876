"""The simulator's MTOM reader, fed bytes directly."""

from __future__ import annotations

import pytest
from lxml import etree

from service.simulator.mtom import MtomError, include_bytes, normalize_cid, parse_mtom

XOP = "http://www.w3.org/2004/08/xop/include"
CT = 'multipart/related; boundary="b1"; type="application/xop+xml"; start="<root@x>"'


def _body(*parts: tuple[str, bytes], sep: bytes = b"\r\n") -> bytes:
    out = b""
    for cid, data in parts:
        out += b"--b1" + sep + f"Content-ID: <{cid}>".encode() + sep + sep + data + sep
    return out + b"--b1--" + sep


def test_root_by_start_and_parts() -> None:
    message = parse_mtom(CT, _body(("a%40x", b"AAA\r\n"), ("root@x", b"<r/>")))
    assert message.root == b"<r/>"
    assert message.parts == {"a%40x": b"AAA\r\n"}


def test_bare_lf_and_first_part_as_root() -> None:
    ct = 'multipart/related; boundary="b1"; type="application/xop+xml"'
    message = parse_mtom(ct, _body(("0.1", b"<r/>"), ("0.2", b"data"), sep=b"\n"))
    assert message.root == b"<r/>"
    assert message.parts == {"0.2": b"data"}


def test_cid_forms() -> None:
    assert normalize_cid("cid:abc%40host") == "abc@host"
    assert normalize_cid("<0.2>") == "0.2"
    element = etree.fromstring(f'<d><xop:Include xmlns:xop="{XOP}" href="cid:a%40x"/></d>')
    assert include_bytes(element, {"a@x": b"ok"}) == b"ok"
    with pytest.raises(MtomError):
        include_bytes(element, {})


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (CT, b"no boundary here"),
        (CT, b"--b1\r\nContent-ID: <root@x>\r\n\r\n<r/>"),  # no closing delimiter
        ('multipart/related; type="application/xop+xml"', b"--b1--"),  # no boundary param
        (CT, _body(("other@x", b"<r/>"))),  # start part missing
        (CT, _body(("root@x", b"<r/>"), ("root@x", b"x"))),  # duplicate Content-ID
    ],
)
def test_refusals(content_type: str, body: bytes) -> None:
    with pytest.raises(MtomError):
        parse_mtom(content_type, body)


def test_size_limit() -> None:
    with pytest.raises(MtomError):
        parse_mtom(CT, _body(("root@x", b"<r/>" * 100)), max_bytes=50)
