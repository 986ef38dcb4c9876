"""Why a HL7 v2 message is refused, in the terms of the ANS profile CISIS_CDA_HL7_V2.

Every refusal is one `HL7Rejected`: the HL7 table 0357 code for ERR-3 (100–207), the
application code for ERR-5 when the profile has one (900–905), where it was found (ERR-2), a
French sentence for the user (ERR-8), and whether the sender may resend the same message as it
is (AR: a transport or storage failure, or a header value this receiver does not support) or
must correct it first (AE).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from bridge.errors import BridgeError


class ErrorCode(IntEnum):
    """HL7 table 0357 messageErrorCondition, as the ANS profile lists it (ERR-3)."""

    SEGMENT_SEQUENCE = 100  # segments out of order, or a required segment missing
    REQUIRED_FIELD = 101  # a required field is empty
    DATA_TYPE = 102  # a value does not have the format of its data type
    TABLE_VALUE = 103  # a coded value is not in its table
    CARDINALITY = 198  # a segment or field repeats more than allowed
    OTHER = 199  # any other syntax problem (bytes not in the declared charset…)
    MESSAGE_TYPE = 200  # MSH-9.1 not supported
    EVENT = 201  # MSH-9.2 not supported
    PROCESSING_ID = 202  # MSH-11 not supported
    VERSION = 203  # MSH-12 not supported
    DUPLICATE_KEY = 205  # MSH-10 already used by this sender for another message
    APPLICATION = 207  # application error, detailed in ERR-5 when the profile has a code


ERROR_LABELS: dict[ErrorCode, str] = {
    ErrorCode.SEGMENT_SEQUENCE: "Segment sequence error",
    ErrorCode.REQUIRED_FIELD: "Required field missing",
    ErrorCode.DATA_TYPE: "Data type error",
    ErrorCode.TABLE_VALUE: "Table value not found",
    ErrorCode.CARDINALITY: "Non-conformant cardinality",
    ErrorCode.OTHER: "Other HL7 Error",
    ErrorCode.MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.EVENT: "Unsupported event code",
    ErrorCode.PROCESSING_ID: "Unsupported processing id",
    ErrorCode.VERSION: "Unsupported version id",
    ErrorCode.DUPLICATE_KEY: "Duplicate key identifier",
    ErrorCode.APPLICATION: "Application internal error",
}


class AppCode(IntEnum):
    """The profile's user-defined applicationErrorCondition table (ERR-5)."""

    WRONG_VERSION = 900  # version of the document wrong on a replace/delete request
    AUTHOR_NOT_ALLOWED = 901  # author not allowed to replace/delete the document
    PATIENT_UNKNOWN = 902  # patient unknown to the receiver
    INS_MISSING = 903  # no INS among the patient identifiers
    INS_MISMATCH = 904  # the INS differs from the one known (here: PID-3 versus the CDA)
    INS_INCOMPLETE = 905  # the INS comes without all its identity traits


APP_LABELS: dict[AppCode, str] = {
    AppCode.WRONG_VERSION: "Version du document incorrecte",
    AppCode.AUTHOR_NOT_ALLOWED: "Auteur non autorisé à remplacer ou supprimer un document",
    AppCode.PATIENT_UNKNOWN: "Identifiant patient inconnu",
    AppCode.INS_MISSING: "INS non présent dans le document",
    AppCode.INS_MISMATCH: "L'INS transmis ne correspond pas",
    AppCode.INS_INCOMPLETE: "L'INS transmis n'est pas complet",
}


class AckCode(StrEnum):
    """MSA-1: original mode (AA/AE/AR) and enhanced mode commit acks (CA/CE/CR)."""

    AA = "AA"  # accepted: committed to the queue, the sender may forget the message
    AE = "AE"  # error in the message: correct it before sending it again
    AR = "AR"  # rejected: header not supported, or not stored; may be resent
    CA = "CA"  # enhanced mode: committed
    CE = "CE"  # enhanced mode: error in the message
    CR = "CR"  # enhanced mode: rejected, may be resent


@dataclass(frozen=True)
class Location:
    """ERR-2 (ERL): segment, its occurrence, field, component (0 = not given)."""

    segment: str
    sequence: int = 1
    field: int = 0
    component: int = 0

    def erl(self) -> str:
        parts = [self.segment, str(self.sequence)]
        if self.field:
            parts.append(str(self.field))
            if self.component:
                parts += ["1", str(self.component)]
        return "^".join(parts)


class HL7Rejected(BridgeError):
    """A HL7 message that cannot become a job; the ACK says why (ERR-3/ERR-5/ERR-8)."""

    code = "HL7_REJECTED"
    event = "hl7_rejected"

    def __init__(
        self,
        message_fr: str,
        *,
        error: ErrorCode,
        location: Location | None = None,
        app_code: AppCode | None = None,
        resend: bool = False,
        event: str | None = None,
    ) -> None:
        super().__init__(message_fr, code=f"HL7_{int(app_code or error)}", event=event)
        self.error = error
        self.location = location
        self.app_code = app_code
        self.resend = resend  # AR/CR: the same bytes may succeed later (or elsewhere)

    @property
    def ack_code(self) -> AckCode:
        """MSA-1 in original mode."""
        return AckCode.AR if self.resend else AckCode.AE


def rejected(
    message_fr: str,
    error: ErrorCode,
    where: Location | None = None,
    *,
    app_code: AppCode | None = None,
    resend: bool = False,
) -> HL7Rejected:
    """Shorthand used by the parsers."""
    return HL7Rejected(message_fr, error=error, location=where, app_code=app_code, resend=resend)
