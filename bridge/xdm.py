"""IHE XDM media (ITI-32, the MSSanté attachment format): a ZIP with
`IHE_XDM/SUBSETnn/METADATA.XML` (an ebRIM SubmitObjectsRequest) and the documents it lists.

A ZIP from outside is hostile until proven otherwise, so before any document is used:
- the archive, each member and the sum of the members are size-capped, and the sizes are
  counted while decompressing (the sizes a ZIP declares can lie), with a compression-ratio cap:
  a zip bomb stops at the first block over a limit, never fills memory;
- a member name that is absolute, climbs out (`..`), uses `\\`, a drive letter or a control
  character is refused (path traversal), and so are encrypted members and duplicate names;
- METADATA.XML goes through the hardened parser (bridge.xmlsafe: no DTD, no entities);
- each document the metadata lists must be in the archive, and its size and SHA-1 must match
  the `size` / `hash` slots when they are given;
- a document may be listed only once: two entries pointing at the same file would queue it
  twice.

Pure: bytes in (the archive is read from memory), values out.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import re
import zipfile
import zlib
from dataclasses import dataclass, field

from bridge.errors import IntakeRejected
from bridge.xmlsafe import UnsafeXmlError, parse_xml

MAX_ARCHIVE_BYTES = 40 * 1024 * 1024
MAX_MEMBER_BYTES = 20 * 1024 * 1024  # a CDA wrapping the largest PDF the DMP takes
MAX_TOTAL_BYTES = 60 * 1024 * 1024
MAX_MEMBERS = 200
MAX_RATIO = 200  # XML and PDF compress at most ~10:1 in practice; bombs reach 1000:1
_CHUNK = 64 * 1024
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
_UNSAFE_NAME = re.compile(r"(^[/\\])|[:\\\x00-\x1f]")


@dataclass(frozen=True)
class XdmDocument:
    """One document of the archive, as METADATA.XML lists it."""

    path: str  # member name in the archive
    mime_type: str
    data: bytes = field(repr=False)
    unique_id: str | None = None


@dataclass(frozen=True)
class XdmPackage:
    subset: str  # e.g. IHE_XDM/SUBSET01
    documents: tuple[XdmDocument, ...]


def _refuse(file_name: str, problem: str, code: str) -> IntakeRejected:
    return IntakeRejected(
        f"L'archive XDM {file_name} est refusée : {problem}. Rien n'a été envoyé au DMP ; "
        "demandez à l'expéditeur une archive IHE XDM conforme.", code=code, event=code.lower())


def unsafe_member_name(name: str) -> str | None:
    """Why a member name is refused (French), or None when it is a plain relative path."""
    if not name or len(name) > 255:
        return "nom de fichier vide ou trop long"
    if _UNSAFE_NAME.search(name):
        return "chemin absolu, lecteur (« : »), « \\ » ou caractère de contrôle"
    parts = name.removesuffix("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "chemin qui remonte (« .. ») ou vide"
    return None


def _members(archive: zipfile.ZipFile, file_name: str) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _refuse(file_name, f"elle contient plus de {MAX_MEMBERS} fichiers", "XDM_TOO_LARGE")
    members: dict[str, zipfile.ZipInfo] = {}
    declared = 0
    for info in infos:
        why = unsafe_member_name(info.filename)
        if why is not None:
            raise _refuse(file_name, f"le nom « {info.filename[:80]!s} » est interdit ({why}) : "
                                     "protection contre l'écriture hors du dossier",
                          "XDM_PATH_TRAVERSAL")
        if info.flag_bits & 0x1:
            raise _refuse(file_name, f"le fichier {info.filename} est chiffré", "XDM_ENCRYPTED")
        key = info.filename.upper()
        if key in members:
            raise _refuse(file_name, f"le nom {info.filename} y figure deux fois",
                          "XDM_DUPLICATE_NAME")
        declared += info.file_size
        if info.file_size > MAX_MEMBER_BYTES or declared > MAX_TOTAL_BYTES:
            raise _refuse(file_name, "son contenu décompressé dépasse les limites "
                                     f"({MAX_MEMBER_BYTES // 2**20} Mo par fichier, "
                                     f"{MAX_TOTAL_BYTES // 2**20} Mo au total)", "XDM_TOO_LARGE")
        if not info.is_dir():
            members[key] = info
    return members


class _Budget:
    """What may still be decompressed from the whole archive."""

    def __init__(self) -> None:
        self.left = MAX_TOTAL_BYTES


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget,
          file_name: str) -> bytes:
    """The member's bytes, counted while decompressing (declared sizes may lie)."""
    limit = min(MAX_MEMBER_BYTES, budget.left)
    ratio_limit = max(info.compress_size, 1) * MAX_RATIO
    out = bytearray()
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                out += chunk
                if len(out) > limit:
                    raise _refuse(file_name, "son contenu décompressé dépasse les limites "
                                             "(archive piégée de type « zip bomb » ?)",
                                  "XDM_ZIP_BOMB")
                if len(out) > ratio_limit and len(out) > _CHUNK:
                    raise _refuse(file_name, f"le fichier {info.filename} se décompresse plus "
                                             f"de {MAX_RATIO} fois sa taille (archive piégée de "
                                             "type « zip bomb »)", "XDM_ZIP_BOMB")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError, zlib.error, lzma.LZMAError) as exc:
        raise _refuse(file_name, f"le fichier {info.filename} est illisible "
                                 f"({type(exc).__name__})", "XDM_UNREADABLE") from None
    budget.left -= len(out)
    return bytes(out)


