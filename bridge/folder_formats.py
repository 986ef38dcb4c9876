"""Which format a file dropped in an export folder is, and what the queue gets from it.

Every format ends as what the PDF + JSON pair already gives (`FolderDocument`): the payload (a
PDF, wrapped in a CDA N1 by the dispatcher, or a CDA sent as it is: bridge.cda_passthrough, or
the text of an HPRIM Net letter that comes without PDF, wrapped in an N1 as a text/plain body:
sidecar `document.body_format` "text") and a sidecar in the bridge.sidecar format, checked by
`parse_sidecar` and the feeding matrix like any pair. Formats and where their metadata comes
from:

| format | files | patient | author | kind |
|---|---|---|---|---|
| HL7 v2 | `.hl7`, `.er7` (`.txt` starting with MSH) | PID (as over MLLP) | PRT SB | OBX-3 / TXA-2 |
| CDA R2 N1/N3 | `.xml` | recordTarget; status: the folder's profile | author | code |
| IHE XDM | `.zip` (METADATA.XML + CDA documents) | each CDA | each CDA | each CDA |
| HPRIM Santé 2.x | `.hpr`… + the PDF an OBX FIC names (or same name) | P | profile | profile |
| HPRIM Net | `.hpm`, `.hpr`… + `NAME.pdf`, or alone (text) | 12-line header | profile | profile |

HL7 v2 has no field for the author's activity sector (SA07, SA08, SA33 officine…): for a `.hl7`
file it is the embedded CDA's, else the folder profile's `author.sector` when the profile gives
one, else `hl7_author_sector` (the installation's `[mllp] author_sector`), so that the same
message gives the same document as a file or over MLLP.

A CDA does not carry the identity status and HPRIM carries neither INS status nor birthplace:
the status is never guessed. A folder's profile may say that its software writes the INS in a
CDA only for a qualified identity (`cda_identity_qualified`); HPRIM files lacking an INS trait
are refused with the list of what is missing. The file name gives identity traits only when the
profile allows it (`identity_from_filename` with its pattern).

Pure: bytes in, values out; a refusal is a BridgeError with the French reason for error/.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePath
from typing import Any

from bridge.cda import check_text_body
from bridge.cda_header import CdaHeader, read_cda_header
from bridge.cda_passthrough import passthrough_codes, passthrough_document
from bridge.classify import find_row, resolve
from bridge.domain import InsOid
from bridge.errors import BridgeError, IntakeRejected
from bridge.hl7_time import PARIS
from bridge.hl7v2 import Action, HL7Rejected, parse_message
from bridge.hl7v2.mllp import DEFAULT_MAX_FRAME
from bridge.hl7v2.people import DEFAULT_SECTOR
from bridge.hprim import (
    HprimNetLetter,
    HprimSanteFile,
    looks_like_hprim_sante,
    parse_hprim_net,
    parse_hprim_sante,
)
from bridge.pdf import check_pdf
from bridge.sidecar import BodyFormat, DocumentRequest, parse_sidecar
from bridge.xdm import read_xdm
from mappings.matrix import Matrix


class FolderFormat(StrEnum):
    """The formats a folder takes (the values are the names used in the configuration)."""

    PAIR = "pdf+json"
    HL7 = "hl7"
    CDA = "cda"
    XDM = "xdm"
    HPRIM_SANTE = "hprim-sante"
    HPRIM_NET = "hprim-net"


HL7_SUFFIXES = frozenset({".hl7", ".er7"})
HPRIM_SUFFIXES = frozenset({".hpr", ".hpm", ".hpm1", ".hpm2", ".hpm3", ".hprim", ".hps"})
TEXT_SUFFIXES = frozenset({".txt"})
PRIMARY_SUFFIXES = HL7_SUFFIXES | HPRIM_SUFFIXES | TEXT_SUFFIXES | {".xml", ".zip"}
# What a lab report is when the profile does not say: « CR d'examens biologiques » (LOINC).
LAB_REPORT_KIND = "11502-2"
_INS_CANDIDATE = re.compile(r"^[0-9][0-9AB][0-9]{13}$")
_INS_OIDS = frozenset(oid.value for oid in InsOid)
_BY_SUFFIX = {".hl7": FolderFormat.HL7, ".er7": FolderFormat.HL7, ".xml": FolderFormat.CDA,
              ".zip": FolderFormat.XDM}
_FILENAME_GROUPS = frozenset({"ins", "nom", "prenom", "naissance", "sexe", "lieu"})


@dataclass(frozen=True)
class FolderProfile:
    """What a folder's configuration adds to the files dropped in it ([[intake.profiles]])."""

    author: Mapping[str, Any] | None = None  # the sidecar's "author" object
    kind: str | None = None  # default document kind (label, matrix row or typeCode)
    expected_format: FolderFormat | None = None
    cda_identity_qualified: bool = False  # the software writes an INS only when qualified
    identity_from_filename: bool = False
    filename_pattern: str | None = None  # regex with named groups (see FILENAME_GROUPS)
    # The author's activity sector of HL7 files when neither their CDA nor `author` gives one.
    hl7_author_sector: str = DEFAULT_SECTOR

    def hl7_sector(self) -> str:
        """The activity sector an HL7 file's author gets (its embedded CDA's sector wins)."""
        given = self.author.get("sector") if self.author is not None else None
        return given if isinstance(given, str) and given else self.hl7_author_sector


