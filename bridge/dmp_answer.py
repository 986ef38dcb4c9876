"""What the DMP answered, and what it means for the job.

One table maps every answer to a class — transient (retry later), permanent (dead: a person must
fix the document), ambiguous (ask the DMP before resending) — with a French message for the user.
The IHE codes are public (ITI TF-3 §4.2.4.1); the DMP's own codes are not, so an unknown code is
treated as permanent: sending again blindly could flood the DMP with the same error.
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass

from bridge.dmp_error_table import ERROR_TABLE, ErrorClass
from bridge.jobs import JobState
from bridge.xmlsafe import UnsafeXmlError, parse_xml

RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
SOAP = "http://www.w3.org/2003/05/soap-envelope"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:PartialSuccess"
MAX_ANSWER_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class RegistryError:
    """One `rs:RegistryError` of an answer."""

    code: str
    context: str
    location: str
    severity: str


@dataclass(frozen=True)
class DmpAnswer:
    """A parsed answer: a RegistryResponse, a SOAP Fault, or something unreadable."""

    http_status: int
    success: bool
    errors: tuple[RegistryError, ...] = ()
    fault: str | None = None  # SOAP Fault code and reason, when there is one


@dataclass(frozen=True)
class Decision:
    """What to do with the job after an attempt."""

    error_class: ErrorClass | None  # None on success
    state: JobState
    code: str
    message_fr: str


def _root_part(content_type: str, body: bytes) -> bytes:
    """The SOAP part of an answer, whether plain or MTOM multipart/related."""
    if not content_type.lower().startswith("multipart/"):
        return body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    start = message.get_param("start", header="content-type")
    for part in message.iter_parts():
        if start is None or part.get("Content-ID") == start:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    return b""


def parse_answer(http_status: int, content_type: str, body: bytes) -> DmpAnswer:
    """Read an HTTP answer from the DMP into a DmpAnswer (never raises on bad bytes)."""
    try:
        root = parse_xml(_root_part(content_type, body), max_bytes=MAX_ANSWER_BYTES)
    except UnsafeXmlError as exc:
        return DmpAnswer(http_status, False, fault=f"unreadable answer: {exc.reason}")
    fault = root.find(f".//{{{SOAP}}}Fault")
    if fault is not None:
        # SOAP 1.2: Code/Value (Sender, Receiver…) and optional nested Subcode/Value.
        values = fault.iterfind(f"{{{SOAP}}}Code//{{{SOAP}}}Value")
        code = " ".join((value.text or "").strip() for value in values)
        reason = " ".join(fault.findtext(f"{{{SOAP}}}Reason/{{{SOAP}}}Text", "").split())
        return DmpAnswer(http_status, False, fault=f"{code}: {reason}".strip(": "))
    response = (
        root
        if root.tag == f"{{{RS}}}RegistryResponse"
        else root.find(f".//{{{RS}}}RegistryResponse")
    )
    if response is None:
        return DmpAnswer(http_status, False, fault="no RegistryResponse in the answer")
    errors = tuple(
        RegistryError(
            code=e.get("errorCode", ""),
            context=e.get("codeContext", ""),
            location=e.get("location", ""),
            severity=e.get("severity", ""),
        )
        for e in response.iter(f"{{{RS}}}RegistryError")
    )
    status = response.get("status", "")
    real_errors = [e for e in errors if not e.severity.endswith("Warning")]
    return DmpAnswer(http_status, status in (SUCCESS, PARTIAL) and not real_errors, errors)


# Most serious first, and the state each class puts the job in.
SEVERITY = (ErrorClass.PERMANENT, ErrorClass.NEEDS_PERSON, ErrorClass.ENVIRONMENT,
            ErrorClass.AMBIGUOUS, ErrorClass.TRANSIENT)
STATE_OF = {
    ErrorClass.PERMANENT: JobState.DEAD,
    ErrorClass.NEEDS_PERSON: JobState.HELD,
    # Nothing is wrong with the document: it goes back to the queue without using an attempt,
    # and the dispatcher pauses until the environment (certificate, clock) is fixed.
    ErrorClass.ENVIRONMENT: JobState.QUEUED,
    ErrorClass.AMBIGUOUS: JobState.AMBIGUOUS,
    ErrorClass.TRANSIENT: JobState.DEFERRED,
}
# A decision code for a DMP error code that is in no table (it raises an alert).
UNKNOWN_CODE_PREFIX = "DMP_CODE_INCONNU:"


def decide(answer: DmpAnswer) -> Decision:
    """Turn an answer into the next state of the job, with the message the user will read."""
    if answer.success:
        return Decision(None, JobState.DONE, "DMP_OK", "Document enregistré dans le DMP.")
    if answer.fault is not None and not answer.errors:
        if answer.http_status >= 500 and "Sender" not in answer.fault:
            return Decision(
                ErrorClass.TRANSIENT,
                JobState.DEFERRED,
                "DMP_FAULT",
                "Le DMP a répondu par une erreur technique ; nouvel essai automatique.",
            )
        return Decision(
            ErrorClass.PERMANENT,
            JobState.DEAD,
            "DMP_FAULT",
            "Le DMP a refusé la requête (erreur SOAP). Détail technique : "
            f"{answer.fault[:300]}. Contactez le support de dmp-bridge.",
        )
    classes = [ERROR_TABLE.get(e.code) for e in answer.errors]
    first = answer.errors[0] if answer.errors else RegistryError("DMP_UNKNOWN", "", "", "")
    if any(c is None for c in classes) or not classes:
        detail = f"{first.code} : {first.context}"[:400]
        return Decision(
            ErrorClass.PERMANENT,
            JobState.DEAD,
            UNKNOWN_CODE_PREFIX + (first.code or "?"),
            f"Le DMP a refusé le document ({detail}). Corrigez le document ou "
            "contactez le support, puis relancez l'envoi.",
        )
    known = [c for c in classes if c is not None]
    # The most serious class wins: one permanent error makes the whole submission permanent.
    for wanted in SEVERITY:
        for error, entry in zip(answer.errors, known, strict=False):
            if entry[0] is wanted:
                context = f" Détail du DMP : {error.context[:300]}" if error.context else ""
                return Decision(wanted, STATE_OF[wanted], error.code, entry[1] + context)
    raise AssertionError("unreachable: every known class is handled")


def transport_failure(sent: bool, detail: str, *, tls: bool = False,
                      card: bool = False) -> Decision:
    """A connection or timeout failure: ambiguous when the request may have reached the DMP;
    a TLS handshake failure is the environment's (certificates, trust store, the CPS card),
    not the DMP's."""
    if card and not sent:
        return Decision(
            ErrorClass.ENVIRONMENT,
            JobState.QUEUED,
            "DMP_CARTE",
            "La carte CPS a été retirée ou n'est plus utilisable : rien n'est parti. "
            "Réinsérez la carte et saisissez son code PIN ; les envois reprendront aussitôt. "
            f"Détail : {detail[:200]}",
        )
    if tls and not sent:
        return Decision(
            ErrorClass.ENVIRONMENT,
            JobState.QUEUED,
            "DMP_TLS",
            "La connexion sécurisée au DMP échoue (certificat refusé ou autorité inconnue). "
            "Vérifiez les certificats de la structure ; les envois reprendront d'eux-mêmes. "
            f"Détail : {detail[:200]}",
        )
    if sent:
        return Decision(
            ErrorClass.AMBIGUOUS,
            JobState.AMBIGUOUS,
            "DMP_NO_ANSWER",
            "Le DMP n'a pas répondu après l'envoi ; vérification avant tout renvoi.",
        )
    return Decision(
        ErrorClass.TRANSIENT,
        JobState.DEFERRED,
        "DMP_UNREACHABLE",
        "Le DMP est injoignable (réseau ou service arrêté) ; nouvel essai automatique. "
        f"Détail : {detail[:200]}",
    )