def _metadata_member(members: dict[str, zipfile.ZipInfo], file_name: str) -> tuple[str, str]:
    found = sorted(k for k in members if k.startswith("IHE_XDM/") and k.endswith("/METADATA.XML")
                   and k.count("/") == 2)
    if not found:
        raise _refuse(file_name, "IHE_XDM/SUBSETnn/METADATA.XML est absent : ce n'est pas une "
                                 "archive IHE XDM", "XDM_NO_METADATA")
    if len(found) > 1:
        raise _refuse(file_name, "elle contient plusieurs lots (SUBSET) : déposez-les un par un",
                      "XDM_SEVERAL_SUBSETS")
    key = found[0]
    return key, members[key].filename.rsplit("/", 1)[0]


def _slot(element: object, name: str) -> str | None:
    for slot in element.findall(f"{{{NS_RIM}}}Slot"):  # type: ignore[attr-defined]
        if slot.get("name") == name:
            value = slot.find(f"{{{NS_RIM}}}ValueList/{{{NS_RIM}}}Value")
            if value is not None and value.text:
                return str(value.text).strip()
    return None


def _unique_id(entry: object) -> str | None:
    for ext in entry.findall(f"{{{NS_RIM}}}ExternalIdentifier"):  # type: ignore[attr-defined]
        if ext.get("identificationScheme") == "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab":
            value = ext.get("value")
            return str(value) if value else None
    return None


def read_xdm(data: bytes, *, file_name: str) -> XdmPackage:
    """The documents of an XDM archive, or IntakeRejected with the French reason."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise _refuse(file_name, f"elle dépasse {MAX_ARCHIVE_BYTES // 2**20} Mo",
                      "XDM_TOO_LARGE")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError):  # e.g. a "version needed" zipfile does not know
        raise _refuse(file_name, "ce n'est pas une archive ZIP lisible (fichier tronqué ?)",
                      "XDM_UNREADABLE") from None
    with archive:
        members = _members(archive, file_name)
        budget = _Budget()
        metadata_key, subset = _metadata_member(members, file_name)
        metadata = _read(archive, members[metadata_key], budget, file_name)
        try:
            root = parse_xml(metadata)
        except UnsafeXmlError:
            raise _refuse(file_name, "METADATA.XML n'est pas un XML lisible (mal formé, ou "
                                     "déclaration DOCTYPE refusée par sécurité)",
                          "XDM_METADATA_UNREADABLE") from None
        entries = root.findall(f".//{{{NS_RIM}}}ExtrinsicObject")
        if not entries:
            raise _refuse(file_name, "METADATA.XML ne décrit aucun document",
                          "XDM_NO_DOCUMENT")
        listed: set[str] = set()
        documents = [_document(archive, members, entry, subset=subset, budget=budget,
                               file_name=file_name, listed=listed)
                     for entry in entries]
    return XdmPackage(subset=subset, documents=tuple(documents))


def _document(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], entry: object, *,
              subset: str, budget: _Budget, file_name: str, listed: set[str]) -> XdmDocument:
    """The entry's document; `listed` holds the members of the entries read before it."""
    uri = _slot(entry, "URI")
    if uri is None:
        raise _refuse(file_name, "un document de METADATA.XML n'a pas d'emplacement (slot URI)",
                      "XDM_DOCUMENT_MISSING")
    why = unsafe_member_name(uri)
    if why is not None:
        raise _refuse(file_name, f"l'emplacement « {uri[:80]} » d'un document est interdit "
                                 f"({why})", "XDM_PATH_TRAVERSAL")
    key = f"{subset}/{uri}".upper()
    if key not in members:
        raise _refuse(file_name, f"le document {uri} annoncé par METADATA.XML est absent",
                      "XDM_DOCUMENT_MISSING")
    if key in listed:
        raise _refuse(file_name, f"METADATA.XML décrit deux fois le document {uri} (deux "
                                 "fiches ExtrinsicObject pour le même fichier : il serait envoyé "
                                 "deux fois)", "XDM_DUPLICATE_DOCUMENT")
    listed.add(key)
    content = _read(archive, members[key], budget, file_name)
    size, sha1 = _slot(entry, "size"), _slot(entry, "hash")
    digest = hashlib.sha1(content, usedforsecurity=False).hexdigest()  # XDS's own hash slot
    if (size is not None and size != str(len(content))) or (
            sha1 is not None and sha1.lower() != digest):
        raise _refuse(file_name, f"le document {uri} ne correspond pas à sa taille ou à son "
                                 "empreinte déclarées dans METADATA.XML (archive altérée ?)",
                      "XDM_HASH_MISMATCH")
    mime = str(entry.get("mimeType") or "")  # type: ignore[attr-defined]
    return XdmDocument(path=members[key].filename, mime_type=mime, data=content,
                       unique_id=_unique_id(entry))