@dataclass(frozen=True)
class FolderDocument:
    """One document for the queue: the same two things a PDF + JSON pair gives."""

    payload: bytes = field(repr=False)  # a PDF, a CDA sent as it is, or a UTF-8 text
    metadata: bytes = field(repr=False)  # the sidecar JSON (bridge.sidecar format)
    request: DocumentRequest = field(repr=False)
    label: str  # which part of the file set (file or archive member name); no health data


def check_filename_pattern(pattern: str) -> str | None:
    """Why a file-name identity pattern cannot be used (French), or None."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"expression régulière invalide ({exc})"
    unknown = set(compiled.groupindex) - _FILENAME_GROUPS
    if unknown:
        return ("groupes inconnus : " + ", ".join(sorted(unknown)) + " (permis : "
                + ", ".join(sorted(_FILENAME_GROUPS)) + ")")
    if not compiled.groupindex:
        return "aucun groupe nommé, par exemple (?P<nom>[A-Z]+)_(?P<prenom>[A-Z]+)"
    return None


def primary_format(name: str, head: bytes) -> FolderFormat | None:
    """The format of a file that starts a file set, from its name and first bytes; None for a
    file that only comes with another (a PDF, a JSON sidecar) or is unknown."""
    suffix = PurePath(name).suffix.lower()
    if suffix in HPRIM_SUFFIXES | TEXT_SUFFIXES:
        if head[:64].removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"MSH"):
            return FolderFormat.HL7
        return FolderFormat.HPRIM_SANTE if looks_like_hprim_sante(head) else \
            FolderFormat.HPRIM_NET
    return _BY_SUFFIX.get(suffix)


def companion_names(fmt: FolderFormat, name: str, data: bytes) -> tuple[tuple[str, ...], bool]:
    """(files this one needs next to it, whether its own-name PDF goes with it).

    An HPRIM Santé file names its PDF in an OBX of type FIC; an unreadable file needs nothing
    (`read_file_set` then says why it is refused)."""
    if fmt is FolderFormat.HPRIM_SANTE:
        try:
            return parse_hprim_sante(data, file_name=name).files, True
        except BridgeError:
            return (), True
    return (), fmt is FolderFormat.HPRIM_NET


# ----------------------------------------------------------------------------------- sidecars

def _refuse(message: str, code: str) -> IntakeRejected:
    return IntakeRejected(message, code=code, event=code.lower())


def _checked(sidecar: dict[str, Any], *, file_name: str, matrix: Matrix | None,
             kind_where: str) -> tuple[bytes, DocumentRequest]:
    """The sidecar JSON and its request, through the same checks as a dropped pair."""
    metadata = json.dumps(sidecar, ensure_ascii=False, indent=1).encode("utf-8")
    request = parse_sidecar(metadata, file_name=file_name)
    if matrix is not None:
        try:
            find_row(matrix, request.author, request.kind)
        except BridgeError as exc:
            raise _refuse(f"{exc.message_fr} (type lu : {kind_where}, fichier {file_name})",
                          exc.code) from None
    return metadata, request


_TRAIT_LABELS_FR = {
    "ins": "l'INS (matricule de 15 caractères)",
    "identity_status": "le statut de l'identité (qualifiée)",
    "birth_family_name": "le nom de naissance",
    "given_names": "les prénoms",
    "birth_date": "la date de naissance",
    "sex": "le sexe",
    "birthplace_code": "le code du lieu de naissance",
}


def _require_identity(patient: dict[str, Any], *, file_name: str, what: str) -> None:
    missing = [label for key, label in _TRAIT_LABELS_FR.items() if not patient.get(key)]
    if missing:
        raise _refuse(
            f"Le fichier {file_name} ({what}) ne porte pas l'identité INS complète du patient, "
            f"nécessaire au DMP : il manque {', '.join(missing)}. Le format {what} ne transmet "
            "pas ces traits : envoyez ce document avec sa fiche JSON (NOM.pdf + NOM.json) ou "
            "par un message HL7 (profil ANS, statut en PID-32). Rien n'a été envoyé au DMP.",
            "IDENTITY_INCOMPLETE")


def _profile_author(profile: FolderProfile, *, file_name: str, what: str) -> dict[str, Any]:
    if profile.author is None:
        raise _refuse(
            f"Le fichier {file_name} ({what}) ne dit pas quel professionnel (RPPS) est l'auteur "
            "du document : déclarez l'auteur par défaut de ce dossier dans la configuration "
            "([[intake.profiles]] avec folder et author = { rpps = …, … }), puis déposez-le de "
            "nouveau.", "AUTHOR_MISSING")
    return dict(profile.author)


def _filename_traits(stem: str, profile: FolderProfile) -> dict[str, Any]:
    """Identity traits from the file name, only where the folder's profile allows it."""
    if not profile.identity_from_filename or not profile.filename_pattern:
        return {}
    match = re.fullmatch(profile.filename_pattern, stem)
    if match is None:
        return {}
    groups = {k: v for k, v in match.groupdict().items() if v}
    traits: dict[str, Any] = {}
    if "ins" in groups and _INS_CANDIDATE.match(groups["ins"]):
        traits["ins"] = groups["ins"]
    if "nom" in groups:
        traits["birth_family_name"] = groups["nom"].replace("_", " ").strip()
    if "prenom" in groups:
        traits["given_names"] = groups["prenom"].replace("_", " ").split()
    if "naissance" in groups:
        for fmt in ("%Y%m%d", "%d%m%Y", "%Y-%m-%d", "%d-%m-%Y"):
            try:
                traits["birth_date"] = dt.datetime.strptime(groups["naissance"], fmt).date(
                    ).isoformat()
                break
            except ValueError:
                continue
    if groups.get("sexe", "").upper() in {"F", "M"}:
        traits["sex"] = groups["sexe"].upper()
    if "lieu" in groups:
        traits["birthplace_code"] = groups["lieu"]
    return traits


