"""Test helpers: post a wire request to the simulator and read its SOAP answer."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp
from lxml import etree

from bridge.xmlsafe import parse_xml
from service.test_pki import CertPair, TestPki
from tests.simulator.wire import WireRequest

NS = {
    "soap": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "rs": "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0",
    "query": "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0",
    "rim": "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0",
    "sim": "urn:dmp-bridge:simulateur",
}
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"


def client_tls(pki: TestPki, *, with_client_cert: bool = True,
               cert: CertPair | None = None) -> ssl.SSLContext:
    """The bridge side of mutual TLS: trust the test CA, present ORG AUTH_CLI (or `cert`)."""
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if with_client_cert:
        pair = cert or pki.org_auth
        context.load_cert_chain(str(pair.cert), str(pair.key))
    return context


@dataclass(frozen=True)
class Answer:
    http_status: int
    content_type: str
    envelope: etree._Element

    def first(self, path: str) -> etree._Element:
        found = self.envelope.xpath(path, namespaces=NS)
        assert isinstance(found, list) and found, f"{path} absent"
        element = found[0]
        assert isinstance(element, etree._Element)
        return element

    @property
    def status(self) -> str:
        response = self.first("//rs:RegistryResponse | //query:AdhocQueryResponse")
        return str(response.get("status", ""))

    @property
    def error_codes(self) -> list[str]:
        return [e.get("errorCode", "") for e in self.envelope.iterfind(".//rs:RegistryError", NS)]

    @property
    def codes(self) -> set[str]:
        """Every code of the answer: RegistryErrors, or the Fault's code."""
        found = set(self.error_codes)
        fault = self.envelope.find(".//soap:Fault/soap:Detail/sim:Erreur", NS)
        if fault is not None:
            found.add(fault.get("code", ""))
        return found

    @property
    def fault_code(self) -> str:
        return str(self.first("//soap:Fault/soap:Detail/sim:Erreur").get("code", ""))

    def header(self, name: str) -> str:
        return self.first(f"/soap:Envelope/soap:Header/wsa:{name}").text or ""


async def post(session: aiohttp.ClientSession, pki: TestPki, url: str, request: WireRequest,
               *, cert: CertPair | None = None) -> Answer:
    return await post_raw(session, pki, url, request.content_type, request.body, cert=cert)


async def post_raw(session: aiohttp.ClientSession, pki: TestPki, url: str, content_type: str,
                   body: bytes, *, cert: CertPair | None = None) -> Answer:
    async with session.post(url, data=body, headers={"Content-Type": content_type},
                            ssl=client_tls(pki, cert=cert)) as response:
        data = await response.read()
        return Answer(response.status, response.headers.get("Content-Type", ""), parse_xml(data))


async def admin(session: aiohttp.ClientSession, pki: TestPki, url: str,
                payload: dict[str, object] | None = None) -> dict[str, object]:
    """POST (or GET without payload) to the simulator admin API; the JSON answer."""
    if payload is None:
        async with session.get(url, ssl=client_tls(pki)) as response:
            assert response.status == 200
            data = await response.json()
    else:
        async with session.post(url, json=payload, ssl=client_tls(pki)) as response:
            assert response.status == 200, await response.text()
            data = await response.json()
    assert isinstance(data, dict)
    return data
