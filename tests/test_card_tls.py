"""Mutual TLS with a key that stays on the card (connectors/card_tls.py), against the real
simulator over real sockets on 127.0.0.1.

The "card" is a software key behind an object that only signs SHA-256 DigestInfos, the one
thing a CPS card does: the TLS code gets a `sign_digest_info` callable, never a key object.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from lxml import etree

from bridge.card_port import SHA256_DIGEST_INFO_PREFIX, CardAbsent, sha256_digest_info
from bridge.dmp_answer import parse_answer, transport_failure
from bridge.dmp_error_table import ErrorClass
from bridge.soap import ACTION_ITI18, HttpRequestBody, build_envelope, plain_soap
from connectors.card_tls import CardRsaKey, CardTlsForwarder
from connectors.dmp_client import DmpClient, TransportError
from connectors.software_credentials import SoftwareCredentials
from service.simulator import RunningSimulator, SimulatorConfig, start_simulator
from service.test_pki import TestPki as Pki
from service.test_pki import generate_test_pki, issue_card_certificate

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
SOAP_ENV = "{http://www.w3.org/2003/05/soap-envelope}Envelope"
NOT_SOAP = HttpRequestBody("application/soap+xml; charset=UTF-8", b"<pas-du-soap/>")


class SoftwareCard:
    """A stand-in for a CPS card: it signs DigestInfos (PKCS#1 v1.5) and can be withdrawn."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.__key = key
        self.signatures = 0
        self.inserted = True

    def sign_digest_info(self, digest_info: bytes) -> bytes:
        if not self.inserted:
            raise CardAbsent("La carte CPS a été retirée du lecteur.")
        assert digest_info.startswith(SHA256_DIGEST_INFO_PREFIX) and len(digest_info) == 51
        self.signatures += 1
        digest = digest_info[len(SHA256_DIGEST_INFO_PREFIX):]
        return self.__key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


@dataclass(frozen=True)
class CardMaterial:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def card(self) -> SoftwareCard:
        return SoftwareCard(self.key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return generate_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return generate_test_pki(tmp_path_factory.mktemp("autre-pki"))


@pytest.fixture(scope="module")
def material(pki: Pki) -> CardMaterial:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = issue_card_certificate(
        pki, key.public_key(), national_id="899700366240", family_name="SOIGNANT",
        given_name="ALEX", authentication=True,
    )
    return CardMaterial(key, certificate)


async def _simulator(pki: Pki, tmp_path: Path, host: str) -> RunningSimulator:
    return await start_simulator(SimulatorConfig(
        db_path=tmp_path / f"simulateur-{host}.sqlite", ca_cert=pki.ca_cert,
        server_cert=pki.server.cert, server_key=pki.server.key, host=host,
    ))


@pytest.fixture
async def simulator(pki: Pki, tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    running = await _simulator(pki, tmp_path, "127.0.0.1")
    try:
        yield running
    finally:
        await running.close()


def forwarder_for(url: str, material: CardMaterial, card: SoftwareCard, server_ca: Path,
                  ) -> CardTlsForwarder:
    return CardTlsForwarder(url, certificate_chain=[material.der],
                            sign_digest_info=card.sign_digest_info, server_ca=server_ca)


async def recorded_requests(simulator: RunningSimulator, pki: Pki) -> list[dict[str, object]]:
    """What the simulator's admin API says it received (it needs a client certificate too)."""
    context = SoftwareCredentials(
        tls_cert=pki.org_auth.cert, tls_key=pki.org_auth.key,
        sign_cert=pki.org_sign.cert, sign_key=pki.org_sign.key, server_ca=pki.ca_cert,
    ).ssl_context()
    async with (aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
                session.get(f"{simulator.admin_url}/requetes") as response):
        assert response.status == 200
        data = await response.json()
    requests: list[dict[str, object]] = data["requetes"]
    return requests


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


def iti18_request(client: DmpClient) -> HttpRequestBody:
    """A stored query with its WS-Addressing, addressed to the real DMP URL, without VIHF."""
    query = etree.Element(f"{{{QUERY}}}AdhocQueryRequest", nsmap={"query": QUERY, "rim": RIM})
    etree.SubElement(query, f"{{{QUERY}}}ResponseOption", returnType="LeafClass",
                     returnComposedObjects="true")
    etree.SubElement(query, f"{{{RIM}}}AdhocQuery",
                     id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d")
    envelope = build_envelope(action=ACTION_ITI18, to=client.url("registry"),
                              message_id=f"urn:uuid:{uuid.uuid4()}", assertion=None, body=query)
    return plain_soap(envelope, ACTION_ITI18)


async def test_the_dmp_sees_the_card_certificate_and_records_its_dn(
        pki: Pki, material: CardMaterial, simulator: RunningSimulator) -> None:
    card = material.card()

    async with (forwarder_for(simulator.base_url, material, card, pki.ca_cert) as forwarder,
                DmpClient(simulator.base_url, None, via=forwarder.local_url,
                          timeout_seconds=10) as client):
        answer = await client.post("registry", NOT_SOAP)

    assert answer.status == 500  # the simulator judged the (invalid) SOAP: TLS was accepted
    requests = await recorded_requests(simulator, pki)
    assert [r["certificat_client"] for r in requests] == [
        material.certificate.subject.rfc4514_string()
    ]
    assert "CN=899700366240" in str(requests[0]["certificat_client"])
    assert card.signatures == 1
    print(f"\nhandshake TLS 1.2 avec signature par la carte : "
          f"{(forwarder.last_handshake_seconds or 0) * 1000:.0f} ms")


async def test_a_dmp_client_through_the_forwarder_gets_the_dmp_soap_answer(
        pki: Pki, material: CardMaterial, simulator: RunningSimulator) -> None:
    card = material.card()

    async with (forwarder_for(simulator.base_url, material, card, pki.ca_cert) as forwarder,
                DmpClient(simulator.base_url, None, via=forwarder.local_url,
                          timeout_seconds=10) as client):
        assert client.url("registry") == f"{simulator.base_url}/registry"  # wsa:To, Host
        answer = await client.post("registry", iti18_request(client))

    # A SOAP fault from the DMP's own checks (no VIHF), not a transport failure.
    assert etree.fromstring(answer.body).tag == SOAP_ENV
    parsed = parse_answer(answer.status, answer.content_type, answer.body)
    assert not parsed.success
    assert parsed.fault is not None or parsed.errors
    requests = await recorded_requests(simulator, pki)
    assert [(r["service"], r["action"]) for r in requests] == [("iti18", ACTION_ITI18)]


async def test_keep_alive_requests_share_one_tls_session_and_one_card_signature(
        pki: Pki, material: CardMaterial, simulator: RunningSimulator) -> None:
    card = material.card()

    async with (forwarder_for(simulator.base_url, material, card, pki.ca_cert) as forwarder,
                DmpClient(simulator.base_url, None, via=forwarder.local_url,
                          timeout_seconds=10, rate_per_second=100) as client):
        started = time.perf_counter()
        for _ in range(5):
            await client.post("registry", NOT_SOAP)
        elapsed = time.perf_counter() - started

    assert card.signatures == 1
    assert forwarder.handshakes == 1
    assert len(await recorded_requests(simulator, pki)) == 5
    print(f"\n5 requêtes sur une session : {elapsed * 1000:.0f} ms (une poignée de main)")


async def test_a_server_certificate_from_another_authority_is_refused(
        pki: Pki, other_pki: Pki, material: CardMaterial, simulator: RunningSimulator) -> None:
    card = material.card()

    async with (forwarder_for(simulator.base_url, material, card,
                              other_pki.ca_cert) as forwarder,
                DmpClient(simulator.base_url, None, via=forwarder.local_url,
                          timeout_seconds=10) as client):
        with pytest.raises(TransportError) as caught:
            await client.post("registry", NOT_SOAP)

    assert caught.value.maybe_delivered is False
    assert caught.value.tls is True
    assert "autorité de confiance" in caught.value.detail
    assert forwarder.handshakes == 0
    assert await recorded_requests(simulator, pki) == []


async def test_a_server_certificate_for_another_host_is_refused(
        pki: Pki, material: CardMaterial, tmp_path: Path) -> None:
    # The simulator's certificate names 127.0.0.1 and localhost; it is reached as 127.0.0.2.
    other_host = await _simulator(pki, tmp_path, "127.0.0.2")
    card = material.card()
    try:
        async with (forwarder_for(other_host.base_url, material, card,
                                  pki.ca_cert) as forwarder,
                    DmpClient(other_host.base_url, None, via=forwarder.local_url,
                              timeout_seconds=10) as client):
            with pytest.raises(TransportError) as caught:
                await client.post("registry", NOT_SOAP)
        assert other_host.store.requests() == []
    finally:
        await other_host.close()

    assert caught.value.maybe_delivered is False
    assert caught.value.tls is True
    assert "« 127.0.0.2 »" in caught.value.detail


async def test_close_all_cuts_the_open_session_and_the_next_request_shakes_hands_again(
        pki: Pki, material: CardMaterial, simulator: RunningSimulator) -> None:
    card = material.card()

    async with (forwarder_for(simulator.base_url, material, card, pki.ca_cert) as forwarder,
                DmpClient(simulator.base_url, None, via=forwarder.local_url,
                          timeout_seconds=10, rate_per_second=100) as client):
        await client.post("registry", NOT_SOAP)
        await client.post("registry", NOT_SOAP)
        assert (card.signatures, forwarder.open_connections) == (1, 1)  # kept alive

        forwarder.close_all()  # the card was withdrawn, then put back
        await until(lambda: forwarder.open_connections == 0)

        answer = await client.post("registry", NOT_SOAP)

    assert answer.status == 500  # the simulator's answer, through a new session
    assert card.signatures == 2
    assert forwarder.handshakes == 2
    assert len(await recorded_requests(simulator, pki)) == 3


async def test_a_withdrawn_card_fails_the_request_as_an_environment_error_without_hanging(
        pki: Pki, material: CardMaterial, simulator: RunningSimulator) -> None:
    card = material.card()
    card.inserted = False

    async with (forwarder_for(simulator.base_url, material, card, pki.ca_cert) as forwarder,
                DmpClient(simulator.base_url, None, via=forwarder.local_url,
                          timeout_seconds=30) as client):
        async with asyncio.timeout(15):
            with pytest.raises(TransportError) as caught:
                await client.post("registry", NOT_SOAP)

    assert caught.value.maybe_delivered is False
    assert caught.value.card is True
    assert caught.value.detail.startswith("carte retirée")
    decision = transport_failure(caught.value.maybe_delivered, caught.value.detail,
                                 tls=caught.value.tls, card=caught.value.card)
    assert decision.error_class is ErrorClass.ENVIRONMENT
    assert decision.code == "DMP_CARTE"
    assert decision.message_fr.startswith("La carte CPS a été retirée")
    assert await recorded_requests(simulator, pki) == []


async def test_an_unreachable_dmp_is_a_network_failure_before_delivery(
        pki: Pki, material: CardMaterial, simulator: RunningSimulator) -> None:
    url = simulator.base_url
    await simulator.close()  # nothing listens on its port any more
    card = material.card()

    async with (forwarder_for(url, material, card, pki.ca_cert) as forwarder,
                DmpClient(url, None, via=forwarder.local_url, timeout_seconds=10) as client):
        with pytest.raises(TransportError) as caught:
            await client.post("registry", NOT_SOAP)

    assert (caught.value.maybe_delivered, caught.value.tls) == (False, False)
    assert "injoignable" in caught.value.detail
    assert card.signatures == 0


async def test_megabytes_cross_both_ways_intact_over_one_session(
        pki: Pki, material: CardMaterial) -> None:
    # Under 1 MiB up: aiohttp warns about larger raw-bytes bodies (pytest -W error).
    upload, download = os.urandom(1_000_000), os.urandom(3 * 1024 * 1024)
    seen: list[tuple[str | None, str]] = []

    async def echo_digest(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.host, hashlib.sha256(body).hexdigest()))
        return web.Response(body=download, content_type="application/octet-stream")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    context.verify_mode = ssl.CERT_REQUIRED
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/services/{service}", echo_digest)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    card = material.card()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = runner.addresses[0][1]
        url = f"https://127.0.0.1:{port}/services"
        async with (forwarder_for(url, material, card, pki.ca_cert) as forwarder,
                    DmpClient(url, None, via=forwarder.local_url, timeout_seconds=30) as client):
            started = time.perf_counter()
            answer = await client.post("repository", HttpRequestBody("application/octet-stream",
                                                                     upload))
            elapsed = time.perf_counter() - started
    finally:
        await runner.cleanup()

    assert seen == [(f"127.0.0.1:{port}", hashlib.sha256(upload).hexdigest())]
    assert answer.body == download
    assert card.signatures == 1
    print(f"\n1 Mo envoyé + 3 Mo reçus par la passerelle : {elapsed * 1000:.0f} ms")


def test_the_card_key_signs_only_a_sha256_digest_info(material: CardMaterial) -> None:
    card = material.card()
    public_key = material.certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    key = CardRsaKey(public_key, card.sign_digest_info)
    digest_info = sha256_digest_info(b"handshake")

    signature = key.sign(bytearray(digest_info), "pkcs1")

    public_key.verify(bytes(signature), b"handshake", padding.PKCS1v15(), hashes.SHA256())
    assert key.verify(signature, bytearray(digest_info), "pkcs1")
    with pytest.raises(ValueError, match="PKCS#1"):
        key.sign(bytearray(digest_info), "pss", "sha256", 32)
    with pytest.raises(ValueError, match="SHA-256"):
        key.sign(bytearray(b"\x00" * 20), "pkcs1", "sha1")
    assert card.signatures == 1
