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
from enum import StrEnum

from bridge.jobs import JobState
from bridge.xmlsafe import UnsafeXmlError, parse_xml

RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
SOAP = "http://www.w3.org/2003/05/soap-envelope"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:PartialSuccess"
MAX_ANSWER_BYTES = 10 * 1024 * 1024


class ErrorClass(StrEnum):
    """How a failure is handled (DESIGN.md §4)."""

    TRANSIENT = "transient"  # retry with backoff
    ENVIRONMENT = "environment"  # pause everything, consume no attempt (card, TLS trust, clock)
    AMBIGUOUS = "ambiguous"  # the document may be registered: ask before resending
    PERMANENT = "permanent"  # the DMP will refuse it again: dead, kept for replay


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


_BUSY = "Le DMP est momentanément surchargé ; nouvel essai automatique."
_INTERNAL = "Erreur interne du DMP ; nouvel essai automatique."
_METADATA = (
    "Le DMP refuse les métadonnées du document. Vérifiez le type de document et "
    "l'auteur, puis relancez l'envoi."
)
_ALTERED = "Le document a été altéré pendant l'envoi ({what}). Contactez le support."
_SUPPORT = "{what} Contactez le support de dmp-bridge."

# IHE codes: (class, French message for the user).
IHE_CODES: dict[str, tuple[ErrorClass, str]] = {
    "XDSRegistryBusy": (ErrorClass.TRANSIENT, _BUSY),
    "XDSRepositoryBusy": (ErrorClass.TRANSIENT, _BUSY),
    "XDSRegistryOutOfResources": (ErrorClass.TRANSIENT, _BUSY),
    "XDSRepositoryOutOfResources": (ErrorClass.TRANSIENT, _BUSY),
    "XDSRegistryError": (ErrorClass.TRANSIENT, _INTERNAL),
    "XDSRepositoryError": (ErrorClass.TRANSIENT, _INTERNAL),
    "XDSDuplicateUniqueIdInRegistry": (
        ErrorClass.AMBIGUOUS,
        "Le DMP connaît déjà ce document : vérification en cours.",
    ),
    "XDSRegistryMetadataError": (ErrorClass.PERMANENT, _METADATA),
    "XDSRepositoryMetadataError": (ErrorClass.PERMANENT, _METADATA),
    "XDSPatientIdDoesNotMatch": (
        ErrorClass.PERMANENT,
        _SUPPORT.format(what="L'identité du patient n'est pas la même partout dans l'envoi."),
    ),
    "XDSUnknownPatientId": (
        ErrorClass.PERMANENT,
        "Le DMP ne connaît pas ce patient (INS). Vérifiez l'INS dans le dossier du patient.",
    ),
    "XDSNonIdenticalHash": (ErrorClass.PERMANENT, _ALTERED.format(what="empreinte différente")),
    "XDSNonIdenticalSize": (ErrorClass.PERMANENT, _ALTERED.format(what="taille différente")),
    "XDSMissingDocument": (
        ErrorClass.PERMANENT,
        _SUPPORT.format(what="Un document annoncé manque dans l'envoi."),
    ),
    "XDSMissingDocumentMetadata": (
        ErrorClass.PERMANENT,
        _SUPPORT.format(what="Un document de l'envoi n'a pas de métadonnées."),
    ),
    "XDSDocumentUniqueIdError": (
        ErrorClass.PERMANENT,
        _SUPPORT.format(what="L'identifiant du document est refusé par le DMP."),
    ),
}


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
    classes = [IHE_CODES.get(e.code) for e in answer.errors]
    first = answer.errors[0] if answer.errors else RegistryError("DMP_UNKNOWN", "", "", "")
    if any(c is None for c in classes) or not classes:
        detail = f"{first.code} : {first.context}"[:400]
        return Decision(
            ErrorClass.PERMANENT,
            JobState.DEAD,
            first.code or "DMP_UNKNOWN",
            f"Le DMP a refusé le document ({detail}). Corrigez le document ou "
            "contactez le support, puis relancez l'envoi.",
        )
    known = [c for c in classes if c is not None]
    # The most serious class wins: one permanent error makes the whole submission permanent.
    for wanted, state in (
        (ErrorClass.PERMANENT, JobState.DEAD),
        (ErrorClass.AMBIGUOUS, JobState.AMBIGUOUS),
        (ErrorClass.TRANSIENT, JobState.DEFERRED),
    ):
        for error, entry in zip(answer.errors, known, strict=False):
            if entry[0] is wanted:
                context = f" Détail du DMP : {error.context[:300]}" if error.context else ""
                return Decision(wanted, state, error.code, entry[1] + context)
    raise AssertionError("unreachable: every known class is handled")


def transport_failure(sent: bool, detail: str) -> Decision:
    """A connection or timeout failure: ambiguous when the request may have reached the DMP."""
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
