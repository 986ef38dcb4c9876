"""A test-only ITI-41 / ITI-18 request maker, written WITHOUT the bridge builders.

With lxml and signxml only, it builds a CDA N1 with a tiny PDF (`cda_template`), the ebRIM
metadata (`ebrim_maker`), the XAdES signature of the submission set and the VIHF (`signing`),
then the SOAP 1.2 envelope with WS-Addressing and its MTOM packaging (here). Every knob a test
needs to break one thing is a field of `WireSpec`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lxml import etree

from service.test_pki import TestPki
from tests.simulator.cda_template import cda_n1
from tests.simulator.ebrim_maker import build_request
from tests.simulator.signing import build_vihf, build_xades
from tests.simulator.wire_base import (
    FIND_DOCUMENTS,
    GET_DOCUMENTS,
    ITI18,
    ITI41,
    QUERY,
    RIM,
    SOAP,
    WSA,
    WSSE,
    WireSpec,
    _cx,
    _sub,
    new_oid,
    q,
)

__all__ = ["WireRequest", "WireSpec", "build_iti41", "find_documents", "get_documents", "new_oid"]


@dataclass(frozen=True)
class WireRequest:
    """What goes on the wire: headers and body, plus what the test may want to compare."""

    content_type: str
    body: bytes
    message_id: str
    cda: bytes = b""
    xades: bytes = b""


def envelope(action: str, to: str, body_child: etree._Element, *,
             vihf: etree._Element | None = None, omit: frozenset[str] = frozenset(),
             bare_must_understand: bool = False) -> tuple[etree._Element, str]:
    """A SOAP 1.2 envelope with WS-Addressing (minus `omit`) and the VIHF in wsse:Security."""
    env = etree.Element(q(SOAP, "Envelope"), nsmap={"soap": SOAP, "wsa": WSA})
    header = _sub(env, SOAP, "Header")
    message_id = f"urn:uuid:{uuid.uuid4()}"
    for name, value in (("MessageID", message_id), ("To", to), ("Action", action)):
        if name not in omit:
            el = _sub(header, WSA, name, value)
            if name == "Action":
                el.set("mustUnderstand" if bare_must_understand else q(SOAP, "mustUnderstand"),
                       "true")
    if vihf is not None:
        security = etree.SubElement(header, q(WSSE, "Security"), nsmap={"wsse": WSSE})
        security.append(vihf)
    _sub(env, SOAP, "Body").append(body_child)
    return env, message_id


def mtom(root_xml: bytes, parts: list[tuple[str, bytes]], action: str) -> tuple[str, bytes]:
    """multipart/related with an application/xop+xml root, CRLF separators, binary parts."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_cid = f"root.{uuid.uuid4().hex}@dmp-bridge.test"
    chunks = [
        f"--{boundary}\r\n".encode(),
        (f'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"; '
         f'action="{action}"\r\nContent-Transfer-Encoding: binary\r\n'
         f"Content-ID: <{root_cid}>\r\n\r\n").encode(),
        root_xml,
    ]
    for cid, data in parts:
        chunks += [
            f"\r\n--{boundary}\r\n".encode(),
            (f"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
             f"Content-ID: <{cid}>\r\n\r\n").encode(),
            data,
        ]
    chunks.append(f"\r\n--{boundary}--\r\n".encode())
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
        f'start="<{root_cid}>"; start-info="application/soap+xml"; action="{action}"'
    )
    return content_type, b"".join(chunks)


def build_iti41(pki: TestPki, spec: WireSpec | None = None) -> WireRequest:
    """A complete ITI-41 MTOM request: valid unless `spec` breaks something."""
    spec = spec or WireSpec()
    parent = spec.replaces.unique_id if spec.replaces else None
    cda = cda_n1(doc_uid=spec.doc_uid, ins=spec.ins, ins_oid=spec.ins_oid, set_id=spec.set_id,
                 version=spec.version, parent=parent, edit=spec.cda_edit)
    xades = build_xades(pki, spec, cda)
    if spec.cid_style == "numeric":
        cids = ("0.2", "0.3")
    else:
        cids = (f"{uuid.uuid4()}@dmp-bridge.test", f"{uuid.uuid4()}@dmp-bridge.test")
    request = build_request(spec, cda, xades, cids)
    vihf = None if spec.no_vihf else build_vihf(pki, spec)
    env, message_id = envelope(ITI41, spec.to, request, vihf=vihf,
                               omit=spec.omit_wsa, bare_must_understand=spec.bare_must_understand)
    root = bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))
    content_type, body = mtom(root, list(zip(cids, (cda, xades), strict=True)), ITI41)
    return WireRequest(content_type, body, message_id, cda, xades)


def _query(query_id: str, params: dict[str, str], return_type: str) -> etree._Element:
    req = etree.Element(q(QUERY, "AdhocQueryRequest"), nsmap={"query": QUERY, "rim": RIM})
    _sub(req, QUERY, "ResponseOption", returnType=return_type, returnComposedObjects="true")
    query = _sub(req, RIM, "AdhocQuery", id=query_id)
    for name, value in params.items():
        _sub(_sub(_sub(query, RIM, "Slot", name=name), RIM, "ValueList"), RIM, "Value", value)
    return req


def plain(pki: TestPki, to: str, body_child: etree._Element, spec: WireSpec,
          action: str = ITI18, content_type: str = "application/soap+xml") -> WireRequest:
    """A non-MTOM SOAP request (ITI-18, ITI-57, TD0.2) with the VIHF of `spec`."""
    env, message_id = envelope(action, to, body_child, vihf=build_vihf(pki, spec),
                               omit=spec.omit_wsa, bare_must_understand=spec.bare_must_understand)
    body = bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))
    return WireRequest(f'{content_type}; charset=UTF-8; action="{action}"', body, message_id)


_plain = plain


def find_documents(pki: TestPki, to: str, spec: WireSpec, *, return_type: str = "LeafClass",
                   statuses: tuple[str, ...] | None = (
                       "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",)) -> WireRequest:
    """ITI-18 FindDocuments for the patient of `spec` (Approved only by default)."""
    params = {"$XDSDocumentEntryPatientId": f"'{_cx(spec.ins, spec.ins_oid)}'"}
    if statuses:
        params["$XDSDocumentEntryStatus"] = "(" + ",".join(f"'{s}'" for s in statuses) + ")"
    return _plain(pki, to, _query(FIND_DOCUMENTS, params, return_type), spec)


def get_documents(pki: TestPki, to: str, spec: WireSpec, *, unique_id: str | None = None,
                  entry_uuid: str | None = None, return_type: str = "LeafClass") -> WireRequest:
    """ITI-18 GetDocuments by uniqueId or entryUUID."""
    if unique_id is not None:
        params = {"$XDSDocumentEntryUniqueId": f"('{unique_id}')"}
    else:
        params = {"$XDSDocumentEntryEntryUUID": f"('{entry_uuid}')"}
    return _plain(pki, to, _query(GET_DOCUMENTS, params, return_type), spec)