def _aware(when: dt.datetime | dt.date | None) -> str | None:
    if when is None:
        return None
    if not isinstance(when, dt.datetime):
        when = dt.datetime(when.year, when.month, when.day)
    return when.replace(tzinfo=PARIS).isoformat() if when.tzinfo is None else when.isoformat()


# -------------------------------------------------------------------------------- HL7 and CDA

def _from_hl7(name: str, data: bytes, profile: FolderProfile,
              matrix: Matrix | None) -> list[FolderDocument]:
    if len(data) > DEFAULT_MAX_FRAME:  # what one MLLP frame may hold: the largest document
        raise _refuse(f"Le fichier {name} dépasse {DEFAULT_MAX_FRAME // 2**20} Mo : ce n'est pas "
                      "un message HL7 ordinaire. Vérifiez l'export du logiciel.", "HL7_TOO_LARGE")
    try:
        document = parse_message(data, matrix=matrix, author_sector=profile.hl7_sector())
    except HL7Rejected as exc:
        raise _refuse(f"Le message HL7 {name} est refusé : {exc.message_fr}",
                      f"HL7_{int(exc.error)}") from None
    if document.action is not Action.INITIAL:
        what = "remplacement" if document.action is Action.REPLACE else "suppression"
        raise _refuse(f"La demande de {what} d'un document ({name}) n'est pas encore prise en "
                      "charge par dmp-bridge : faites-la depuis le DMP.", "HL7_ACTION")
    assert document.request is not None  # parse_message validated the sidecar
    return [FolderDocument(document.content, document.sidecar_json, document.request, name)]


