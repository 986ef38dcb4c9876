"""What the DMP answered, and what happens to the job (DESIGN.md §4, ITI TF-3 §4.2.4.1)."""

from __future__ import annotations

import pytest

from bridge.dmp_answer import (
    Decision,
    DmpAnswer,
    ErrorClass,
    decide,
    parse_answer,
    transport_failure,
)
from bridge.jobs import JobState

SOAP_XML = "application/soap+xml; charset=UTF-8"
RS_STATUS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:"
SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:"
METADATA_CONTEXT = "typeCode 99999-9 absent du jeu de valeurs JDV_J07"


def registry_error(code: str, context: str = "", severity: str = "Error") -> str:
    return (f'<rs:RegistryError errorCode="{code}" codeContext="{context}" '
            f'location="" severity="{SEVERITY}{severity}"/>')


def soap(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        "<soap:Header><wsa:Action>urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
        f"</wsa:Action></soap:Header><soap:Body>{inner}</soap:Body></soap:Envelope>"
    ).encode()


def registry_response(status: str, *errors: str) -> bytes:
    error_list = f"<rs:RegistryErrorList>{''.join(errors)}</rs:RegistryErrorList>" if errors else ""
    return soap('<rs:RegistryResponse xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" '
                f'status="{RS_STATUS}{status}">{error_list}</rs:RegistryResponse>')


def fault(code: str, reason: str = "Erreur de traitement") -> bytes:
    return soap(
        "<soap:Fault><soap:Code><soap:Value>soap:" + code + "</soap:Value></soap:Code>"
        f'<soap:Reason><soap:Text xml:lang="fr">{reason}</soap:Text></soap:Reason></soap:Fault>')


def answer_of(body: bytes, status: int = 200, content_type: str = SOAP_XML) -> DmpAnswer:
    return parse_answer(status, content_type, body)


def decision_of(body: bytes, status: int = 200, content_type: str = SOAP_XML) -> Decision:
    return decide(answer_of(body, status, content_type))


def test_success_means_done() -> None:
    answer = answer_of(registry_response("Success"))
    assert answer.success
    decision = decide(answer)
    assert (decision.state, decision.error_class, decision.code) == (JobState.DONE, None, "DMP_OK")


def test_a_registry_response_without_envelope_is_read_too() -> None:
    bare = registry_response("Success").split(b"<soap:Body>")[1].split(b"</soap:Body>")[0]
    assert answer_of(bare).success


def test_warnings_on_a_success_still_mean_done() -> None:
    body = registry_response("Success", registry_error("XDSExtraMetadataNotSaved",
                                                       "slot ignoré", "Warning"))
    answer = answer_of(body)
    assert answer.success
    assert answer.errors[0].code == "XDSExtraMetadataNotSaved"
    assert decide(answer).state is JobState.DONE


def test_a_busy_registry_is_transient_and_deferred() -> None:
    decision = decision_of(registry_response("Failure", registry_error("XDSRegistryBusy")))
    assert (decision.state, decision.error_class) == (JobState.DEFERRED, ErrorClass.TRANSIENT)
    assert decision.code == "XDSRegistryBusy"
    assert "nouvel essai automatique" in decision.message_fr


def test_a_duplicate_unique_id_is_ambiguous_until_the_dmp_is_asked() -> None:
    decision = decision_of(registry_response(
        "Failure", registry_error("XDSDuplicateUniqueIdInRegistry", "1.2.250.1.999.1")))
    assert (decision.state, decision.error_class) == (JobState.AMBIGUOUS, ErrorClass.AMBIGUOUS)


def test_a_metadata_error_is_permanent_and_quotes_the_dmp_detail_in_french() -> None:
    decision = decision_of(registry_response(
        "Failure", registry_error("XDSRegistryMetadataError", METADATA_CONTEXT)))
    assert (decision.state, decision.error_class) == (JobState.DEAD, ErrorClass.PERMANENT)
    assert decision.code == "XDSRegistryMetadataError"
    assert "Le DMP refuse les métadonnées du document" in decision.message_fr
    assert f"Détail du DMP : {METADATA_CONTEXT}" in decision.message_fr


def test_an_unknown_dmp_code_is_permanent_rather_than_retried_blindly() -> None:
    decision = decision_of(registry_response(
        "Failure", registry_error("DMP_ERR_0042", "Patient en opposition")))
    assert (decision.state, decision.error_class) == (JobState.DEAD, ErrorClass.PERMANENT)
    assert decision.code == "DMP_CODE_INCONNU:DMP_ERR_0042"  # flagged: it raises an alert
    assert "DMP_ERR_0042 : Patient en opposition" in decision.message_fr


