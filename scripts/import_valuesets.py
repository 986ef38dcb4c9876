"""Derive the CI-SIS value sets the bridge uses into ``mappings/valuesets/*.json``.

Inputs are the official ANS files copied verbatim into ``<shared>/data/valuesets/`` (IHE SVS
``RetrieveValueSetResponse`` XML, or FHIR CodeSystem JSON), with their provenance read from
``<shared>/data/valuesets/SOURCES.md``. A few value sets exist in no public data file; they are
transcribed by hand from ``<shared>/spec/dmp-protocol.md`` in the clearly marked section
"TRANSCRIPTIONS" below.

Each output file is UTF-8 JSON, indent 1, concepts sorted by (system, code), so running the
script twice gives byte-identical files. Concepts whose ``dateFin`` is set (retired by ANS) are
left out of ``concepts`` and listed under ``retired``. The script also writes
``mappings/valuesets/README.md``. After it has run, the project never reads the shared folder
again: tests and the service only use ``mappings/valuesets/``.

Usage: ``python scripts/import_valuesets.py [--shared PATH] [--out DIR] [--check]``
(``--shared`` defaults to ``../shared`` relative to the repository root, ``--out`` to
``mappings/valuesets``; ``--check`` writes nothing and fails if a file would change).

Standard library only. ``xml.etree`` is acceptable here because the inputs are the trusted,
official files checked into the shared data set, never data received at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO_ROOT.parent / "shared"
DEFAULT_OUT = REPO_ROOT / "mappings" / "valuesets"
DERIVED_BY = "scripts/import_valuesets.py"

LOINC = "2.16.840.1.113883.6.1"
TRE_A05 = "1.2.250.1.213.1.1.4.12"
TRE_A03 = "1.2.250.1.213.1.1.4.1"
TRE_A07 = "1.2.250.1.213.1.1.4.13"
IHE_FORMAT = "1.3.6.1.4.1.19376.1.2.3"
SIGNATURE_CLASS = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"

Json = dict[str, Any]


@dataclass(frozen=True)
class Input:
    """One official file and the value-set name (output file stem) it becomes."""

    name: str  # NOS canonical name, also the output file stem and the VS enum value
    source: str  # file name in <shared>/data/valuesets/
    kind: str  # "svs", "svs-map" or "fhir"
    note: str = ""  # appended to the description when the file needs a caveat


INPUTS: tuple[Input, ...] = (
    Input("JDV_J07-XdsTypeCode-CISIS", "JDV_J07_XdsTypeCode_CISIS.xml", "svs"),
    Input(
        "ASS_X04-CorrespondanceType-Classe-CISIS",
        "ASS_X04-CorrespondanceType-Classe-CISIS.xml",
        "svs-map",
    ),
    Input("JDV_J01-XdsAuthorSpecialty-CISIS", "JDV_J01_XdsAuthorSpecialty_CISIS.xml", "svs"),
    Input(
        "JDV_J02-XdsHealthcareFacilityTypeCode-CISIS",
        "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml",
        "svs",
    ),
    Input(
        "JDV_J04-XdsPracticeSettingCode-CISIS", "JDV_J04_XdsPracticeSettingCode_CISIS.xml", "svs"
    ),
    Input(
        "JDV_J08-XdsConfidentialityCode-CISIS", "JDV_J08_XdsConfidentialityCode_CISIS.xml", "svs"
    ),
    Input("JDV_HL7_Confidentiality_CISIS", "JDV_HL7_Confidentiality_CISIS.xml", "svs"),
    Input("JDV_J47-FunctionCode-CISIS", "JDV_J47_FunctionCode_CISIS.xml", "svs"),
    Input(
        "JDV_J65-SubjectRole-DMP",
        "JDV_J65-SubjectRole-DMP.xml",
        "svs",
        note=(
            "Publié sous le nom JDV_J65-SubjectRole-DMP, mais l'en-tête du fichier est celui de "
            "JDV_J05-SubjectRole-CISIS (OID 1.2.250.1.213.1.1.5.470, 2020) : instantané J05 "
            "tenant lieu de J65."
        ),
    ),
    Input(
        "ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS",
        "ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS.xml",
        "svs-map",
    ),
    Input("TRE_A04-LoincTypeDocument", "TRE_A04-LoincTypeDocument.xml", "svs"),
    Input("TRE_A05-TypeDocComplementaire", "TRE_A05-TypeDocComplementaire.xml", "svs"),
    Input("TRE_R02-SecteurActivite", "TRE_R02-SecteurActivite.xml", "svs"),
    Input("TRE_G15-ProfessionSante", "TRE_G15-ProfessionSante-FHIR.json", "fhir"),
    Input(
        "TRE_R01-EnsembleSavoirFaire-CISIS", "TRE_R01-EnsembleSavoirFaire-CISIS-FHIR.json", "fhir"
    ),
    Input(
        "JDV_J231-XdsTypesIdentifiantsReferenceId-DMP",
        "JDV_J231_XdsTypesIdentifiantsReferenceId_DMP.xml",
        "svs",
    ),
)


# ═════════════════════════════════════════════════════════════════════════════════════════════
# TRANSCRIPTIONS — value sets found in no public data file, copied by hand from the spec.
# Every entry names the line of shared/spec/dmp-protocol.md (or matrix-and-intake.md) it comes
# from. At import time the script cross-checks them against the official files where those
# overlap (TRE_A07 labels against JDV_J08, J60 systems against ASS_A11, A03 codes against X04),
# so a typo here fails the import instead of shipping.
# ═════════════════════════════════════════════════════════════════════════════════════════════

TRANSCRIBED: dict[str, Json] = {
    "TRE_A03-ClasseDocument": {
        "oid": TRE_A03,
        # Only a rendered IG page was seen: "TRE_A03_ClasseDocument – Terminologies de Santé
        # v1.12.0" (dmp-protocol.md §0, key [A03]); its dateMaj is unknown.
        "version": "IG Terminologies de Santé v1.12.0",
        "date": "2026-11-21",  # date of the spec snapshot the codes were read from
        "description": (
            "Classe de document (XDS classCode), plus la classe de l'entrée de signature XAdES "
            "(système URN)"
        ),
        "source": (
            'transcribed from shared/spec/dmp-protocol.md §3.3 ("TRE_A03 classes: 10 Compte '
            'rendu · 11 Synthèse · …", source: [A03] rendered IG page TRE_A03_ClasseDocument, '
            "Terminologies de Santé v1.12.0) and matrix-and-intake.md §A.1 item 2; signature "
            'classCode from dmp-protocol.md §4.3 "Signature DocumentEntry metadata" (source: '
            "[DRIM] DocumentEntry.java, [TERMINO] ASS-X16-CorrespondanceType-Classe-DMP.fsh)"
        ),
        "concepts": [
            # dmp-protocol.md §3.3 "TRE_A03 classes: …" (= matrix-and-intake.md §A.1 item 2)
            ("10", "Compte rendu", TRE_A03),
            ("11", "Synthèse", TRE_A03),
            ("31", "Imagerie médicale", TRE_A03),
            ("42", "Prescription", TRE_A03),
            ("43", "Dispensation", TRE_A03),
            ("44", "Plan de soins, protocole de soins", TRE_A03),
            ("45", "Traitement administré", TRE_A03),
            ("52", "Certificat, déclaration", TRE_A03),
            ("60", "Données de remboursement", TRE_A03),
            ("90", "Autres documents déposés par le patient", TRE_A03),
            ("95", "Document de gestion", TRE_A03),
            ("99", "Document technique", TRE_A03),
            # dmp-protocol.md §4.3: "classCode `urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1` /
            # "Digital Signature" / codingScheme `URN`" (the XAdES signature entry)
            (SIGNATURE_CLASS, "Digital Signature", "URN"),
        ],
    },
    "TRE_A07-StatutVisibiliteDocument": {
        "oid": TRE_A07,
        "version": "inconnue (transcription)",
        "date": "2026-11-21",  # date of the spec snapshot the codes were read from
        "description": (
            "Statut de visibilité du document (confidentialityCode additionnels du DMP)"
        ),
        "source": (
            "transcribed from shared/spec/dmp-protocol.md §3.2 confidentialityCode row and §4.6, "
            "matrix-and-intake.md §A.4 (source: [PDSM4DMP] transaction_td3.3a/td3.3b, [DRIM], "
            "[HL7V2-IG]); French labels identical to the displayNames of the TRE_A07 codes in "
            "JDV_J08_XdsConfidentialityCode_CISIS.xml (dateMaj 20200424), checked at import"
        ),
        "concepts": [
            # dmp-protocol.md §3.2: "**`MASQUE_PS`** (masqué aux PS)"
            ("MASQUE_PS", "Masqué aux professionnels de santé", TRE_A07),
            # dmp-protocol.md §3.2: "**`INVISIBLE_PATIENT`** (non visible par le patient)"
            ("INVISIBLE_PATIENT", "Non visible par le patient", TRE_A07),
            # dmp-protocol.md §3.2: "**`INVISIBLE_REPRESENTANTS_LEGAUX`**"
            (
                "INVISIBLE_REPRESENTANTS_LEGAUX",
                "Non visible par les représentants légaux du patient",
                TRE_A07,
            ),
        ],
    },
    "JDV_J60-FormatCode-DMP": {
        "oid": "1.2.250.1.213.1.1.5.8",
        # Version and date of the FSH source the spec cites as [TERMINO J60]
        # (ansforge/IG-terminologie-de-sante DM/input/fsh/Done/Ontoserver/
        # JDV_J60_FormatCode_DMP.fsh @ ce8176b2775e11b0a6df46640c6288fd954e6c5c: ^version).
        "version": "20260928120000",
        "date": "2026-09-28",
        "description": (
            "Jeu de valeurs pour métadonnée formatCode (DMP) — sous-ensemble cité par la "
            "spécification, pas la liste complète"
        ),
        "source": (
            "transcribed from shared/spec/dmp-protocol.md §3.2 formatCode row and §4.3 "
            '"Signature DocumentEntry metadata" (source: [TERMINO] ansforge/'
            "IG-terminologie-de-sante DM/input/fsh/Done/Ontoserver/JDV_J60_FormatCode_DMP.fsh, "
            "[DRIM], [HL7V2-IG]); systems from ASS_A11 where the code appears there; labels from "
            "that FSH source @ ce8176b2775e11b0a6df46640c6288fd954e6c5c, except the xmldsig "
            "label taken as [DRIM] sends it (§4.3)"
        ),
        "concepts": [
            # §3.2: "PDF in CDA N1: `urn:ihe:iti:xds-sd:pdf:2008`, codingScheme
            # `1.3.6.1.4.1.19376.1.2.3`"
            (
                "urn:ihe:iti:xds-sd:pdf:2008",
                "Document à corps non structuré en Pdf/A-1",
                IHE_FORMAT,
            ),
            # §3.2: "Others: `urn:ihe:iti:xds-sd:text:2008`, `urn:ihe:iti-fr:xds-sd:{jpeg,rtf,
            # tiff}:2010`"
            (
                "urn:ihe:iti:xds-sd:text:2008",
                "Document à corps non structuré en texte brut",
                IHE_FORMAT,
            ),
            (
                "urn:ihe:iti-fr:xds-sd:jpeg:2010",
                "Document à corps non structuré en format jpeg",
                IHE_FORMAT,
            ),
            (
                "urn:ihe:iti-fr:xds-sd:rtf:2010",
                "Document à corps non structuré en format rtf",
                IHE_FORMAT,
            ),
            (
                "urn:ihe:iti-fr:xds-sd:tiff:2010",
                "Document à corps non structuré en format tiff",
                IHE_FORMAT,
            ),
            # §3.2: "for structured CDA the model's URN (ASS_A11), e.g.
            # `urn:asip:ci-sis:vac-note:2021`, `urn:asip:ci-sis:vsm:2012`, `urn:ihe:pcc:ips:2020`,
            # `urn:asip:ci-sis:ldl-ses:2017`, `urn:ihe:lab:xd-lab:2008`, `urn:ihe:pharm:pre:2010`"
            ("urn:asip:ci-sis:vac-note:2021", "Note de vaccination", "1.2.250.1.213.1.1.4.2.282"),
            ("urn:asip:ci-sis:vsm:2012", "Synthèse médicale", "1.2.250.1.213.1.1.4.2.282"),
            ("urn:ihe:pcc:ips:2020", "Synthèse médicale", IHE_FORMAT),
            (
                "urn:asip:ci-sis:ldl-ses:2017",
                "Lettre de Liaison à la sortie de l'établissement de santé",
                "1.2.250.1.213.1.1.4.2.282",
            ),
            (
                "urn:ihe:lab:xd-lab:2008",
                "Compte rendu structuré d'examens de biologie médicale",
                IHE_FORMAT,
            ),
            ("urn:ihe:pharm:pre:2010", "Prescription de médicaments", IHE_FORMAT),
            # §4.3: "formatCode `http://www.w3.org/2000/09/xmldsig#` / "Default Signature Style" /
            # codingScheme `URN`"
            ("http://www.w3.org/2000/09/xmldsig#", "Default Signature Style", "URN"),
            # §4.3: "J60 also lists `urn:ihe:iti:dsg:detached:2014` "Signature détachée"".
            # System: TRE_A11 IheFormatCode in the FSH, i.e. the IHE formatCode OID used by
            # ASS_A11 for every other TRE_A11 code (the spec does not name it).
            ("urn:ihe:iti:dsg:detached:2014", "Signature détachée", IHE_FORMAT),
        ],
    },
}

# Displays for the ASS_X04 pair ends that no JDV/TRE file in the set labels.
X04_EXTRA_DISPLAYS: dict[tuple[str, str], str] = {
    # dmp-protocol.md §4.3: "typeCode `E1762` / "Full Document" / codingScheme `ASTM`"
    ("E1762", "ASTM"): "Full Document",
}

# ═════════════════════════════════════════════════════════════════════════════════════════════
# end of TRANSCRIPTIONS
# ═════════════════════════════════════════════════════════════════════════════════════════════


class ImportError_(Exception):
    """The official files do not look as expected; nothing is written."""


def _local(tag: str) -> str:
    """Element name without its namespace (the J65 file has none, the others use SVS's)."""
    return tag.rsplit("}", 1)[-1]


def _iso_date(value: str) -> str:
    """``20240927120000`` or ``2024-09-27T12:00:00+01:00`` → ``2024-09-27``."""
    if re.fullmatch(r"\d{8}(\d{6})?", value):
        return f"{value[0:4]}-{value[4:6]}-{value[6:8]}"
    if re.match(r"\d{4}-\d{2}-\d{2}", value):
        return value[:10]
    raise ImportError_(f"date illisible : {value!r}")


def _compact(value: str) -> str:
    """``2022-09-28T00:00:00+01:00`` → ``20220928000000`` (the NOS dateMaj style)."""
    return re.sub(r"\D", "", value[:19])


@dataclass(frozen=True)
class Provenance:
    """One row of SOURCES.md."""

    repository: str
    path: str
    file_commit: str
    snapshot: str


def read_sources(sources_md: Path) -> dict[str, Provenance]:
    """The provenance table of SOURCES.md, by file name."""
    rows: dict[str, Provenance] = {}
    for line in sources_md.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not cells[0].endswith((".xml", ".json")):
            continue
        commit = re.search(r"[0-9a-f]{40}", cells[5])
        snapshot = re.search(r"[0-9a-f]{40}", cells[6])
        if commit is None or snapshot is None:
            raise ImportError_(f"SOURCES.md : commit illisible pour {cells[0]}")
        rows[cells[0]] = Provenance(cells[3], cells[4], commit.group(0), snapshot.group(0))
    return rows


def _concept(code: str | None, display: str | None, system: str | None) -> Json:
    if not code or not system:
        raise ImportError_(f"concept sans code ou système : {code!r} / {system!r}")
    return {"code": code, "display": display or "", "system": system}


def _sorted_unique(concepts: list[Json], where: str) -> list[Json]:
    keys = [(c["system"], c["code"]) for c in concepts]
    if len(set(keys)) != len(keys):
        raise ImportError_(f"{where} : concept en double")
    return sorted(concepts, key=lambda c: (c["system"], c["code"]))


def read_svs(path: Path) -> Json:
    """Header, active concepts, retired concepts and mapped pairs of one SVS file."""
    root = ET.parse(path).getroot()  # noqa: S314 - trusted official input (see module doc)
    value_sets = [el for el in root.iter() if _local(el.tag) == "ValueSet"]
    if len(value_sets) != 1:
        raise ImportError_(f"{path.name} : {len(value_sets)} ValueSet au lieu de 1")
    vs = value_sets[0]
    active: list[Json] = []
    retired: list[Json] = []
    pairs: list[tuple[Json, Json]] = []
    for el in vs.iter():
        if _local(el.tag) == "MappedConcept":
            ends = [c for c in el if _local(c.tag) == "Concept"]
            if len(ends) != 2:
                raise ImportError_(f"{path.name} : MappedConcept à {len(ends)} concepts")
            src, dst = (
                {"code": c.get("code") or "", "system": c.get("codeSystem") or ""} for c in ends
            )
            pairs.append((src, dst))
    in_pairs = {id(c) for el in vs.iter() if _local(el.tag) == "MappedConcept" for c in el}
    for el in vs.iter():
        if _local(el.tag) != "Concept" or id(el) in in_pairs:
            continue
        concept = _concept(el.get("code"), el.get("displayName"), el.get("codeSystem"))
        if el.get("dateFin"):
            retired.append({**concept, "date_fin": _iso_date(el.get("dateFin", ""))})
        else:
            active.append(concept)
    date_maj = vs.get("dateMaj") or ""
    revision = vs.get("revisionDate") or ""
    if date_maj:
        version, date = date_maj, _iso_date(date_maj)
    elif revision:  # JDV_HL7_Confidentiality_CISIS has no dateMaj, only revisionDate
        version, date = _compact(revision), _iso_date(revision)
    else:
        raise ImportError_(f"{path.name} : ni dateMaj ni revisionDate")
    return {
        "oid": vs.get("id") or "",
        "version": version,
        "date": date,
        "description": vs.get("description") or vs.get("displayName") or "",
        "active": active,
        "retired": retired,
        "pairs": pairs,
    }


def read_fhir(path: Path) -> Json:
    """Header, active and retired concepts of one FHIR CodeSystem file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("resourceType") != "CodeSystem":
        raise ImportError_(f"{path.name} : pas un CodeSystem FHIR")
    oids = [
        i["value"] for i in data.get("identifier", []) if i.get("value", "").startswith("urn:oid:")
    ]
    if len(oids) != 1:
        raise ImportError_(f"{path.name} : OID introuvable")
    oid = oids[0].removeprefix("urn:oid:")
    active: list[Json] = []
    retired: list[Json] = []

    def walk(concepts: list[Json]) -> None:
        for item in concepts:
            concept = _concept(item.get("code"), item.get("display"), oid)
            props = {p.get("code"): p for p in item.get("property", [])}
            date_fin = props.get("dateFin", {}).get("valueDateTime")
            if date_fin:
                retired.append({**concept, "date_fin": _iso_date(date_fin)})
            else:
                active.append(concept)
            walk(item.get("concept", []))

    walk(data.get("concept", []))
    return {
        "oid": oid,
        "version": data["version"],
        "date": _iso_date(data["date"]),
        "description": data.get("description", ""),
        "active": active,
        "retired": retired,
        "pairs": [],
    }


def _provenance(prov: Provenance, source: Path) -> Json:
    return {
        "repository": prov.repository,
        "path": prov.path,
        "file_commit": prov.file_commit,
        "snapshot": prov.snapshot,
        "source_file": f"shared/data/valuesets/{source.name}",
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "derived_by": DERIVED_BY,
    }


def build(shared: Path) -> dict[str, Json]:
    """Every output document, by value-set name. Raises ImportError_ on any surprise."""
    folder = shared / "data" / "valuesets"
    sources = read_sources(folder / "SOURCES.md")
    parsed: dict[str, Json] = {}
    for item in INPUTS:
        path = folder / item.source
        if item.source not in sources:
            raise ImportError_(f"{item.source} absent de SOURCES.md")
        parsed[item.name] = read_fhir(path) if item.kind == "fhir" else read_svs(path)
        parsed[item.name]["provenance"] = _provenance(sources[item.source], path)
        if (item.kind == "svs-map") != bool(parsed[item.name]["pairs"]):
            raise ImportError_(f"{item.source} : type de fichier inattendu")

    transcribed = {name: _transcribed(name, spec) for name, spec in TRANSCRIBED.items()}
    _cross_check(parsed, transcribed)

    # Labels for the ends of concept-map pairs (SVS MappedConcept carries no displayName).
    labels: dict[tuple[str, str], str] = dict(X04_EXTRA_DISPLAYS)
    for name in (
        "TRE_A05-TypeDocComplementaire",
        "TRE_A04-LoincTypeDocument",
        "JDV_J07-XdsTypeCode-CISIS",
    ):  # later wins: J07 is the reference label
        for c in parsed[name]["active"] + parsed[name]["retired"]:
            labels[(c["code"], c["system"])] = c["display"]
    for name in ("TRE_A03-ClasseDocument", "JDV_J60-FormatCode-DMP"):
        for c in transcribed[name]["concepts"]:
            labels[(c["code"], c["system"])] = c["display"]

    out: dict[str, Json] = {}
    for item in INPUTS:
        p = parsed[item.name]
        description = p["description"] + (f" — {item.note}" if item.note else "")
        doc: Json = {
            "name": item.name,
            "oid": p["oid"],
            "version": p["version"],
            "date": p["date"],
            "description": description,
            "provenance": p["provenance"],
        }
        if item.kind == "svs-map":
            doc["provenance"]["displays"] = (
                "pair labels joined by the script from JDV_J07, TRE_A04, TRE_A05 and the "
                "transcribed TRE_A03 / JDV_J60 (the source file has none); empty when unknown"
            )
            doc["pairs"] = sorted(
                (
                    {
                        "from": {**src, "display": labels.get((src["code"], src["system"]), "")},
                        "to": {**dst, "display": labels.get((dst["code"], dst["system"]), "")},
                    }
                    for src, dst in p["pairs"]
                ),
                key=lambda pr: (
                    pr["from"]["system"],
                    pr["from"]["code"],
                    pr["to"]["system"],
                    pr["to"]["code"],
                ),
            )
        else:
            doc["concepts"] = _sorted_unique(p["active"], item.name)
            doc["retired"] = sorted(p["retired"], key=lambda c: (c["system"], c["code"]))
        out[item.name] = doc
    out.update(transcribed)
    return dict(sorted(out.items()))


def _transcribed(name: str, spec: Json) -> Json:
    concepts = [_concept(code, display, system) for code, display, system in spec["concepts"]]
    return {
        "name": name,
        "oid": spec["oid"],
        "version": spec["version"],
        "date": spec["date"],
        "description": spec["description"],
        "provenance": {"source": spec["source"], "derived_by": DERIVED_BY},
        "concepts": _sorted_unique(concepts, name),
        "retired": [],
    }


def _cross_check(parsed: dict[str, Json], transcribed: dict[str, Json]) -> None:
    """Fail when a hand transcription disagrees with an official file it overlaps."""
    j08 = {
        (c["code"], c["system"]): c["display"]
        for c in parsed["JDV_J08-XdsConfidentialityCode-CISIS"]["active"]
    }
    for c in transcribed["TRE_A07-StatutVisibiliteDocument"]["concepts"]:
        if j08.get((c["code"], c["system"])) != c["display"]:
            raise ImportError_(f"TRE_A07 {c['code']} diffère de JDV_J08")
    a11 = {}
    for _, dst in parsed["ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS"]["pairs"]:
        a11[dst["code"]] = dst["system"]
    for c in transcribed["JDV_J60-FormatCode-DMP"]["concepts"]:
        if c["code"] in a11 and a11[c["code"]] != c["system"]:
            raise ImportError_(f"J60 {c['code']} : système différent de ASS_A11")
    a03 = {(c["code"], c["system"]) for c in transcribed["TRE_A03-ClasseDocument"]["concepts"]}
    for _, dst in parsed["ASS_X04-CorrespondanceType-Classe-CISIS"]["pairs"]:
        if (dst["code"], dst["system"]) not in a03:
            raise ImportError_(f"ASS_X04 vise une classe inconnue : {dst['code']}")


def render(doc: Json) -> str:
    """The exact bytes of one output file (as text): stable key order, indent 1, final newline."""
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def render_readme(docs: dict[str, Json]) -> str:
    """``mappings/valuesets/README.md``, generated from the same documents."""
    lines = [
        "# CI-SIS value sets (generated — do not edit)",
        "",
        "Written by `scripts/import_valuesets.py` from the official ANS files in",
        "`../shared/data/valuesets/` (provenance in `SOURCES.md` there) and, for the value",
        "sets found in no public data file, from hand transcriptions of",
        "`../shared/spec/dmp-protocol.md` kept in the script's TRANSCRIPTIONS section. Each JSON",
        "file carries its `provenance`.",
        "Concepts retired by ANS (`dateFin` set) are listed under `retired`, not `concepts`.",
        "Load them with `mappings.valuesets` (`load_value_set`, `load_concept_map`, `class_of`).",
        "",
        "| file | OID | version | date | entries | source |",
        "|---|---|---|---|---|---|",
    ]
    for name, doc in docs.items():
        prov = doc["provenance"]
        if "repository" in prov:
            source = f"{prov['repository']} `{prov['path']}` @ {prov['file_commit'][:10]}"
        else:
            source = "hand transcription of the spec (see the file's `provenance.source`)"
        count = f"{len(doc['pairs'])} pairs" if "pairs" in doc else str(len(doc["concepts"]))
        lines.append(
            f"| `{name}.json` | {doc['oid']} | {doc['version']} | {doc['date']} | {count} | "
            f"{source} |"
        )
    lines += [
        "",
        "## Refresh",
        "",
        "When ANS publishes a new version: replace the file in `shared/data/valuesets/` (and its",
        "row in `SOURCES.md`), then run, from the repository root,",
        "",
        "```",
        "python scripts/import_valuesets.py --shared ../shared",
        "```",
        "",
        "review the diff of `mappings/valuesets/`, and run the tests. `--check` only verifies that",
        "the shipped files are up to date. A new value set needs an entry in the script's `INPUTS`",
        "and a member in `mappings.valuesets.VS`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--shared",
        type=Path,
        default=DEFAULT_SHARED,
        help="the shared folder (default: ../shared from the repository root)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default: mappings/valuesets)"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file would change"
    )
    args = parser.parse_args(argv)
    try:
        docs = build(args.shared)
    except (ImportError_, OSError, ET.ParseError, KeyError, ValueError) as exc:
        print(f"import_valuesets: échec : {exc}", file=sys.stderr)
        return 2
    files = {f"{name}.json": render(doc) for name, doc in docs.items()}
    files["README.md"] = render_readme(docs)
    stale = []
    for file_name, text in files.items():
        target = args.out / file_name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(file_name)
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", newline="\n")
    extra = (
        sorted(p.name for p in args.out.glob("*.json") if p.name not in files)
        if args.out.exists()
        else []
    )
    for name in extra:
        print(f"import_valuesets: fichier non produit par le script : {name}", file=sys.stderr)
    verb = "à mettre à jour" if args.check else "écrits"
    print(f"import_valuesets: {len(docs)} jeux de valeurs, {len(stale)} fichier(s) {verb}")
    return 1 if args.check and (stale or extra) else 0


if __name__ == "__main__":
    sys.exit(main())