def _cda_author(header: CdaHeader) -> dict[str, Any] | None:
    a = header.author
    if a is None:
        return None
    author: dict[str, Any] = {
        "rpps": a.rpps, "family_name": a.family_name, "given_name": a.given_name,
        "profession": a.profession_code, "specialty": a.specialty_code,
        "structure_id": a.structure_id, "structure_name": a.structure_name}
    if a.sector_code:
        author["sector"] = a.sector_code
    return author


def cda_sidecar(header: CdaHeader, *, file_name: str, qualified: bool) -> dict[str, Any]:
    """The sidecar of a CDA dropped alone: everything from its header, the status from the
    folder's profile (a CDA does not carry it)."""
    traits = header.patient_traits
    author = _cda_author(header)
    if traits is None or author is None or header.type_code is None:
        problems = " ; ".join(header.problems) or "patient, auteur ou type absent"
        raise _refuse(f"Le document CDA {file_name} est incomplet : {problems}. Corrigez-le "
                      "dans le logiciel qui l'a produit.", "CDA_NOT_ACCEPTABLE")
    if not qualified:
        raise _refuse(
            f"Le document CDA {file_name} ne dit pas si l'identité du patient est qualifiée (un "
            "CDA ne porte pas ce statut) : dmp-bridge ne le suppose pas. Si le logiciel "
            "n'écrit l'INS dans un CDA que pour une identité qualifiée, indiquez-le pour ce "
            "dossier dans la configuration ([[intake.profiles]] cda_identity_qualified = true) ; "
            "sinon, envoyez le document par HL7 (statut en PID-32).", "CDA_IDENTITY_STATUS")
    patient = {
        "ins": traits.ins.matricule, "ins_oid": traits.ins.oid.value, "identity_status": "QUAL",
        "birth_family_name": traits.birth_family_name, "given_names": list(traits.given_names),
        "used_family_name": traits.used_family_name, "birth_date": traits.birth_date.isoformat(),
        "sex": traits.sex.value, "birthplace_code": traits.birthplace_code}
    document = {"kind": header.type_code.code,
                "title": " ".join((header.title or header.type_code.display).split())[:200],
                "date": _aware(header.effective_time)}
    return {"patient": patient, "document": document, "author": author}


def _from_cda(name: str, data: bytes, profile: FolderProfile,
              matrix: Matrix | None) -> FolderDocument:
    header = read_cda_header(data, file_name=name)
    sidecar = cda_sidecar(header, file_name=name, qualified=profile.cda_identity_qualified)
    metadata, request = _checked(sidecar, file_name=name, matrix=matrix,
                                 kind_where=f"code {sidecar['document']['kind']}")
    if matrix is not None:
        # What the dispatcher will check before sending it as it is, said now, in error/.
        resolution = resolve(matrix, request.author, kind=request.kind,
                             is_pdf=header.level == 1)
        passthrough_document(request, header, passthrough_codes(header, resolution))
    elif header.problems:
        raise _refuse(f"Le document CDA {name} serait refusé par le DMP : "
                      + " ; ".join(header.problems) + ".", "CDA_NOT_ACCEPTABLE")
    return FolderDocument(data, metadata, request, name)


def _from_xdm(name: str, data: bytes, profile: FolderProfile,
              matrix: Matrix | None) -> list[FolderDocument]:
    package = read_xdm(data, file_name=name)
    documents = []
    for member in package.documents:
        where = f"{name} › {member.path}"
        if member.mime_type.lower() not in {"text/xml", "application/xml"}:
            raise _refuse(
                f"L'archive XDM {name} contient un document {member.path} de type "
                f"« {member.mime_type or 'inconnu'} » : seuls les documents CDA R2 (text/xml) "
                "sont envoyés au DMP depuis une archive XDM.", "XDM_DOCUMENT_UNSUPPORTED")
        document = _from_cda(where, member.data, profile, matrix)
        documents.append(FolderDocument(document.payload, document.metadata,
                                        document.request, member.path))
    return documents


