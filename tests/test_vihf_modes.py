"""VIHF access and authentication modes, validity window, and the clock check (spec §2.3)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from lxml import etree

from bridge.errors import BridgeError
from bridge.schemas import SchemaName, validation_errors
from bridge.vihf import (
    CONFIDENTIALITY_ATTRIBUTE,
    AccessMode,
    AuthMode,
    ClockSkew,
    Software,
    VihfRefused,
    VihfRequest,
    build_vihf,
    check_clock,
)
from bridge.xmlsafe import parse_xml
from connectors.dmp_envelope import CallerContext, certificate_validity, signed_envelope
from connectors.software_credentials import SoftwareCredentials
from tests.factories import make_author, make_patient

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
HL7 = "urn:hl7-org:v3"
NS = {"saml": SAML, "hl7": HL7, "ds": "http://www.w3.org/2000/09/xmldsig#",
      "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"}
ISSUED = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
SOFTWARE = Software("dmp-bridge", "0.1.0", "1.2.250.1.999.7.1", "BCO-465897-tmp2")
CLASSES = "urn:oasis:names:tc:SAML:2.0:ac:classes:"


def request(**overrides: Any) -> VihfRequest:
    base = VihfRequest(
        assertion_id="_42", issue_instant=ISSUED, issuer_dn="CN=test", author=make_author(),
        patient=make_patient().ins, auth_mode=AuthMode.INDIRECTE,
        access_mode=AccessMode.NORMAL, software=SOFTWARE,
    )
    return dataclasses.replace(base, **overrides)


def one(root: etree._Element, path: str) -> str:
    found = root.xpath(path, namespaces=NS)
    assert isinstance(found, list) and len(found) == 1, path
    return str(found[0])


@pytest.mark.parametrize(("mode", "class_ref", "decl"), [
    (AuthMode.DIRECTE, "SmartcardPKI", None),
    (AuthMode.INDIRECTE, "TLSClient", None),
    (AuthMode.INDIRECTE_RENFORCEE, "MobileTwoFactorUnregistered", "APP_BROWSER_AUTH"),
])
def test_each_authentication_mode(mode: AuthMode, class_ref: str, decl: str | None) -> None:
    root = build_vihf(request(auth_mode=mode))
    context = "saml:AuthnStatement/saml:AuthnContext"
    assert one(root, f"{context}/saml:AuthnContextClassRef/text()") == CLASSES + class_ref
    decls = root.xpath(f"{context}/saml:AuthnContextDecl/text()", namespaces=NS)
    assert decls == ([decl] if decl else [])
    mode_values = root.xpath("//saml:Attribute[@Name='Authentification_Mode']"
                             "/saml:AttributeValue/text()", namespaces=NS)
    assert mode_values == [mode.value]
    # Every mode is signed (direct mode by the card's signature key): the placeholder is there.
    assert root.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is not None


@pytest.mark.parametrize("mode", [AccessMode.NORMAL, AccessMode.BRIS_DE_GLACE])
def test_normal_and_emergency_access_for_anyone(mode: AccessMode) -> None:
    root = build_vihf(request(access_mode=mode))
    purpose = "//hl7:PurposeOfUse"
    assert one(root, f"{purpose}/@code") == mode.value
    assert one(root, f"{purpose}/@codeSystem") == "1.2.250.1.213.1.1.4.248"
    assert one(root, f"{purpose}/@displayName") == mode.display


def test_centre_15_only_for_a_samu_regulator() -> None:
    with pytest.raises(VihfRefused, match="réservé aux médecins régulateurs") as refused:
        build_vihf(request(access_mode=AccessMode.CENTRE_15))
    assert refused.value.code == "VIHF_REFUSE"
    doctor = make_author(profession_code="10", specialty_code="G15_10/SM54",
                         specialty_display="Médecin - Médecine Générale (SM)")
    root = build_vihf(request(access_mode=AccessMode.CENTRE_15, samu_regulator=True,
                              author=doctor))
    assert one(root, "//hl7:PurposeOfUse/@code") == "centre_15"


def test_validity_window() -> None:
    root = build_vihf(request(validity=dt.timedelta(minutes=5)))
    assert one(root, "saml:Conditions/@NotBefore") == "2026-03-02T09:00:00Z"
    assert one(root, "saml:Conditions/@NotOnOrAfter") == "2026-03-02T09:05:00Z"
    for wrong in (dt.timedelta(0), dt.timedelta(hours=3)):
        with pytest.raises(VihfRefused, match="durée de validité"):
            build_vihf(request(validity=wrong))


def test_every_attribute_of_the_spec() -> None:
    root = build_vihf(request(confidentiality_code="R"))
    names = root.xpath("saml:AttributeStatement/saml:Attribute/@Name", namespaces=NS)
    assert set(names) == {
        "VIHF_Version", "Authentification_Mode", "Identifiant_Structure", "Secteur_Activite",
        "urn:oasis:names:tc:xspa:1.0:subject:subject-id",
        "urn:oasis:names:tc:xacml:2.0:subject:role",
        "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",
        "urn:oasis:names:tc:xacml:2.0:resource:resource-id", "Ressource_URN",
        CONFIDENTIALITY_ATTRIBUTE, "LPS_ID", "LPS_Nom", "LPS_Version", "LPS_ID_HOMOLOGATION_DMP",
    }
    assert CONFIDENTIALITY_ATTRIBUTE not in build_vihf(request()).xpath(
        "saml:AttributeStatement/saml:Attribute/@Name", namespaces=NS)


NOT_BEFORE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(("now", "words"), [
    (dt.datetime(2024, 6, 1, tzinfo=dt.UTC), "date impossible"),
    (dt.datetime(2025, 6, 1, tzinfo=dt.UTC), "antérieure au début de validité"),
    (dt.datetime(2030, 6, 1, tzinfo=dt.UTC), "postérieure à la fin de validité"),
])
def test_an_obviously_wrong_clock_is_refused(now: dt.datetime, words: str) -> None:
    with pytest.raises(ClockSkew, match=words) as refused:
        check_clock(now, certificate_not_before=NOT_BEFORE, certificate_not_after=NOT_AFTER)
    assert isinstance(refused.value, BridgeError)
    assert (refused.value.code, refused.value.event) == ("CLOCK_SKEW", "clock_skew")
    assert "horloge" in refused.value.message_fr


def test_a_plausible_clock_passes() -> None:
    check_clock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC), certificate_not_before=NOT_BEFORE,
                certificate_not_after=NOT_AFTER)
    with pytest.raises(ValueError):
        check_clock(dt.datetime(2026, 6, 1), certificate_not_before=NOT_BEFORE,
                    certificate_not_after=NOT_AFTER)


def test_the_shared_envelope_checks_the_clock_and_signs(credentials: SoftwareCredentials) -> None:
    not_before, _ = certificate_validity(credentials)
    kwargs: dict[str, Any] = dict(author=make_author(), patient=make_patient().ins, action="urn:x",
                  to="https://dmp/registry", body=etree.Element("corps"))
    with pytest.raises(ClockSkew):
        signed_envelope(credentials, SOFTWARE, now=not_before - dt.timedelta(days=1),
                        **kwargs)
    now = max(not_before + dt.timedelta(minutes=1), dt.datetime.now(dt.UTC))
    envelope = signed_envelope(credentials, SOFTWARE, now=now, **kwargs)
    security = envelope.find(".//wsse:Security", NS)
    assert security is not None
    assert validation_errors(security, SchemaName.VIHF) == []
    assert envelope.find(".//saml:Assertion/ds:Signature/ds:SignatureValue", NS) is not None
    direct = signed_envelope(credentials, SOFTWARE, now=now,
                             context=CallerContext(auth_mode=AuthMode.DIRECTE),
                             **kwargs)
    # Direct mode: signed too, by the card's signature key (spec/card-auth.md A2).
    assert direct.find(".//saml:Assertion/ds:Signature/ds:SignatureValue", NS) is not None
    with pytest.raises(VihfRefused):
        signed_envelope(credentials, SOFTWARE, now=now,
                        context=CallerContext(access_mode=AccessMode.CENTRE_15),
                        **kwargs)
    assert parse_xml(etree.tostring(envelope)) is not None
