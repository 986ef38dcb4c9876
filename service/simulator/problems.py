"""What a check reports: a code, where, and a French message a user can read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IheCode(StrEnum):
    """IHE XDS.b error codes the simulator emits (IHE ITI TF-3 4.2.4.1; spec §1.4)."""

    REGISTRY_METADATA = "XDSRegistryMetadataError"  # metadata wrong or incomplete
    REPOSITORY_METADATA = "XDSRepositoryMetadataError"  # metadata inconsistent with the document
    PATIENT_ID_MISMATCH = "XDSPatientIdDoesNotMatch"  # patientIds differ within the submission
    DUPLICATE_UNIQUE_ID = "XDSDuplicateUniqueIdInRegistry"  # uniqueId already registered
    NON_IDENTICAL_HASH = "XDSNonIdenticalHash"  # hash slot differs from the bytes received
    NON_IDENTICAL_SIZE = "XDSNonIdenticalSize"  # size slot differs from the bytes received
    MISSING_DOCUMENT = "XDSMissingDocument"  # an entry has no document bytes
    MISSING_DOCUMENT_METADATA = "XDSMissingDocumentMetadata"  # bytes without an entry
    UNKNOWN_STORED_QUERY = "XDSUnknownStoredQuery"  # ITI-18 query id not served
    STORED_QUERY_PARAM = "XDSStoredQueryParamNumber"  # ITI-18 parameters missing or wrong
    REGISTRY_ERROR = "XDSRegistryError"  # anything else on the registry side


@dataclass(frozen=True)
class Problem:
    """One reason to refuse a request. `message_fr` never contains health data."""

    code: str
    location: str
    message_fr: str
    lenient: bool = False  # True: refused only when the simulator runs strict


def keep(problems: list[Problem], *, strict: bool) -> list[Problem]:
    """The problems that cause a refusal under the current strictness."""
    return [p for p in problems if strict or not p.lenient]
