"""What a check reports: a code, where, and a French message a user can read.

`ALL_ERROR_CODES` is every errorCode / Fault code the simulator can emit (IHE and invented);
`ERRORS.md` documents each one, and a test keeps both in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import structlog

from service.simulator.invented_codes import InventedCode

log = structlog.get_logger("service.simulator")


class IheCode(StrEnum):
    """IHE XDS.b error codes the simulator emits (IHE ITI TF-3 4.2.4.1; spec §1.4)."""

    REGISTRY_METADATA = "XDSRegistryMetadataError"  # metadata wrong or incomplete
    REPOSITORY_METADATA = "XDSRepositoryMetadataError"  # metadata inconsistent with the document
    PATIENT_ID_MISMATCH = "XDSPatientIdDoesNotMatch"  # patientIds differ within the request
    UNKNOWN_PATIENT_ID = "XDSUnknownPatientId"  # the patient has no DMP
    DUPLICATE_UNIQUE_ID = "XDSDuplicateUniqueIdInRegistry"  # uniqueId already registered
    NON_IDENTICAL_HASH = "XDSNonIdenticalHash"  # hash slot differs from the bytes received
    NON_IDENTICAL_SIZE = "XDSNonIdenticalSize"  # size slot differs from the bytes received
    MISSING_DOCUMENT = "XDSMissingDocument"  # an entry has no document bytes
    MISSING_DOCUMENT_METADATA = "XDSMissingDocumentMetadata"  # bytes without an entry
    UNKNOWN_STORED_QUERY = "XDSUnknownStoredQuery"  # ITI-18 query id not served
    STORED_QUERY_PARAM = "XDSStoredQueryParamNumber"  # ITI-18 parameters missing or wrong
    REPLACE_FAILED = "XDSReplaceFailed"  # RPLC target unknown, not Approved or other patient
    METADATA_UPDATE = "XDSMetadataUpdateError"  # ITI-57 change not allowed from this state
    METADATA_VERSION = "XDSMetadataVersionError"  # ITI-57 PreviousVersion is not the current one
    REGISTRY_BUSY = "XDSRegistryBusy"  # injected: the registry is busy, retry later
    REGISTRY_ERROR = "XDSRegistryError"  # anything else on the registry side (internal error)


ALL_ERROR_CODES: frozenset[str] = frozenset(
    {str(c) for c in IheCode} | {str(c) for c in InventedCode}
)


@dataclass(frozen=True)
class Problem:
    """One reason to refuse a request. `message_fr` never contains health data."""

    code: str
    location: str
    message_fr: str
    lenient: bool = False  # True: a known client variant (spec §7), refused only when strict


def keep(problems: list[Problem], *, strict: bool) -> list[Problem]:
    """The problems that cause a refusal under the current strictness.

    In lenient mode every tolerated variant is logged once as a warning, so a test (or an
    operator) sees what a real DMP might have refused.
    """
    if strict:
        return list(problems)
    for problem in problems:
        if problem.lenient:
            log.warning("simulator_lenient_variant", code=str(problem.code),
                        location=problem.location, message=problem.message_fr)
    return [p for p in problems if not p.lenient]
