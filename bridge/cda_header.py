"""Read the header of a CDA R2 document (N1 or N3) written by practice software.

Such a document is passed through to the DMP as it is: we never rewrite its bytes, so everything
the XDS metadata needs is read from its header (spec/dmp-protocol.md §4.2), and everything that
would make the DMP refuse it (the structuration minimale schematron 1.2.250.1.213.1.1.1.1, the
INS rules, the RPPS of the author) is listed in French in `CdaHeader.problems`. Only bytes that
are not a CDA at all raise `IntakeRejected`: a readable CDA with problems is a value the caller
can show, hold or dead-letter with the reason.

Decisions:

- Identity. A CDA carries the INS and its traits but never the identity status (QUAL, VALI…),
  which lives in the practice's référentiel. So the header holds `ins` (checked with
  `bridge.ins.parse_ins`) and `patient_traits` (INS + traits, no status), and `patient`
  (a `bridge.domain.Patient`) only when the caller passes the `identity_status` it knows; we
  never guess a status, not even a low one, because the identity gate's message would then lie.
- Times. A HL7 TS without a UTC offset is read as Europe/Paris wall-clock time: the software
  that writes it runs in France, and reading it as UTC would move the document by one or two
  hours. On a repeated autumn hour the first (summer-time) occurrence is taken, in the spring gap
  the winter offset (PEP 495 fold=0). Every returned datetime carries a fixed offset.
- Ids. `unique_id` is `id/@root` alone and must be an OID of at most 64 characters (XDS
  uniqueId); `id/@extension`, if any, is kept apart in `unique_id_extension`.
- Author. `author` is None when the first author has no RPPS (PS_IdNat "8" + 11 digits); other
  missing parts become empty strings and are listed in `problems`. The profession is the TRE_G15
  code of the specialty prefix ("G15_10/SM26" → "10"), empty for other specialties; the sector is
  the healthCareFacility code.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

from bridge.cda import NS_HL7, TEMPLATE_CI_SIS, TEMPLATE_HL7_FRANCE, TEMPLATE_XDS_SD
from bridge.domain import (
    OID_RPPS,
    OID_STRUCTURE,
    Author,
    Coded,
    IdentityStatus,
    Ins,
    InsOid,
    Patient,
    Sex,
)
from bridge.errors import IdentityRejected, IntakeRejected
from bridge.hl7_time import parse_hl7_ts
from bridge.ins import parse_ins
from bridge.xmlsafe import DEFAULT_MAX_BYTES, UnsafeXmlError, parse_xml

MAX_CDA_BYTES = DEFAULT_MAX_BYTES  # 20 MiB: a CDA wrapping the largest PDF accepted in practice

_NS = {"h": NS_HL7}
_ROOT_TAG = f"{{{NS_HL7}}}ClinicalDocument"
_INS_ROOTS = frozenset(oid.value for oid in InsOid)
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_MAX_OID_LENGTH = 64  # IHE ITI TF-3: the OID part of an XDS uniqueId
_PS_IDNAT_RPPS = re.compile(r"^8([0-9]{11})$")
_PROFESSION = re.compile(r"^G15_([0-9]{2})(?:/|$)")
_LANGUAGE = re.compile(r"^[a-z]{2}-[A-Z]{2}$")
_CONFIDENTIALITY = frozenset({"N", "R", "V"})
@dataclass(frozen=True)
class PatientTraits:
    """The INS and the identity traits read from recordTarget; the status is not in a CDA."""

    ins: Ins
    birth_family_name: str
    given_names: tuple[str, ...]
    birth_date: dt.date
    sex: Sex
    used_family_name: str | None = None
    birthplace_code: str | None = None

    def with_status(self, status: IdentityStatus) -> Patient:
        """The domain patient, once the caller knows the identity status from its référentiel."""
        return Patient(
            ins=self.ins,
            identity_status=status,
            birth_family_name=self.birth_family_name,
            given_names=self.given_names,
            birth_date=self.birth_date,
            sex=self.sex,
            used_family_name=self.used_family_name,
            birthplace_code=self.birthplace_code,
        )


@dataclass(frozen=True)
class CdaHeader:
    """What the DMP metadata needs from a received CDA, and why the DMP would refuse it."""

    unique_id: str | None  # id/@root: the XDS uniqueId
    unique_id_extension: str | None  # id/@extension, kept apart
    set_id: str | None  # setId/@root
    version: int | None
    title: str | None
    effective_time: dt.datetime | None  # aware; XDS creationTime
    type_code: Coded | None
    confidentiality: Coded | None
    language: str | None
    template_ids: tuple[str, ...]  # roots, in document order
    level: Literal[1, 3] | None  # 1 = nonXMLBody, 3 = structuredBody
    non_xml_media_type: str | None  # e.g. "application/pdf" for an N1
    ins: Ins | None  # a checked INS, None when absent or invalid
    patient_traits: PatientTraits | None
    patient: Patient | None  # only when the caller gave the identity status
    author: Author | None  # the first author; None without a RPPS
    practice_setting: Coded | None  # main serviceEvent performer standardIndustryClassCode
    facility_type: Coded | None  # healthCareFacility code
    service_start: dt.datetime | None
    service_stop: dt.datetime | None
    legal_authenticator: bool
    related_document: str | None  # parentDocument/id/@root of a relatedDocument RPLC
    problems: tuple[str, ...]  # in French; the DMP would refuse the document while non-empty

    @property
    def acceptable(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------------------------ helpers


def _path(path: str) -> str:
    return "/".join(f"h:{step}" for step in path.split("/"))


def _find(element: Any, path: str) -> Any:
    return None if element is None else element.find(_path(path), _NS)


def _findall(element: Any, path: str) -> list[Any]:
    return [] if element is None else list(element.findall(_path(path), _NS))


def _attr(element: Any, name: str) -> str | None:
    if element is None:
        return None
    value = element.get(name)
    text = "" if value is None else str(value).strip()
    return text or None


def _text(element: Any) -> str | None:
    if element is None:
        return None
    text = " ".join(str(element.xpath("string()")).split())  # comments excluded
    return text or None


def _coded(element: Any) -> Coded | None:
    code = _attr(element, "code")
    if code is None:
        return None
    return Coded(code, _attr(element, "displayName") or "", _attr(element, "codeSystem") or "")


def _required_coded(element: Any, what: str, problems: list[str]) -> Coded | None:
    coded = _coded(element)
    if coded is None:
        problems.append(f"{what} : code absent.")
    elif not coded.display or not coded.system:
        problems.append(
            f"{what} : le libellé (displayName) et le système (codeSystem) sont requis."
        )
    return coded


def _time(element: Any, what: str, problems: list[str], *, required: bool) -> dt.datetime | None:
    value = _attr(element, "value")
    if value is None:
        if required:
            problems.append(f"{what} : date absente.")
        return None
    try:
        return parse_hl7_ts(value)
    except ValueError:
        problems.append(
            f"{what} : la date « {value} » n'est pas au format HL7 AAAAMMJJ[hhmm[ss]][+hhmm]."
        )
        return None


# ------------------------------------------------------------------------------ document parts


def _parse(data: bytes, file_name: str) -> Any:
    if len(data) > MAX_CDA_BYTES:
        raise IntakeRejected(
            f"Le fichier {file_name} dépasse {MAX_CDA_BYTES // (1024 * 1024)} Mo, la taille "
            "maximale d'un document CDA : réduisez le PDF ou scindez le document.",
            code="CDA_UNREADABLE",
            event="cda_unreadable",
        )
    try:
        root = parse_xml(data, max_bytes=MAX_CDA_BYTES, huge_text=True)
    except UnsafeXmlError:
        raise IntakeRejected(
            f"Le fichier {file_name} n'est pas un document XML lisible : il est mal formé, ou "
            "contient une déclaration DOCTYPE, refusée par sécurité. Réexportez le document CDA "
            "depuis le logiciel.",
            code="CDA_UNREADABLE",
            event="cda_unreadable",
        ) from None
    if root.tag != _ROOT_TAG:
        raise IntakeRejected(
            f"Le fichier {file_name} n'est pas un document CDA R2 : l'élément racine doit être "
            f"ClinicalDocument dans l'espace de noms {NS_HL7}. Vérifiez le fichier exporté.",
            code="CDA_UNREADABLE",
            event="cda_unreadable",
        )
    return root


def _body(root: Any, problems: list[str]) -> tuple[Literal[1, 3] | None, str | None]:
    non_xml = _find(root, "component/nonXMLBody")
    if non_xml is not None:
        media_type = _attr(_find(non_xml, "text"), "mediaType")
        if media_type is None:
            problems.append("Corps non structuré sans type de contenu (text/@mediaType).")
        return 1, media_type
    if _find(root, "component/structuredBody") is not None:
        return 3, None
    problems.append("Corps du document absent (component/nonXMLBody ou structuredBody).")
    return None, None


def _check_templates(templates: tuple[str, ...], level: int | None, problems: list[str]) -> None:
    if TEMPLATE_HL7_FRANCE not in templates:
        problems.append(f"templateId {TEMPLATE_HL7_FRANCE} (HL7 France) absent.")
    if TEMPLATE_CI_SIS not in templates:
        problems.append(f"templateId {TEMPLATE_CI_SIS} (CI-SIS, structuration minimale) absent.")
    if level == 1 and sorted(templates) != sorted(
        (TEMPLATE_HL7_FRANCE, TEMPLATE_CI_SIS, TEMPLATE_XDS_SD)
    ):
        problems.append(
            "Un document non structuré doit déclarer exactement les trois templateId "
            f"{TEMPLATE_HL7_FRANCE}, {TEMPLATE_CI_SIS} et {TEMPLATE_XDS_SD} (IHE XDS-SD)."
        )
    if level == 3 and not set(templates) - {TEMPLATE_HL7_FRANCE, TEMPLATE_CI_SIS}:
        problems.append("Document structuré sans le templateId de son volet CI-SIS.")


def _unique_id(root: Any, problems: list[str]) -> tuple[str | None, str | None]:
    element = _find(root, "id")
    unique_id, extension = _attr(element, "root"), _attr(element, "extension")
    if unique_id is None:
        problems.append("Identifiant du document (id/@root) absent.")
    elif not _OID.match(unique_id) or len(unique_id) > _MAX_OID_LENGTH:
        problems.append(
            f"L'identifiant du document (id/@root) doit être un OID de {_MAX_OID_LENGTH} "
            f"caractères au plus, pas « {unique_id} »."
        )
    return unique_id, extension


def _version(root: Any, problems: list[str]) -> int | None:
    value = _attr(_find(root, "versionNumber"), "value")
    if value is not None and value.isdigit() and int(value) > 0:
        return int(value)
    problems.append("Numéro de version (versionNumber) absent ou invalide.")
    return None


def _names(person: Any, tag: str) -> list[tuple[str | None, str]]:
    """(qualifier, text) of every `name/<tag>` of a person."""
    found = []
    for element in _findall(person, f"name/{tag}"):
        text = _text(element)
        if text:
            found.append((_attr(element, "qualifier"), text))
    return found


def _traits(ins: Ins, person: Any, problems: list[str]) -> PatientTraits | None:
    families, givens = _names(person, "family"), _names(person, "given")
    birth_family = next((t for q, t in families if q == "BR"), None)
    used_family = next((t for q, t in families if q == "CL"), None)
    listed = " ".join(t for q, t in givens if q is None).split()
    first_br = [t for q, t in givens if q == "BR"]
    given_names = tuple(listed or " ".join(first_br).split())
    sex_code = _attr(_find(person, "administrativeGenderCode"), "code")
    sex = Sex(sex_code) if sex_code in {s.value for s in Sex} else None
    birth = _attr(_find(person, "birthTime"), "value")
    try:
        birth_date = dt.datetime.strptime(birth[:8], "%Y%m%d").date() if birth else None
    except ValueError:
        birth_date = None
    birthplace = _text(_find(person, "birthplace/place/addr/county"))
    missing = [
        label
        for label, absent in (
            ("nom de naissance (family qualifier BR)", birth_family is None),
            ("premier prénom de naissance (given qualifier BR)", not first_br),
            ("prénoms de naissance (given sans qualifier)", not listed),
            ("sexe (administrativeGenderCode F, M ou U)", sex is None),
            ("date de naissance (birthTime AAAAMMJJ)", birth_date is None),
            ("code du lieu de naissance (birthplace/place/addr/county)", birthplace is None),
        )
        if absent
    ]
    if missing:
        problems.append("Traits d'identité INS absents ou invalides : " + ", ".join(missing) + ".")
    if birth_family is None or not given_names or sex is None or birth_date is None:
        return None
    return PatientTraits(
        ins=ins,
        birth_family_name=birth_family,
        given_names=given_names,
        birth_date=birth_date,
        sex=sex,
        used_family_name=used_family,
        birthplace_code=birthplace,
    )


def _patient(root: Any, problems: list[str]) -> tuple[Ins | None, PatientTraits | None]:
    role = _find(root, "recordTarget/patientRole")
    ins_id = next((i for i in _findall(role, "id") if _attr(i, "root") in _INS_ROOTS), None)
    if ins_id is None:
        problems.append(
            "INS du patient absent : recordTarget/patientRole/id doit porter le matricule INS "
            "avec l'OID 1.2.250.1.213.1.4.8 (INS-NIR) ou .9 (INS-NIA) (.10/.11 en test)."
        )
        return None, None
    try:
        ins = parse_ins(_attr(ins_id, "extension") or "", _attr(ins_id, "root") or "")
    except IdentityRejected as exc:
        problems.append(exc.message_fr)
        return None, None
    return ins, _traits(ins, _find(role, "patient"), problems)


def _author(root: Any, sector_code: str, problems: list[str]) -> Author | None:
    author = _find(root, "author")
    assigned = _find(author, "assignedAuthor")
    if assigned is None:
        problems.append("Auteur du document (author/assignedAuthor) absent.")
        return None
    ps_ids = [
        _attr(i, "extension") or ""
        for i in _findall(assigned, "id")
        if _attr(i, "root") == OID_RPPS
    ]
    rpps = next((m.group(1) for m in map(_PS_IDNAT_RPPS.match, ps_ids) if m), None)
    specialty = _required_coded(_find(assigned, "code"), "Spécialité de l'auteur", problems)
    organization = _find(assigned, "representedOrganization")
    structure_id = next(
        (
            _attr(i, "extension")
            for i in _findall(organization, "id")
            if _attr(i, "root") == OID_STRUCTURE
        ),
        None,
    )
    if structure_id is None:
        problems.append(
            "Structure de l'auteur absente : representedOrganization/id avec la racine "
            f"{OID_STRUCTURE} (Struct_IdNat)."
        )
    if rpps is None:
        problems.append(
            "RPPS de l'auteur absent : assignedAuthor/id doit avoir la racine "
            f"{OID_RPPS} et l'extension « 8 » suivie des 11 chiffres du RPPS."
        )
        return None
    profession = _PROFESSION.match(specialty.code) if specialty else None
    name = _find(assigned, "assignedPerson/name")
    return Author(
        rpps=rpps,
        family_name=_text(_find(name, "family")) or "",
        given_name=_text(_find(name, "given")) or "",
        profession_code=profession.group(1) if profession else "",
        specialty_code=specialty.code if specialty else "",
        specialty_display=specialty.display if specialty else "",
        structure_id=structure_id or "",
        structure_name=_text(_find(organization, "name")) or "",
        sector_code=sector_code,
        role_display=_attr(_find(author, "functionCode"), "displayName"),
    )


def _service_event(
    root: Any, problems: list[str]
) -> tuple[dt.datetime | None, dt.datetime | None, Coded | None]:
    # Schematron: the main act is the first documentationOf; it needs effectiveTime and performer.
    event = _find(root, "documentationOf/serviceEvent")
    if event is None:
        problems.append("Acte principal (documentationOf/serviceEvent) absent.")
        return None, None, None
    period = _find(event, "effectiveTime")
    low = _find(period, "low")
    start = _time(
        period if low is None else low,
        "Début de l'acte (serviceEvent/effectiveTime/low)",
        problems,
        required=True,
    )
    stop = _time(
        _find(period, "high"), "Fin de l'acte (effectiveTime/high)", problems, required=False
    )
    organization = _find(event, "performer/assignedEntity/representedOrganization")
    setting = _required_coded(
        _find(organization, "standardIndustryClassCode"),
        "Cadre d'exercice (performer/…/standardIndustryClassCode)",
        problems,
    )
    return start, stop, setting


def _legal_authenticator(root: Any, problems: list[str]) -> bool:
    element = _find(root, "legalAuthenticator")
    if element is None:
        problems.append("Responsable du document (legalAuthenticator) absent.")
        return False
    if _attr(_find(element, "signatureCode"), "code") != "S":
        problems.append("legalAuthenticator sans signatureCode « S ».")
    return True


def _related_document(root: Any) -> str | None:
    for related in _findall(root, "relatedDocument"):
        if _attr(related, "typeCode") == "RPLC":
            return _attr(_find(related, "parentDocument/id"), "root")
    return None


def _document_codes(
    root: Any, problems: list[str]
) -> tuple[Coded | None, Coded | None, str | None]:
    type_code = _required_coded(_find(root, "code"), "Type de document (code)", problems)
    confidentiality = _required_coded(
        _find(root, "confidentialityCode"), "Confidentialité (confidentialityCode)", problems
    )
    if confidentiality and confidentiality.code not in _CONFIDENTIALITY:
        problems.append("Confidentialité (confidentialityCode) : N, R ou V attendu.")
    language = _attr(_find(root, "languageCode"), "code")
    if language is None or not _LANGUAGE.match(language):
        problems.append("Langue du document (languageCode) absente ou invalide : fr-FR attendu.")
    return type_code, confidentiality, language


def _check_presence(root: Any, problems: list[str]) -> None:
    for path, message in (
        ("title", "Titre du document (title) absent."),
        ("setId", "Identifiant du lot de versions (setId) absent."),
        ("custodian/assignedCustodian", "Organisation conservant le document (custodian) absente."),
        ("componentOf/encompassingEncounter", "Prise en charge (componentOf) absente."),
    ):
        element = _find(root, path)
        if (
            element is None
            or (path == "title" and _text(element) is None)
            or (path == "setId" and _attr(element, "root") is None)
        ):
            problems.append(message)


# ---------------------------------------------------------------------------------- entry point


def read_cda_header(
    data: bytes, *, file_name: str, identity_status: IdentityStatus | None = None
) -> CdaHeader:
    """Read a received CDA's header; raise IntakeRejected only when it is not a CDA at all."""
    root = _parse(data, file_name)
    problems: list[str] = []
    level, media_type = _body(root, problems)
    templates = tuple(
        r for r in (_attr(t, "root") for t in _findall(root, "templateId")) if r is not None
    )
    _check_templates(templates, level, problems)
    unique_id, extension = _unique_id(root, problems)
    type_code, confidentiality, language = _document_codes(root, problems)
    _check_presence(root, problems)
    effective_time = _time(
        _find(root, "effectiveTime"), "Date du document (effectiveTime)", problems, required=True
    )
    ins, traits = _patient(root, problems)
    facility = _required_coded(
        _find(root, "componentOf/encompassingEncounter/location/healthCareFacility/code"),
        "Type de structure (healthCareFacility/code)",
        problems,
    )
    start, stop, setting = _service_event(root, problems)
    return CdaHeader(
        unique_id=unique_id,
        unique_id_extension=extension,
        set_id=_attr(_find(root, "setId"), "root"),
        version=_version(root, problems),
        title=_text(_find(root, "title")),
        effective_time=effective_time,
        type_code=type_code,
        confidentiality=confidentiality,
        language=language,
        template_ids=templates,
        level=level,
        non_xml_media_type=media_type,
        ins=ins,
        patient_traits=traits,
        patient=traits.with_status(identity_status) if traits and identity_status else None,
        author=_author(root, facility.code if facility else "", problems),
        practice_setting=setting,
        facility_type=facility,
        service_start=start,
        service_stop=stop,
        legal_authenticator=_legal_authenticator(root, problems),
        related_document=_related_document(root),
        problems=tuple(problems),
    )
