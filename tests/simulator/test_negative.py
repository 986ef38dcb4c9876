"""One ITI-41 broken in exactly one way per check of the checklist (spec §8), sent over real
mutual TLS to the strict simulator: the refusal, its codes, and nothing stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp
import pytest
from lxml import etree

from service.simulator import RunningSimulator
from tests.simulator import breakers as b
from tests.simulator.exchange import FAILURE, post
from tests.simulator.pki_maker import SimPki
from tests.simulator.wire import WireSpec, build_iti41
from tests.simulator.wire_base import HL7, SAML, q

META = "XDSRegistryMetadataError"
REPO = "XDSRepositoryMetadataError"
CDA = "DMP_CDA_INVALIDE"
VIHF = "DMP_VIHF_INVALIDE"
DOC = "//rim:ExtrinsicObject[@id='Document01']"
ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"


def _extra_role(assertion: etree._Element) -> None:
    statement = assertion.find(f".//{q(SAML, 'AttributeStatement')}")
    assert statement is not None
    attr = etree.SubElement(statement, q(SAML, "Attribute"), Name=ROLE)
    value = etree.SubElement(attr, q(SAML, "AttributeValue"))
    etree.SubElement(value, q(HL7, "Role"), code="SM26", codeSystem="1.2.250.1.71.4.2.5")


CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    # --- value sets (spec §8.5)
    ("typeCode hors J07", {"tamper_request": b.code(b.TYPE, "99999-9"),
                           "cda_edit": b.attribute("/hl7:ClinicalDocument/hl7:code", "code",
                                                   "99999-9")}, {META, CDA}),
    ("classCode ≠ ASS_X04(typeCode)", {"tamper_request": b.code(b.CLASS, "11")}, {META}),
    ("classCode hors A03", {"tamper_request": b.code(b.CLASS, "77")}, {META}),
    ("formatCode hors J60", {"tamper_request": b.code(b.FORMAT, "urn:inconnu:2024")}, {META}),
    ("drapeau de confidentialité hors J08", {"tamper_request": b.add_code(
        b.CONF, "SECRET", "1.2.250.1.213.1.1.4.13")}, {META}),
    ("deux niveaux HL7 N et R", {"tamper_request": b.add_code(
        b.CONF, "R", "2.16.840.1.113883.5.25")}, {META}),
    ("healthcareFacilityTypeCode hors J02", {
        "tamper_request": b.code(b.FACILITY, "SA99"),
        "cda_edit": b.attribute("//hl7:healthCareFacility/hl7:code", "code", "SA99")}, {META}),
    ("practiceSettingCode hors J04", {
        "tamper_request": b.code(b.PRACTICE, "PLAGE"),
        "cda_edit": b.attribute("//hl7:standardIndustryClassCode", "code", "PLAGE")}, {META}),
    ("authorSpecialty hors J01", {"tamper_request": b.slot(
        "authorSpecialty", "G15_99^Inconnu^1.2.250.1.213.1.1.4.5", "Document01-author")}, {META}),
    ("contentTypeCode SAxx hors R02", {"tamper_request": b.attribute(
        "//rim:Classification[@id='ss-ct']", "nodeRepresentation", "SA99")}, {META}),
    # --- formats (spec §3.4)
    ("authorPerson sans PS_IdNat", {"tamper_request": b.slot(
        "authorPerson", "899700366240^SOIGNANT^Alex^^^^^^&1.2.3&ISO^D^^^IDNPS",
        "Document01-author")}, {META}),
    ("authorInstitution sans Struct_IdNat", {"tamper_request": b.slot(
        "authorInstitution", "CABINET^^^^^&1.2.3&ISO^IDNST^^^499700366240007",
        "Document01-author")}, {META}),
    ("legalAuthenticator absent", {"tamper_request": b.slot("legalAuthenticator", None)}, {META}),
    ("legalAuthenticator mal formé", {"tamper_request": b.slot("legalAuthenticator",
                                                               "SOIGNANT^Alex")}, {META}),
    ("creationTime mal formée", {"tamper_request": b.slot("creationTime", "2024-01-05")}, {META}),
    ("submissionTime avec décalage local", {"submission_time": "20240105101600+0100"}, {META}),
    ("mimeType autre que text/xml", {"tamper_request": b.attribute(DOC, "mimeType",
                                                                   "application/pdf")}, {REPO}),
    ("taille déclarée fausse", {"tamper_request": b.slot("size", "12")}, {"XDSNonIdenticalSize"}),
    ("sourceId du lot absent", {"tamper_request": b.remove(
        "//rim:ExternalIdentifier[@id='ss-src']")}, {META}),
    ("slot SubmissionSetStatus sur signs", {"status_on_signs": True}, {META}),
    ("document sans contenu", {"tamper_request": b.remove(
        "/xdsb:ProvideAndRegisterDocumentSetRequest/xdsb:Document[@id='Document01']")},
     {"XDSMissingDocument", "DMP_XADES_INVALIDE"}),
    # --- CDA N1 header (structuration minimale)
    ("templateId en trop", {"cda_edit": b.attribute(
        "/hl7:ClinicalDocument/hl7:templateId[1]", "root", "1.2.250.1.213.1.1.1.99")}, {CDA}),
    ("realmCode absent", {"cda_edit": b.remove("/hl7:ClinicalDocument/hl7:realmCode")}, {CDA}),
    ("traits INS incomplets", {"cda_edit": b.remove("//hl7:patient/hl7:birthplace")}, {CDA}),
    ("legalAuthenticator non signé", {"cda_edit": b.attribute(
        "//hl7:legalAuthenticator/hl7:signatureCode", "code", "X")}, {CDA}),
    ("performer absent de l'acte principal", {"cda_edit": b.remove(
        "//hl7:serviceEvent/hl7:performer")}, {CDA}),
    ("effectiveTime absent de l'acte principal", {"cda_edit": b.remove(
        "//hl7:serviceEvent/hl7:effectiveTime")}, {CDA}),
    ("componentOf absent", {"cda_edit": b.remove("/hl7:ClinicalDocument/hl7:componentOf")},
     {CDA}),
    ("languageCode mal formé", {"cda_edit": b.attribute(
        "/hl7:ClinicalDocument/hl7:languageCode", "code", "fr")}, {CDA}),
    ("versionNumber absent", {"cda_edit": b.remove("/hl7:ClinicalDocument/hl7:versionNumber")},
     {CDA}),
    ("custodian absent", {"cda_edit": b.remove("/hl7:ClinicalDocument/hl7:custodian")}, {CDA}),
    ("confidentialityCode CDA hors N/R/V", {"cda_edit": b.attribute(
        "/hl7:ClinicalDocument/hl7:confidentialityCode", "code", "U")}, {CDA, REPO}),
    ("id CDA ≠ uniqueId", {"cda_edit": b.attribute("/hl7:ClinicalDocument/hl7:id", "root",
                                                   "1.2.3.4.5")}, {REPO}),
    ("typeCode ≠ code du CDA", {"cda_edit": b.attribute("/hl7:ClinicalDocument/hl7:code",
                                                        "code", "11488-4")}, {REPO}),
    # --- VIHF (spec §8.4)
    ("VIHF absent", {"no_vihf": True}, {"DMP_VIHF_ABSENT"}),
    ("Ressource_URN faux", {"vihf_edit": b.vihf_value("Ressource_URN", "urn:autre")}, {VIHF}),
    ("LPS_Nom vide", {"vihf_edit": b.vihf_value("LPS_Nom", "")}, {VIHF}),
    ("purposeofuse inconnu", {"purpose": "curiosite"}, {VIHF}),
    ("centre_15 sans rôle de régulateur", {"purpose": "centre_15"}, {VIHF}),
    ("second rôle pour une infirmière", {"vihf_edit": _extra_role}, {VIHF}),
    ("resource-id d'un autre patient", {"vihf_edit": b.vihf_value(
        "urn:oasis:names:tc:xacml:2.0:resource:resource-id",
        "184127645108946^^^&1.2.250.1.213.1.4.10&ISO^NH")}, {"DMP_VIHF_PATIENT"}),
    ("DIRECTE avec un certificat ORG", {"auth_mode": "DIRECTE"},
     {"DMP_MODE_AUTHENTIFICATION"}),
    ("VIHF futur", {"issue_instant": dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)},
     {"DMP_VIHF_HORODATAGE"}),
    # --- XAdES (spec §4.3)
    ("XAdES en SHA-1", {"xades_sha1": True}, {"DMP_XADES_SIGNATURE"}),
    ("empreinte factice du lot", {"set_digest": b"\x00"}, {"DMP_XADES_INVALIDE"}),
]


@pytest.mark.parametrize(("name", "fields", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_refused(simulator: RunningSimulator, pki: SimPki, session: aiohttp.ClientSession,
                       name: str, fields: dict[str, Any], expected: set[str]) -> None:
    spec = WireSpec(to=f"{simulator.base_url}/repository", **fields)
    answer = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert answer.status == FAILURE, name
    assert answer.codes == expected, name
    assert simulator.store.documents() == []
    assert simulator.store.requests()[-1].outcome == "refus"


async def test_bare_must_understand_is_a_fault(simulator: RunningSimulator, pki: SimPki,
                                               session: aiohttp.ClientSession) -> None:
    spec = WireSpec(to=f"{simulator.base_url}/repository", bare_must_understand=True)
    answer = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert answer.http_status == 500
    assert answer.fault_code == "DMP_SOAP_INVALIDE"
