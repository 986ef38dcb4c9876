"""The SOAP 1.2 answers the simulator writes: RegistryResponse, AdhocQueryResponse, Fault."""

from __future__ import annotations

import uuid

from lxml import etree

from service.simulator.invented_codes import InventedCode
from service.simulator.namespaces import (
    ACTION_FAULT,
    QUERY,
    RIM,
    RS,
    SEVERITY_ERROR,
    SOAP,
    STATUS_FAILURE,
    STATUS_SUCCESS,
    WSA,
    q,
)
from service.simulator.problems import Problem

SIM_NS = "urn:dmp-bridge:simulateur"  # the simulator's own Fault detail (invented, see codes)
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _envelope(action: str, relates_to: str | None) -> tuple[etree._Element, etree._Element]:
    env = etree.Element(q(SOAP, "Envelope"), nsmap={"soap": SOAP, "wsa": WSA})
    header = etree.SubElement(env, q(SOAP, "Header"))
    etree.SubElement(header, q(WSA, "Action")).text = action
    etree.SubElement(header, q(WSA, "MessageID")).text = f"urn:uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, q(WSA, "RelatesTo")).text = relates_to
    return env, etree.SubElement(env, q(SOAP, "Body"))


def _bytes(env: etree._Element) -> bytes:
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def registry_response_element(problems: list[Problem]) -> etree._Element:
    """`rs:RegistryResponse`, Success when `problems` is empty, else Failure with the errors."""
    status = STATUS_FAILURE if problems else STATUS_SUCCESS
    response = etree.Element(q(RS, "RegistryResponse"), nsmap={"rs": RS}, status=status)
    if problems:
        errors = etree.SubElement(response, q(RS, "RegistryErrorList"))
        for problem in problems:
            etree.SubElement(
                errors,
                q(RS, "RegistryError"),
                errorCode=problem.code,
                codeContext=problem.message_fr,
                location=problem.location,
                severity=SEVERITY_ERROR,
            )
    return response


def registry_response(problems: list[Problem], *, action: str, relates_to: str | None) -> bytes:
    """The whole SOAP envelope of an ITI-41 answer."""
    env, body = _envelope(action, relates_to)
    body.append(registry_response_element(problems))
    return _bytes(env)


def plain_response(answer: etree._Element, *, action: str, relates_to: str | None) -> bytes:
    """Any body element (the TD0.2 answer) in a SOAP envelope."""
    env, body = _envelope(action, relates_to)
    body.append(answer)
    return _bytes(env)


def adhoc_query_response(
    objects: list[etree._Element], problems: list[Problem], *, action: str, relates_to: str | None
) -> bytes:
    """`query:AdhocQueryResponse` with `objects` in its RegistryObjectList."""
    env, body = _envelope(action, relates_to)
    status = STATUS_FAILURE if problems else STATUS_SUCCESS
    response = etree.SubElement(
        body, q(QUERY, "AdhocQueryResponse"), nsmap={"query": QUERY, "rs": RS}, status=status
    )
    if problems:
        inner = registry_response_element(problems)
        response.append(inner.find(q(RS, "RegistryErrorList")))
    else:
        response.set("totalResultCount", str(len(objects)))
    rol = etree.SubElement(response, q(RIM, "RegistryObjectList"), nsmap={"rim": RIM})
    for obj in objects:
        rol.append(obj)
    return _bytes(env)


def soap_fault(
    reason_fr: str,
    *,
    code: str,
    subcode: tuple[str, str] | None = None,
    sender: bool = True,
    relates_to: str | None = None,
) -> bytes:
    """A SOAP 1.2 Fault (Sender or Receiver) carrying the simulator's code in its Detail."""
    env, body = _envelope(ACTION_FAULT, relates_to)
    fault = etree.SubElement(body, q(SOAP, "Fault"))
    code_el = etree.SubElement(fault, q(SOAP, "Code"))
    etree.SubElement(code_el, q(SOAP, "Value")).text = "soap:Sender" if sender else "soap:Receiver"
    if subcode is not None:
        ns, local = subcode
        sub = etree.SubElement(code_el, q(SOAP, "Subcode"))
        value = etree.SubElement(sub, q(SOAP, "Value"), nsmap={"sub": ns})
        value.text = f"sub:{local}"
    reason = etree.SubElement(fault, q(SOAP, "Reason"))
    text = etree.SubElement(reason, q(SOAP, "Text"))
    text.set(XML_LANG, "fr")
    text.text = reason_fr
    detail = etree.SubElement(fault, q(SOAP, "Detail"))
    error = etree.SubElement(detail, q(SIM_NS, "Erreur"), nsmap={"sim": SIM_NS}, code=code)
    error.text = reason_fr
    return _bytes(env)


def fault_body(problems: list[Problem], relates_to: str | None, *, sender: bool = True) -> bytes:
    first = problems[0]
    subcode = None
    if first.code == InventedCode.WSA_MANQUANT:
        subcode = (WSA, "MessageAddressingHeaderRequired")
    elif first.code == InventedCode.WSA_ACTION:
        subcode = (WSA, "ActionNotSupported")
    reason = " ".join(p.message_fr for p in problems)
    return soap_fault(reason, code=first.code, subcode=subcode, sender=sender,
                      relates_to=relates_to)
