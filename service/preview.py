"""`dmp-bridge preview PATH`: what would be sent for this input, and why — nothing is sent.

For a PDF + sidecar pair, a CDA file, an HL7 v2 message file, an IHE XDM archive and HPRIM
files (Santé with the PDF it names, Net with the PDF of the same name or, without one, its own
text as a text/plain body): every metadata field,
the matrix row and the value-set entries that chose it, and the reason it would be held or
refused, if any. The folder's profile ([[intake.profiles]]) is applied as the intake applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.cda import MAX_TEXT_BYTES, body_media_type, check_text_body
from bridge.cda_header import read_cda_header
from bridge.classify import FORMAT_TEXT, Resolution, resolve
from bridge.domain import Author, DocumentCodes, IdentityStatus, Patient
from bridge.errors import BridgeError
from bridge.folder_formats import (
    FolderDocument,
    FolderFormat,
    FolderProfile,
    companion_names,
    hprim_net_body,
    primary_format,
    read_file_set,
)
from bridge.hl7v2.errors import HL7Rejected
from bridge.hl7v2.message import parse_message
from bridge.hl7v2.people import DEFAULT_SECTOR
from bridge.hprim import parse_hprim_net
from bridge.identity_gate import Target, check_identity
from bridge.pdf import check_pdf
from bridge.sidecar import DocumentRequest, parse_sidecar
from mappings.matrix import Matrix
from service.config import BridgeConfig, IntakeProfileSection


@dataclass(frozen=True)
class Preview:
    """The text shown to the user and the verdict."""

    text: str
    verdict: str  # "envoyé", "en attente", "refusé"


def _codes_lines(codes: DocumentCodes) -> list[str]:
    lines = [
        f"  typeCode            {codes.type_code.code} « {codes.type_code.display} » "
        f"({codes.type_code.system})",
        f"  classCode           {codes.class_code.code} « {codes.class_code.display} »",
        f"  formatCode          {codes.format_code.code}",
        f"  practiceSetting     {codes.practice_setting.code} « {codes.practice_setting.display} »",
        f"  healthcareFacility  {codes.facility_type.code} « {codes.facility_type.display} »",
        f"  confidentialité     {codes.confidentiality.code}"
        + "".join(f", {flag.code}" for flag in codes.visibility),
    ]
    if codes.event_codes:
        lines.append("  eventCodes          " + ", ".join(e.code for e in codes.event_codes))
    return lines


def _people_lines(patient: Patient | None, author: Author | None) -> list[str]:
    lines = []
    if patient is not None:
        lines.append(f"  patient             INS {patient.ins.matricule} "
                     f"({patient.ins.oid.name}), identité {patient.identity_status.value}")
    if author is not None:
        lines.append(f"  auteur              RPPS {author.rpps}, profession "
                     f"{author.profession_code}, spécialité {author.specialty_code}")
        lines.append(f"  structure           {author.structure_id} « {author.structure_name} », "
                     f"secteur {author.sector_code}")
    return lines


def _verdict(lines: list[str], resolution: Resolution | None, blocked: list[str]) -> Preview:
    if resolution is not None:
        lines.append("Pourquoi ces codes :")
        lines += [f"  - {line}" for line in resolution.trace]
    holds = [h.message_fr for h in resolution.holds] if resolution is not None else []
    if blocked:
        lines.append("Verdict : REFUSÉ — " + " ".join(blocked))
        verdict = "refusé"
    elif holds:
        lines.append("Verdict : EN ATTENTE — " + " ".join(holds))
        verdict = "en attente"
    else:
        lines.append("Verdict : serait envoyé au DMP.")
        verdict = "envoyé"
    lines.append("(Aperçu seulement : rien n'a été envoyé.)")
    return Preview("\n".join(lines), verdict)


def _judge_request(request: DocumentRequest, matrix: Matrix, target: Target,
                   lines: list[str], blocked: list[str], *,
                   is_pdf: bool = True) -> Resolution | None:
    """Title, people, identity gate and matrix for a parsed request (sidecar or HL7)."""
    lines += [f"  titre               {request.title}", f"  date                {request.date}"]
    lines += _people_lines(request.patient, request.author)
    try:
        check_identity(request.patient, target=target)
    except BridgeError as exc:
        blocked.append(exc.message_fr)
    try:
        resolution = resolve(matrix, request.author, kind=request.kind, is_pdf=is_pdf,
                             source_confirm=request.confirm_with_patient,
                             source_visibility=request.visibility,
                             text_body=request.body_format == "text")
    except BridgeError as exc:
        blocked.append(exc.message_fr)
        return None
    lines += _codes_lines(resolution.codes)
    lines.append(f"  classeur            {resolution.classeur}")
    return resolution


def preview_pair(path: Path, matrix: Matrix, target: Target) -> Preview:
    """A PDF and its sidecar (either file may be named)."""
    pdf_path, sidecar_path = path.with_suffix(".pdf"), path.with_suffix(".json")
    lines = [f"Aperçu de {pdf_path.name} + {sidecar_path.name}"]
    blocked: list[str] = []
    try:
        payload = pdf_path.read_bytes()
        request = parse_sidecar(sidecar_path.read_bytes(), file_name=sidecar_path.name)
        if request.body_format == "text":  # as the dispatcher checks it
            check_text_body(payload, file_name=pdf_path.name)
        else:
            check_pdf(payload, file_name=pdf_path.name)
    except OSError as exc:
        return _verdict(lines, None, [f"Fichier illisible : {exc.strerror} ({exc.filename})."])
    except BridgeError as exc:
        return _verdict(lines, None, [exc.message_fr])
    resolution = _judge_request(request, matrix, target, lines, blocked)
    return _verdict(lines, resolution, blocked)


def preview_cda(path: Path, matrix: Matrix, target: Target) -> Preview:
    """A CDA R2 document passed through as it is (N1 or N3)."""
    lines = [f"Aperçu du document CDA {path.name}"]
    try:
        header = read_cda_header(path.read_bytes(), file_name=path.name)
    except OSError as exc:
        return _verdict(lines, None, [f"Fichier illisible : {exc.strerror} ({exc.filename})."])
    except BridgeError as exc:
        return _verdict(lines, None, [exc.message_fr])
    lines += [f"  identifiant         {header.unique_id}",
              f"  titre               {header.title}",
              f"  date                {header.effective_time}",
              f"  niveau CDA          {header.level}"]
    blocked = list(header.problems)
    patient = None
    if header.patient_traits is not None:
        # A CDA does not carry the identity status: the software that sends it must say QUAL
        # (HL7 PID-32, sidecar); the preview assumes it did and says so.
        patient = header.patient_traits.with_status(IdentityStatus.QUAL)
        lines.append("  (statut d'identité absent d'un CDA : supposé QUAL, à fournir par le "
                     "logiciel avec le document)")
        try:
            check_identity(patient, target=target)
        except BridgeError as exc:
            blocked.append(exc.message_fr)
    lines += _people_lines(patient, header.author)
    resolution = None
    if header.author is not None and header.type_code is not None:
        try:
            resolution = resolve(matrix, header.author, kind=header.type_code.code,
                                 is_pdf=header.level == 1)
            lines += _codes_lines(resolution.codes)
            lines.append(f"  classeur            {resolution.classeur}")
        except BridgeError as exc:
            blocked.append(exc.message_fr)
    return _verdict(lines, resolution, blocked)


def preview_hl7(path: Path, matrix: Matrix, target: Target,
                profile: FolderProfile | None = None) -> Preview:
    """An HL7 v2 message file (.hl7, .er7), as the MLLP channel would read it."""
    lines = [f"Aperçu du message HL7 v2 {path.name}"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _verdict(lines, None, [f"Fichier illisible : {exc.strerror} ({exc.filename})."])
    try:
        document = parse_message(data, matrix=matrix,
                                 author_sector=(profile or FolderProfile()).hl7_sector())
    except HL7Rejected as exc:
        ack = "AR" if exc.resend else "AE"
        return _verdict(lines, None, [f"{exc.message_fr} (accusé {ack}, code {int(exc.error)})"])
    request = document.request
    lines.append(f"  message             {document.header.message_type}^"
                 f"{document.header.trigger_event}, contenu {document.kind.upper()}")
    if document.flags:
        lines.append("  indicateurs         " + ", ".join(
            f"{name}={'Y' if on else 'N'}" for name, on in sorted(document.flags.items())))
    blocked: list[str] = []
    resolution = None
    if request is not None:
        # A CDA travels as it is (bridge.cda_passthrough): judged like the dispatcher does.
        resolution = _judge_request(request, matrix, target, lines, blocked,
                                    is_pdf=document.kind == "pdf")
    return _verdict(lines, resolution, blocked)


_FORMAT_FR = {
    FolderFormat.XDM: "archive IHE XDM",
    FolderFormat.HPRIM_SANTE: "fichier HPRIM Santé",
    FolderFormat.HPRIM_NET: "lettre HPRIM Net",
    FolderFormat.HL7: "message HL7 v2",
    FolderFormat.CDA: "document CDA",
}


def folder_profile(section: IntakeProfileSection,
                   hl7_author_sector: str = DEFAULT_SECTOR) -> FolderProfile:
    """The core's view of a folder's profile (`hl7_author_sector`: `[mllp] author_sector`,
    for HL7 files, which carry no sector)."""
    return FolderProfile(
        hl7_author_sector=hl7_author_sector,
        author=section.author, kind=section.kind,
        expected_format=FolderFormat(section.format) if section.format else None,
        cda_identity_qualified=section.cda_identity_qualified,
        identity_from_filename=section.identity_from_filename,
        filename_pattern=section.filename_pattern)


def profile_for(config: BridgeConfig, path: Path) -> FolderProfile:
    """The profile of the watched folder that holds `path` (none: the defaults)."""
    folder = path.resolve().parent
    for section in config.intake.folders():
        if config.path(section.folder).resolve() == folder:
            return folder_profile(section, config.mllp.author_sector)
    return FolderProfile(hl7_author_sector=config.mllp.author_sector)


def _text_lines(size: int) -> list[str]:
    """What a text body becomes in the CDA N1."""
    return [f"  contenu             texte brut (UTF-8, {size} octets ; au plus "
            f"{MAX_TEXT_BYTES // 1024} Ko)",
            f"  corps du CDA N1     nonXMLBody/text mediaType {body_media_type(FORMAT_TEXT)} "
            "(base64)"]


def _content_lines(document: FolderDocument) -> list[str]:
    if document.request.body_format == "text":
        return _text_lines(len(document.payload))
    is_pdf = document.payload.startswith(b"%PDF-")
    return [f"  contenu             {'PDF' if is_pdf else 'CDA transmis tel quel'}"]


def _letter_lines(name: str, data: bytes, companions: dict[str, bytes]) -> list[str]:
    """The body an HPRIM Net letter would send (its PDF, or its text), or why it has none."""
    try:
        body = hprim_net_body(name, parse_hprim_net(data, file_name=name), companions)
    except BridgeError as exc:
        return [f"Contenu de la lettre : aucun — {exc.message_fr}"]
    if body.body_format == "text":
        return ["Contenu de la lettre (sans PDF, envoyée comme texte) :",
                *_text_lines(len(body.payload)),
                f"  formatCode          {FORMAT_TEXT} (JDV_J60 : texte brut, à la place du PDF)"]
    return [f"Contenu de la lettre : le PDF {body.label}"]


def preview_file_set(path: Path, fmt: FolderFormat, matrix: Matrix, target: Target,
                     profile: FolderProfile) -> Preview:
    """An XDM archive or an HPRIM file (with its PDF), read as the folder intake reads it."""
    lines = [f"Aperçu du {_FORMAT_FR[fmt]} {path.name}"]
    try:
        data = path.read_bytes()
        needed, own = companion_names(fmt, path.name, data)
        wanted = [*needed, *([f"{path.stem}.pdf"] if own else [])]
        present = {p.name.lower(): p for p in path.parent.iterdir() if p.is_file()}
        companions = {present[n.lower()].name: present[n.lower()].read_bytes()
                      for n in wanted if n.lower() in present}
    except OSError as exc:
        return _verdict(lines, None, [f"Fichier illisible : {exc.strerror} ({exc.filename})."])
    try:
        documents = read_file_set(fmt, path.name, data, companions, profile=profile,
                                  matrix=matrix)
    except BridgeError as exc:
        # Refused (its identity, today, for any HPRIM file): still say what a letter would send.
        if fmt is FolderFormat.HPRIM_NET:
            lines += _letter_lines(path.name, data, companions)
        return _verdict(lines, None, [exc.message_fr])
    blocked: list[str] = []
    resolution = None
    for document in documents:
        lines.append(f"Document {document.label} :")
        lines += _content_lines(document)
        is_pdf = document.request.body_format == "text" or document.payload.startswith(b"%PDF-")
        resolution = _judge_request(document.request, matrix, target, lines, blocked,
                                    is_pdf=is_pdf)
    return _verdict(lines, resolution, blocked)


def preview(path: Path, matrix: Matrix, target: Target,
            profile: FolderProfile | None = None) -> Preview:
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return preview_cda(path, matrix, target)
    if suffix in (".pdf", ".json"):
        return preview_pair(path, matrix, target)
    try:
        with path.open("rb") as stream:
            head = stream.read(4096)
    except OSError as exc:
        return _verdict([f"Aperçu de {path.name}"], None,
                        [f"Fichier illisible : {exc.strerror} ({exc.filename})."])
    fmt = primary_format(path.name, head)
    if fmt is FolderFormat.HL7:
        return preview_hl7(path, matrix, target, profile)
    if fmt in (FolderFormat.XDM, FolderFormat.HPRIM_SANTE, FolderFormat.HPRIM_NET):
        return preview_file_set(path, fmt, matrix, target, profile or FolderProfile())
    return preview_pair(path, matrix, target)