@pytest.mark.parametrize("order", ["transient first", "permanent first"])
def test_one_permanent_error_makes_the_whole_answer_permanent(order: str) -> None:
    errors = [registry_error("XDSRegistryBusy"),
              registry_error("XDSRegistryMetadataError", METADATA_CONTEXT)]
    if order == "permanent first":
        errors.reverse()
    decision = decision_of(registry_response("Failure", *errors))
    assert (decision.state, decision.code) == (JobState.DEAD, "XDSRegistryMetadataError")


def test_ambiguous_wins_over_transient() -> None:
    decision = decision_of(registry_response(
        "Failure", registry_error("XDSRepositoryBusy"),
        registry_error("XDSDuplicateUniqueIdInRegistry")))
    assert decision.state is JobState.AMBIGUOUS


def test_a_failure_status_without_errors_is_not_a_success() -> None:
    answer = answer_of(registry_response("Failure"))
    assert not answer.success
    assert decide(answer).state is JobState.DEAD


def test_a_receiver_fault_on_http_500_is_transient() -> None:
    answer = answer_of(fault("Receiver", "Service indisponible"), status=500)
    assert not answer.success
    assert answer.fault is not None and "Service indisponible" in answer.fault
    decision = decide(answer)
    assert (decision.state, decision.error_class) == (JobState.DEFERRED, ErrorClass.TRANSIENT)


def test_a_sender_fault_on_http_400_is_permanent() -> None:
    decision = decision_of(fault("Sender", "Requête invalide"), status=400)
    assert (decision.state, decision.error_class) == (JobState.DEAD, ErrorClass.PERMANENT)
    assert "Requête invalide" in decision.message_fr


def test_a_sender_fault_is_permanent_even_on_http_500() -> None:
    # Many SOAP stacks answer every fault with HTTP 500; the fault code is what tells them apart.
    answer = answer_of(fault("Sender", "Requête invalide"), status=500)
    assert answer.fault is not None and "Sender" in answer.fault
    assert decide(answer).state is JobState.DEAD


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\xff\xfe garbage \x89PNG",
        b"<html><body>502 Bad Gateway</body></html>",
        b"<soap:Envelope",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "boom">]><r>&x;</r>',
        soap("<nothing/>"),
    ],
    ids=["empty", "garbage", "html", "truncated", "doctype", "no registry response"],
)
def test_an_unreadable_answer_is_no_success_and_raises_nothing(body: bytes) -> None:
    answer = answer_of(body, status=502)
    assert not answer.success
    assert answer.fault
    assert decide(answer).state is not JobState.DONE


def mtom_answer(root_first: bool) -> tuple[str, bytes]:
    boundary = "uuid:0c1f2a3b-answer"
    root = (b"--" + boundary.encode() + b"\r\n"
            b'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
            b"Content-Transfer-Encoding: binary\r\nContent-ID: <root.answer@dmp>\r\n\r\n"
            + registry_response("Success") + b"\r\n")
    other = (b"--" + boundary.encode() + b"\r\n"
             b"Content-Type: application/octet-stream\r\nContent-ID: <other@dmp>\r\n\r\n"
             + registry_response("Failure", registry_error("XDSRegistryBusy")) + b"\r\n")
    body = (root + other if root_first else other + root) + b"--" + boundary.encode() + b"--\r\n"
    content_type = (f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
                    'start="<root.answer@dmp>"; start-info="application/soap+xml"')
    return content_type, body


@pytest.mark.parametrize("root_first", [True, False])
def test_an_mtom_answer_is_read_from_its_root_part(root_first: bool) -> None:
    content_type, body = mtom_answer(root_first)
    answer = answer_of(body, content_type=content_type)
    assert answer.success
    assert decide(answer).state is JobState.DONE


def test_a_timeout_after_sending_is_ambiguous() -> None:
    decision = transport_failure(sent=True, detail="read timeout")
    assert (decision.state, decision.error_class) == (JobState.AMBIGUOUS, ErrorClass.AMBIGUOUS)
    assert "vérification avant tout renvoi" in decision.message_fr


def test_a_connection_refused_before_sending_is_deferred() -> None:
    decision = transport_failure(sent=False, detail="connection refused")
    assert (decision.state, decision.error_class) == (JobState.DEFERRED, ErrorClass.TRANSIENT)
    assert "connection refused" in decision.message_fr