# -------------------------------------------------------------------------------------- HPRIM

def _one_pdf(name: str, wanted: tuple[str, ...], own_pdf: str | None,
             companions: Mapping[str, bytes], what: str) -> tuple[str, bytes] | None:
    if len(wanted) > 1:
        raise _refuse(f"Le fichier {name} ({what}) désigne {len(wanted)} PDF : dmp-bridge envoie "
                      "un document par fichier HPRIM. Exportez un fichier par compte rendu.",
                      "HPRIM_SEVERAL_FILES")
    target = wanted[0] if wanted else own_pdf
    if target is None:
        return None
    found = {k.lower(): (k, v) for k, v in companions.items()}.get(target.lower())
    if found is None:
        if wanted:
            raise _refuse(f"Le PDF {target} désigné par {name} (OBX de type FIC) est absent du "
                          "dossier : déposez-le à côté du fichier HPRIM.", "HPRIM_PDF_MISSING")
        return None
    check_pdf(found[1], file_name=found[0])
    return found


def _sante_sidecar(name: str, parsed: HprimSanteFile, profile: FolderProfile) -> dict[str, Any]:
    what = "HPRIM Santé"
    if parsed.message_type and parsed.message_type != "ORU":
        raise _refuse(f"Le fichier {name} est un message HPRIM {parsed.message_type} (H-7), pas "
                      "un résultat (ORU) : il ne contient pas de document pour le DMP.",
                      "HPRIM_NOT_RESULTS")
    if len(parsed.patients) != 1:
        count = "aucun patient (P)" if not parsed.patients else \
            f"{len(parsed.patients)} patients"
        raise _refuse(f"Le fichier {name} ({what}) contient {count} : dmp-bridge attend un "
                      "compte rendu pour un seul patient par fichier.", "HPRIM_PATIENTS")
    p = parsed.patients[0]
    patient: dict[str, Any] = {
        "birth_family_name": p.birth_name or p.family_name,
        "given_names": list(p.given_names),
        "used_family_name": p.family_name if p.birth_name and p.birth_name != p.family_name
        else None,
        "birth_date": p.birth_date.isoformat() if p.birth_date else None,
        "sex": p.sex,
    }
    if _INS_CANDIDATE.match(p.third_id) and (not p.third_id_authority
                                             or p.third_id_authority in _INS_OIDS):
        patient["ins"] = p.third_id
        patient["ins_oid"] = p.third_id_authority or InsOid.NIR.value
    patient.update(_filename_traits(PurePath(name).stem, profile))
    _require_identity(patient, file_name=name, what=what)
    author = _profile_author(profile, file_name=name, what=what)
    when = parsed.collected or parsed.created
    title = "Compte rendu d'examens biologiques" + (f" du {when:%d/%m/%Y}" if when else "")
    return {"patient": patient, "author": author,
            "document": {"kind": profile.kind or LAB_REPORT_KIND, "title": title,
                         "date": _aware(when)}}


def _net_sidecar(name: str, letter: HprimNetLetter, profile: FolderProfile) -> dict[str, Any]:
    what = "HPRIM Net"
    # Line 8 is the NIR of the insured person, not the patient's INS: never used as one.
    patient: dict[str, Any] = {
        "birth_family_name": letter.family_name,
        "given_names": letter.given_name.split(),
        "birth_date": letter.birth_date.isoformat() if letter.birth_date else None,
    }
    patient.update(_filename_traits(PurePath(name).stem, profile))
    _require_identity(patient, file_name=name, what=what)
    author = _profile_author(profile, file_name=name, what=what)
    when = letter.exam_date
    title = "Compte rendu d'examens biologiques" + (f" du {when:%d/%m/%Y}" if when else "")
    return {"patient": patient, "author": author,
            "document": {"kind": profile.kind or LAB_REPORT_KIND, "title": title,
                         "date": _aware(when)}}


@dataclass(frozen=True)
class LetterBody:
    """What an HPRIM Net letter sends: the PDF of the same name, else the letter's own text."""

    body_format: BodyFormat
    payload: bytes = field(repr=False)
    label: str  # the PDF's file name, or the letter's


