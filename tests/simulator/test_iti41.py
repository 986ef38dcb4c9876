"""ITI-41 against the running simulator, over real mutual TLS."""

from __future__ import annotations

import datetime as dt

import aiohttp
from lxml import etree

from bridge.schemas import SchemaName, validation_errors
from service.simulator import InjectedFault, RunningSimulator
from service.test_pki import TestPki as Pki
from tests.simulator.exchange import FAILURE, NS, SUCCESS, Answer, post, post_raw
from tests.simulator.wire import WireSpec, build_iti41

ITI41_RESPONSE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"


def _repo(sim: RunningSimulator) -> str:
    return f"{sim.base_url}/repository"


async def _send(session: aiohttp.ClientSession, pki: Pki, sim: RunningSimulator,
                spec: WireSpec) -> Answer:
    spec.to = _repo(sim)
    return await post(session, pki, _repo(sim), build_iti41(pki, spec))


def _assert_valid_response(answer: Answer) -> None:
    assert answer.content_type.startswith("application/soap+xml")
    response = answer.first("//rs:RegistryResponse")
    assert validation_errors(response, SchemaName.EBRS_RS) == []


async def test_valid_submission_is_registered(simulator: RunningSimulator, pki: Pki,
                                              session: aiohttp.ClientSession) -> None:
    spec = WireSpec()
    spec.to = _repo(simulator)
    request = build_iti41(pki, spec)
    answer = await post(session, pki, _repo(simulator), request)
    assert answer.http_status == 200
    assert answer.status == SUCCESS, answer.error_codes
    _assert_valid_response(answer)
    assert answer.header("RelatesTo") == request.message_id
    assert answer.header("Action") == ITI41_RESPONSE
    stored = simulator.store.documents()
    assert [d.is_signature for d in stored] == [False, True]
    document = stored[0]
    assert document.unique_id == spec.doc_uid
    assert document.content == request.cda
    assert document.submission_unique_id == spec.set_uid
    assert document.status == "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
    assert document.entry_uuid.startswith("urn:uuid:")
    assert document.tls_dn is not None and "ORG AUTH_CLI" in document.tls_dn
    assert simulator.store.requests()[-1].tls_dn == document.tls_dn


async def test_numeric_content_ids_are_accepted(simulator: RunningSimulator, pki: Pki,
                                                session: aiohttp.ClientSession) -> None:
    answer = await _send(session, pki, simulator, WireSpec(cid_style="numeric"))
    assert answer.status == SUCCESS, answer.error_codes


async def test_vihf_signed_with_rsa_sha1_is_refused_when_strict(
    simulator: RunningSimulator, pki: Pki, session: aiohttp.ClientSession
) -> None:
    # DRIMbox's SHA-1 is a lenient variant (spec §7): see test_lenient.py.
    answer = await _send(session, pki, simulator, WireSpec(vihf_sha1=True))
    assert answer.error_codes == ["DMP_VIHF_SIGNATURE"]


async def test_same_unique_id_twice_is_a_duplicate(simulator: RunningSimulator, pki: Pki,
                                                   session: aiohttp.ClientSession) -> None:
    first = WireSpec()
    assert (await _send(session, pki, simulator, first)).status == SUCCESS
    answer = await _send(session, pki, simulator, WireSpec(doc_uid=first.doc_uid))
    assert answer.status == FAILURE
    assert answer.error_codes == ["XDSDuplicateUniqueIdInRegistry"]
    _assert_valid_response(answer)
    assert len(simulator.store.documents()) == 2


def _tamper_lps_name(assertion: etree._Element) -> None:
    for attr in assertion.iterfind(".//saml2:Attribute", {"saml2": NS_SAML}):
        if attr.get("Name") == "LPS_Nom":
            attr[0].text = "AUTRE LOGICIEL"


NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


async def test_tampered_vihf_is_refused(simulator: RunningSimulator, pki: Pki,
                                        session: aiohttp.ClientSession) -> None:
    answer = await _send(session, pki, simulator, WireSpec(tamper_vihf=_tamper_lps_name))
    assert answer.status == FAILURE
    assert answer.error_codes == ["DMP_VIHF_SIGNATURE"]
    assert simulator.store.documents() == []


