"""The CI-SIS value sets and concept maps, read from the JSON files in ``mappings/valuesets/``.

Those files are derived from the official ANS files by ``scripts/import_valuesets.py`` and carry
their provenance (OID, version, date, repository and commit); see ``mappings/valuesets/README.md``.
Nothing here reads ``../shared``: the data ships with the package.

The classCode of a document is never chosen: it is derived from its typeCode through ASS_X04
(``class_of``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

LOINC = "2.16.840.1.113883.6.1"
"""LOINC, the code system of most typeCodes."""
TRE_A05_SYSTEM = "1.2.250.1.213.1.1.4.12"
"""TRE_A05 TypeDocComplementaire, the code system of French typeCodes such as ``SYNTH``."""


class VS(StrEnum):
    """Every value-set file shipped in ``mappings/valuesets/`` (the value is the file stem)."""

    # JDV_J07 XDS typeCode, CI-SIS (LOINC and TRE_A05 codes)
    TYPE_CODE = "JDV_J07-XdsTypeCode-CISIS"
    # ASS_X04 concept map typeCode → classCode (TRE_A03); read with load_concept_map
    TYPE_TO_CLASS = "ASS_X04-CorrespondanceType-Classe-CISIS"
    # TRE_A03 classCode (12 classes) plus the XAdES signature entry's class (system "URN")
    CLASS_CODE = "TRE_A03-ClasseDocument"
    # JDV_J01 authorSpecialty (TRE_A02 codes such as G15_60, TRE_A00 codes)
    AUTHOR_SPECIALTY = "JDV_J01-XdsAuthorSpecialty-CISIS"
    # JDV_J02 healthcareFacilityTypeCode (SAxx, EXP_PATIENT, SNR)
    FACILITY_TYPE = "JDV_J02-XdsHealthcareFacilityTypeCode-CISIS"
    # JDV_J04 practiceSettingCode (AMBULATOIRE, SAD, …)
    PRACTICE_SETTING = "JDV_J04-XdsPracticeSettingCode-CISIS"
    # JDV_J08 XDS confidentialityCode, CI-SIS (N/R/V and the TRE_A07 flags)
    CONFIDENTIALITY = "JDV_J08-XdsConfidentialityCode-CISIS"
    # HL7 Confidentiality as used in the CDA header
    HL7_CONFIDENTIALITY = "JDV_HL7_Confidentiality_CISIS"
    # TRE_A07 visibility flags: MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX
    VISIBILITY = "TRE_A07-StatutVisibiliteDocument"
    # JDV_J60 formatCode, DMP (the subset named in the spec)
    FORMAT_CODE = "JDV_J60-FormatCode-DMP"
    # ASS_A11 concept map CDA model templateId → formatCode; read with load_concept_map
    MODEL_TO_FORMAT = "ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS"
    # JDV_J47 author functionCode (authorRole)
    FUNCTION_CODE = "JDV_J47-FunctionCode-CISIS"
    # VIHF subject:role (a J05 snapshot standing in for J65)
    SUBJECT_ROLE = "JDV_J65-SubjectRole-DMP"
    # TRE_G15 professions de santé (10 médecin, 60 infirmier, …)
    PROFESSION = "TRE_G15-ProfessionSante"
    # TRE_R01 savoir-faire / specialties (SMxx, …)
    SAVOIR_FAIRE = "TRE_R01-EnsembleSavoirFaire-CISIS"
    # TRE_R02 secteur d'activité (SAxx)
    SECTOR = "TRE_R02-SecteurActivite"
    # TRE_A05 French complementary document types (SYNTH, PRESC-INF, CERT_DECL, …)
    TYPE_A05 = "TRE_A05-TypeDocComplementaire"
    # TRE_A04 LOINC document types known to the CI-SIS
    LOINC_TYPES = "TRE_A04-LoincTypeDocument"
    # JDV_J231 referenceIdList identifier types accepted by the DMP
    REFERENCE_ID_TYPES = "JDV_J231-XdsTypesIdentifiantsReferenceId-DMP"


CONCEPT_MAPS = frozenset({VS.TYPE_TO_CLASS, VS.MODEL_TO_FORMAT})
"""The members of ``VS`` whose file holds pairs (read with ``load_concept_map``)."""


class ValueSetError(ValueError):
    """A value-set file is missing or malformed (a packaging bug, never a user error)."""

    code = "VALUESET_INVALID"
    event = "valueset_invalid"


@dataclass(frozen=True)
class Concept:
    """One coded concept: code, display name and code system OID (or ``URN``/``ASTM``)."""

    code: str
    display: str
    system: str


def _first_by_code(concepts: Mapping[tuple[str, str], Concept]) -> Mapping[str, Concept]:
    by_code: dict[str, Concept] = {}
    for concept in concepts.values():
        by_code.setdefault(concept.code, concept)  # file order: the first one wins
    return MappingProxyType(by_code)


@dataclass(frozen=True)
class ValueSet:
    """A value set: its concepts keyed by ``(code, system)``, in file order."""

    name: str
    oid: str
    version: str
    date: dt.date
    concepts: Mapping[tuple[str, str], Concept]
    _by_code: Mapping[str, Concept] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A frozen dataclass: the derived index is set once, here.
        object.__setattr__(self, "_by_code", _first_by_code(self.concepts))

    def get(self, code: str, system: str | None = None) -> Concept | None:
        """The concept with this code (in this system, or in any system when None)."""
        if system is None:
            return self._by_code.get(code)
        return self.concepts.get((code, system))

    def contains(self, code: str, system: str | None = None) -> bool:
        """Whether the code (in this system, or in any system when None) is in the set."""
        return self.get(code, system) is not None

    def codes(self) -> frozenset[str]:
        """Every code of the set, whatever its system."""
        return frozenset(self._by_code)


@dataclass(frozen=True)
class ConceptMap:
    """A concept map (SVS ``MappedConcept`` pairs), keyed by the source ``(code, system)``.

    ``pairs`` holds the sources that map to exactly one target. A source with several targets
    (ASS_A11 maps the XDS-SD template to the pdf, text, jpeg, rtf and tiff formatCodes) is left
    out of ``pairs`` and kept in ``ambiguous``, so ``target`` never picks one silently;
    ``targets`` gives all of them.
    """

    name: str
    oid: str
    version: str
    date: dt.date
    pairs: Mapping[tuple[str, str], Concept]
    ambiguous: Mapping[tuple[str, str], tuple[Concept, ...]] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )

    def target(self, code: str, system: str) -> Concept | None:
        """The single target of a source concept; None if unmapped or mapped to several."""
        return self.pairs.get((code, system))

    def targets(self, code: str, system: str) -> tuple[Concept, ...]:
        """Every target of a source concept, in file order (empty if unmapped)."""
        found = self.ambiguous.get((code, system))
        if found is not None:
            return found
        single = self.pairs.get((code, system))
        return () if single is None else (single,)


def _fail(vs: VS, reason: str) -> ValueSetError:
    return ValueSetError(f"Jeu de valeurs « {vs.value}.json » illisible : {reason}.")


def _read(vs: VS) -> dict[str, Any]:
    resource = resources.files("mappings") / "valuesets" / f"{vs.value}.json"
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _fail(vs, "fichier absent du paquet") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(vs, f"JSON invalide ({exc})") from exc
    if not isinstance(data, dict):
        raise _fail(vs, "un objet JSON est attendu")
    if data.get("name") != vs.value:
        raise _fail(vs, f"le nom interne est {data.get('name')!r}")
    for key in ("oid", "version", "date"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise _fail(vs, f"champ « {key} » manquant")
    if not isinstance(data.get("provenance"), dict):
        raise _fail(vs, "champ « provenance » manquant")
    return data


def _header(vs: VS, data: dict[str, Any]) -> tuple[str, str, str, dt.date]:
    try:
        date = dt.date.fromisoformat(data["date"])
    except ValueError as exc:
        raise _fail(vs, f"date {data['date']!r} invalide") from exc
    return vs.value, data["oid"], data["version"], date


def _concept(vs: VS, raw: object, *, display_required: bool = True) -> Concept:
    if not isinstance(raw, dict):
        raise _fail(vs, "concept mal formé")
    code, system = raw.get("code"), raw.get("system")
    # Pair ends may lack a label (SVS MappedConcept has none); value-set concepts may not.
    display = raw.get("display") if display_required else raw.get("display", "")
    if not (isinstance(code, str) and code and isinstance(system, str) and system):
        raise _fail(vs, f"concept sans code ou système : {raw!r}")
    if not isinstance(display, str):
        raise _fail(vs, f"concept sans libellé : {code!r}")
    return Concept(code=code, display=display, system=system)


@cache
def load_value_set(vs: VS) -> ValueSet:
    """The value set of this file (read once, then cached)."""
    if vs in CONCEPT_MAPS:
        raise _fail(vs, "c'est une table de correspondance, à lire avec load_concept_map")
    data = _read(vs)
    raw = data.get("concepts")
    if not isinstance(raw, list) or not raw:
        raise _fail(vs, "aucun concept")
    concepts: dict[tuple[str, str], Concept] = {}
    for item in raw:
        concept = _concept(vs, item)
        key = (concept.code, concept.system)
        if key in concepts:
            raise _fail(vs, f"concept en double : {key!r}")
        concepts[key] = concept
    name, oid, version, date = _header(vs, data)
    return ValueSet(name, oid, version, date, MappingProxyType(concepts))


@cache
def load_concept_map(vs: VS) -> ConceptMap:
    """The concept map of this file (read once, then cached)."""
    if vs not in CONCEPT_MAPS:
        raise _fail(vs, "ce n'est pas une table de correspondance, à lire avec load_value_set")
    data = _read(vs)
    raw = data.get("pairs")
    if not isinstance(raw, list) or not raw:
        raise _fail(vs, "aucune correspondance")
    grouped: dict[tuple[str, str], list[Concept]] = {}
    for item in raw:
        if not isinstance(item, dict):
            raise _fail(vs, "correspondance mal formée")
        source = _concept(vs, item.get("from"), display_required=False)
        target = _concept(vs, item.get("to"), display_required=False)
        grouped.setdefault((source.code, source.system), []).append(target)
    pairs = {key: found[0] for key, found in grouped.items() if len(found) == 1}
    several = {key: tuple(found) for key, found in grouped.items() if len(found) > 1}
    name, oid, version, date = _header(vs, data)
    return ConceptMap(name, oid, version, date, MappingProxyType(pairs), MappingProxyType(several))


def class_of(type_code: str, type_system: str = LOINC) -> Concept | None:
    """The classCode (TRE_A03) of a typeCode, from ASS_X04; None when X04 does not map it.

    The classCode is always derived this way, never chosen. ``type_system`` is LOINC by
    default; pass ``TRE_A05_SYSTEM`` for French codes such as ``SYNTH``.
    """
    return load_concept_map(VS.TYPE_TO_CLASS).target(type_code, type_system)
