"""Test helpers: post a wire request to the simulator and read its SOAP answer."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp
from lxml import etree

from bridge.xmlsafe import parse_xml
from service.test_pki import TestPki
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


def client_tls(pki: TestPki, *, with_client_cert: bool = True) -> ssl.SSLContext:
    """The bridge side of mutual TLS: trust the test CA, present ORG AUTH_CLI."""
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if with_client_cert:
        context.load_cert_chain(str(pki.org_auth.cert), str(pki.org_auth.key))
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
    def fault_code(self) -> str:
        return str(self.first("//soap:Fault/soap:Detail/sim:Erreur").get("code", ""))

    def header(self, name: str) -> str:
        return self.first(f"/soap:Envelope/soap:Header/wsa:{name}").text or ""


async def post(session: aiohttp.ClientSession, pki: TestPki, url: str, request: WireRequest,
               ) -> Answer:
    return await post_raw(session, pki, url, request.content_type, request.body)


async def post_raw(session: aiohttp.ClientSession, pki: TestPki, url: str, content_type: str,
                   body: bytes) -> Answer:
    async with session.post(url, data=body, headers={"Content-Type": content_type},
                            ssl=client_tls(pki)) as response:
        data = await response.read()
        return Answer(response.status, response.headers.get("Content-Type", ""), parse_xml(data))