def _letter_text(name: str, letter: HprimNetLetter) -> LetterBody:
    """The letter's own text as its body (no PDF came with it)."""
    if not letter.text_only:
        raise _refuse(
            f"Le fichier {name} contient des résultats codés ({len(letter.results)} ligne(s) "
            "RES) sans le PDF du compte rendu : son texte seul ne les montrerait pas. Déposez "
            f"le compte rendu en PDF à côté ({PurePath(name).stem}.pdf).",
            "HPRIM_RESULTS_NEED_PDF")
    payload = letter.text_body()
    check_text_body(payload, file_name=name)
    return LetterBody("text", payload, name)


def hprim_net_body(name: str, letter: HprimNetLetter,
                   companions: Mapping[str, bytes]) -> LetterBody:
    """The body of the letter `name`; a BridgeError (French reason) when it has none to send.

    A letter without PDF goes as its text (UTF-8, text/plain), unless it carries coded results:
    its text alone would leave them out, so the PDF of the report is asked for."""
    pdf = _one_pdf(name, (), f"{PurePath(name).stem}.pdf", companions, "HPRIM Net")
    return LetterBody("pdf", pdf[1], pdf[0]) if pdf is not None else _letter_text(name, letter)


def _from_hprim(fmt: FolderFormat, name: str, data: bytes, companions: Mapping[str, bytes], *,
                profile: FolderProfile, matrix: Matrix | None) -> FolderDocument:
    own_pdf = f"{PurePath(name).stem}.pdf"
    if fmt is FolderFormat.HPRIM_SANTE:
        parsed = parse_hprim_sante(data, file_name=name)
        pdf = _one_pdf(name, parsed.files, own_pdf, companions, "HPRIM Santé")
        sidecar = _sante_sidecar(name, parsed, profile)
        if pdf is None:
            raise _refuse(
                f"Le fichier {name} est un résultat HPRIM Santé sans PDF : ses résultats codés "
                "seuls ne font pas un document lisible dans le DMP. Déposez le compte rendu en "
                f"PDF à côté ({own_pdf}).", "HPRIM_TEXT_ONLY")
        body = LetterBody("pdf", pdf[1], pdf[0])
    else:
        letter = parse_hprim_net(data, file_name=name)
        pdf = _one_pdf(name, (), own_pdf, companions, "HPRIM Net")
        # The identity first: HPRIM carries no identity status, so every letter stops there
        # today, whatever its body.
        sidecar = _net_sidecar(name, letter, profile)
        body = LetterBody("pdf", pdf[1], pdf[0]) if pdf is not None else _letter_text(name, letter)
    if body.body_format != "pdf":
        sidecar["document"]["body_format"] = body.body_format
    metadata, request = _checked(sidecar, file_name=name, matrix=matrix,
                                 kind_where=f"« {sidecar['document']['kind']} »")
    return FolderDocument(body.payload, metadata, request, body.label)


# ---------------------------------------------------------------------------------- the entry

def read_file_set(fmt: FolderFormat, name: str, data: bytes, companions: Mapping[str, bytes],
                  *, profile: FolderProfile, matrix: Matrix | None) -> list[FolderDocument]:
    """The documents a dropped file (and the files it needs) carries; a BridgeError with the
    French reason when it cannot go. All or nothing: one bad document refuses the set."""
    if profile.expected_format is not None and fmt is not profile.expected_format:
        raise _refuse(
            f"Le fichier {name} est au format {fmt.value}, alors que ce dossier n'attend que le "
            f"format {profile.expected_format.value} (configuration [[intake.profiles]]) : "
            "déposez-le dans le bon dossier.", "FORMAT_UNEXPECTED")
    if fmt is FolderFormat.HL7:
        return _from_hl7(name, data, profile, matrix)
    if fmt is FolderFormat.CDA:
        return [_from_cda(name, data, profile, matrix)]
    if fmt is FolderFormat.XDM:
        return _from_xdm(name, data, profile, matrix)
    if fmt in (FolderFormat.HPRIM_SANTE, FolderFormat.HPRIM_NET):
        return [_from_hprim(fmt, name, data, companions, profile=profile, matrix=matrix)]
    raise _refuse(f"Le fichier {name} n'est pas d'un format pris en charge.", "FILE_UNSUPPORTED")
