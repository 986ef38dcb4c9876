"""The domain model: who the patient is, who the author is, what document is sent.

Plain frozen dataclasses; pydantic lives at the borders (config, sidecars). Every value here has
already been checked by the intake and the identity gate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

# OIDs of the identifier domains (spec/dmp-protocol.md §3.4).
OID_RPPS = "1.2.250.1.71.4.2.1"  # PS national ids (PS_IdNat, IDNPS)
OID_STRUCTURE = "1.2.250.1.71.4.2.2"  # structure national ids (Struct_IdNat, IDNST)
OID_SECTOR = "1.2.250.1.71.4.2.4"  # TRE_R02 SecteurActivite
OID_AUTHOR_SPECIALTY = "1.2.250.1.213.1.1.4.5"  # TRE_A02 / JDV_J01
OID_PROFESSION = "1.2.250.1.71.1.2.7"  # TRE_G15 ProfessionSante
OID_PRACTICE_SETTING = "1.2.250.1.213.1.1.4.9"  # TRE_A01 CadreExercice
OID_CLASS = "1.2.250.1.213.1.1.4.1"  # TRE_A03 ClasseDocument
OID_LOINC = "2.16.840.1.113883.6.1"
OID_CONFIDENTIALITY = "2.16.840.1.113883.5.25"
OID_VISIBILITY = "1.2.250.1.213.1.1.4.13"  # TRE_A07 MASQUE_PS, INVISIBLE_PATIENT…
OID_IHE_FORMAT = "1.3.6.1.4.1.19376.1.2.3"


class InsOid(StrEnum):
    """The assigning authorities of an INS (DESIGN.md §5)."""

    NIR = "1.2.250.1.213.1.4.8"  # INS-NIR, production
    NIA = "1.2.250.1.213.1.4.9"  # INS-NIA, production
    NIR_TEST = "1.2.250.1.213.1.4.10"  # INS-NIR de test
    NIA_TEST = "1.2.250.1.213.1.4.11"  # INS-NIA de test / démonstration

    @property
    def is_test(self) -> bool:
        return self in (InsOid.NIR_TEST, InsOid.NIA_TEST)


class IdentityStatus(StrEnum):
    """Status of the patient's identity in the practice (référentiel INS)."""

    PROV = "PROV"  # identité provisoire
    RECUP = "RECUP"  # identité récupérée (INSi) non vérifiée
    VALI = "VALI"  # identité validée (pièce d'identité) sans INSi
    QUAL = "QUAL"  # identité qualifiée: la seule que l'on peut envoyer au DMP


class Sex(StrEnum):
    """administrativeGenderCode (HL7 AdministrativeGender)."""

    F = "F"  # féminin
    M = "M"  # masculin
    U = "U"  # inconnu


@dataclass(frozen=True)
class Ins:
    """Identifiant national de santé: 15-character matricule (NIR + key) and its OID."""

    matricule: str
    oid: InsOid

    def cx(self) -> str:
        """The HL7 CX form used by XDS patientId and the VIHF resource-id."""
        return f"{self.matricule}^^^&{self.oid.value}&ISO^NH"


@dataclass(frozen=True)
class Patient:
    """The patient's INS identity traits, as the référentiel INS requires them."""

    ins: Ins
    identity_status: IdentityStatus
    birth_family_name: str
    given_names: tuple[str, ...]  # all birth given names, first one first
    birth_date: dt.date
    sex: Sex
    used_family_name: str | None = None
    birthplace_code: str | None = None  # INSEE code of the birthplace (COG)

    @property
    def first_given_name(self) -> str:
        return self.given_names[0]


@dataclass(frozen=True)
class Author:
    """The health professional who wrote the document, and the structure they work for."""

    rpps: str  # 11 digits
    family_name: str
    given_name: str
    profession_code: str  # TRE_G15, e.g. "60" infirmier
    specialty_code: str  # JDV_J01 authorSpecialty, e.g. "G15_60"
    specialty_display: str  # e.g. "Infirmier"
    structure_id: str  # Struct_IdNat, e.g. "499700366240007"
    structure_name: str
    sector_code: str  # TRE_R02, e.g. "SA07" cabinet individuel
    role_display: str | None = None  # authorRole, display text of JDV_J47

    @property
    def ps_idnat(self) -> str:
        """PS_IdNat of an RPPS holder: '8' followed by the 11-digit RPPS."""
        return f"8{self.rpps}"


@dataclass(frozen=True)
class Coded:
    """A coded value: code, display name and the OID (or URN) of its code system."""

    code: str
    display: str
    system: str


@dataclass(frozen=True)
class DocumentCodes:
    """The XDS classification of one document, all resolved before packaging."""

    type_code: Coded  # JDV_J07 / J66, also the CDA code
    class_code: Coded  # TRE_A03, always derived from type_code
    format_code: Coded  # JDV_J60
    practice_setting: Coded  # JDV_J04
    facility_type: Coded  # JDV_J02 / J61, the healthCareFacility code
    confidentiality: Coded  # N / R / V
    visibility: tuple[Coded, ...] = ()  # extra confidentialityCodes from TRE_A07
    event_codes: tuple[Coded, ...] = ()  # eventCodeList: acts, pathologies…


@dataclass(frozen=True)
class ClinicalDocument:
    """Everything needed to build one CDA R2 N1 document around a PDF."""

    unique_id: str  # OID, minted once when the job is packaged; CDA id/@root
    set_id: str  # OID shared by every version of the document
    version: int
    title: str
    effective_time: dt.datetime  # aware; CDA effectiveTime, XDS creationTime
    service_start: dt.datetime  # aware; serviceEvent effectiveTime/low
    service_stop: dt.datetime | None
    patient: Patient
    author: Author
    codes: DocumentCodes
    pdf: bytes = field(repr=False)
    custodian_id: str = ""  # Struct_IdNat of the custodian; the author's structure if empty
    custodian_name: str = ""
    # uniqueId of the version this one replaces (CDA relatedDocument RPLC, spec §4.4); then
    # set_id is the replaced document's and version its version + 1.
    replaces_unique_id: str | None = None
    language: str = "fr-FR"  # CDA languageCode, XDS languageCode (a passed-through CDA's own)


@dataclass(frozen=True)
class PackagedDocument:
    """A document ready for ITI-41: its CDA bytes and the metadata taken from them."""

    entry_id: str  # symbolic id in the submission, e.g. "Document01"
    content_id: str  # MTOM Content-ID of its MIME part, without angle brackets
    cda: bytes = field(repr=False)
    clinical: ClinicalDocument = field(repr=False)
    # entryUUID (assigned by the DMP) of the entry this document replaces: the RPLC association.
    replaces_entry_uuid: str | None = None


@dataclass(frozen=True)
class SignatureDocument:
    """The XAdES signature of the submission set, sent as one more document entry."""

    entry_id: str
    content_id: str
    unique_id: str
    xml: bytes = field(repr=False)


@dataclass(frozen=True)
class Submission:
    """One ITI-41 submission set: one patient, one author, 1..n documents and their signature."""

    unique_id: str  # OID of the submission set, minted once
    source_id: str  # OID of this bridge installation
    submission_time: dt.datetime  # aware
    author: Author
    patient: Patient
    documents: tuple[PackagedDocument, ...]
    signature: SignatureDocument
    content_type: Coded  # JDV_J59 contentTypeCode, e.g. SA07 / TRE_R02
    title: str = ""