async def test_stale_vihf_is_refused(simulator: RunningSimulator, pki: Pki,
                                     session: aiohttp.ClientSession) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    answer = await _send(session, pki, simulator, WireSpec(issue_instant=old))
    assert answer.error_codes == ["DMP_VIHF_HORODATAGE"]


async def test_doctor_needs_a_second_role(simulator: RunningSimulator, pki: Pki,
                                          session: aiohttp.ClientSession) -> None:
    ok = await _send(session, pki, simulator, WireSpec(profession="10"))
    assert ok.status == SUCCESS, ok.error_codes

    def drop_second_role(assertion: etree._Element) -> None:
        roles = [a for a in assertion.iterfind(".//saml2:Attribute", {"saml2": NS_SAML})
                 if a.get("Name") == "urn:oasis:names:tc:xacml:2.0:subject:role"]
        parent = roles[1].getparent()
        assert parent is not None
        parent.remove(roles[1])

    answer = await _send(session, pki, simulator,
                         WireSpec(profession="10", tamper_vihf=drop_second_role))
    assert "DMP_VIHF_INVALIDE" in answer.error_codes


async def test_xades_digest_mismatch(simulator: RunningSimulator, pki: Pki,
                                     session: aiohttp.ClientSession) -> None:
    answer = await _send(session, pki, simulator, WireSpec(xades_digest_of=b"autre contenu"))
    assert answer.status == FAILURE
    assert answer.error_codes == ["DMP_XADES_DIGEST"]


async def test_ebrim_invalid_against_schema(simulator: RunningSimulator, pki: Pki,
                                            session: aiohttp.ClientSession) -> None:
    def add_unknown(request: etree._Element) -> None:
        objects = request.find(".//rim:RegistryObjectList", NS)
        assert objects is not None
        etree.SubElement(objects, f"{{{NS['rim']}}}Inconnu")

    answer = await _send(session, pki, simulator, WireSpec(tamper_request=add_unknown))
    assert answer.status == FAILURE
    assert set(answer.error_codes) == {"XDSRegistryMetadataError"}


async def test_hash_mismatch(simulator: RunningSimulator, pki: Pki,
                             session: aiohttp.ClientSession) -> None:
    answer = await _send(session, pki, simulator, WireSpec(hash_override="0" * 40))
    assert answer.error_codes == ["XDSNonIdenticalHash"]


async def test_patient_id_mismatch(simulator: RunningSimulator, pki: Pki,
                                   session: aiohttp.ClientSession) -> None:
    answer = await _send(session, pki, simulator, WireSpec(entry_patient_ins="184127645108946"))
    assert answer.status == FAILURE
    assert set(answer.error_codes) == {"XDSPatientIdDoesNotMatch"}


async def test_missing_action_is_a_fault(simulator: RunningSimulator, pki: Pki,
                                         session: aiohttp.ClientSession) -> None:
    answer = await _send(session, pki, simulator, WireSpec(omit_wsa=frozenset({"Action"})))
    assert answer.http_status == 500
    assert answer.fault_code == "DMP_WSA_MANQUANT"
    assert simulator.store.documents() == []


async def test_garbage_then_valid(simulator: RunningSimulator, pki: Pki,
                                  session: aiohttp.ClientSession) -> None:
    answer = await post_raw(session, pki, _repo(simulator), "application/soap+xml",
                            b"\x00<<not xml at all")
    assert answer.http_status == 500
    assert answer.first("//soap:Fault/soap:Code/soap:Value").text == "soap:Sender"
    broken_mime = await post_raw(session, pki, _repo(simulator),
                                 'multipart/related; boundary="zz"; type="application/xop+xml"',
                                 b"--zz\r\nContent-ID: <a>\r\n\r\n<x/>")
    assert broken_mime.http_status == 500
    assert (await _send(session, pki, simulator, WireSpec())).status == SUCCESS


async def test_injected_fault(simulator: RunningSimulator, pki: Pki,
                              session: aiohttp.ClientSession) -> None:
    simulator.faults.fail_next(InjectedFault(code="XDSRegistryBusy"))
    answer = await _send(session, pki, simulator, WireSpec())
    assert answer.error_codes == ["XDSRegistryBusy"]
    assert (await _send(session, pki, simulator, WireSpec())).status == SUCCESS
