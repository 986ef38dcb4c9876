"""Coded metadata against the CI-SIS / DMP value sets (spec §3.1–§3.3, §8.5), strict by default.

typeCode ∈ J07 (+ `J07_ADDITIONS`), classCode ∈ A03 and = ASS_X04(typeCode) when X04 maps the
type, formatCode ∈ J60, confidentialityCode ∈ J08 (one HL7 N/R/V plus TRE_A07 flags, at most 4),
healthcareFacilityTypeCode ∈ J02, practiceSettingCode ∈ J04, authorSpecialty ∈ J01, and the
submission set's contentTypeCode (only its known-bad variants: the codes of J59 are not shipped).
"""

from __future__ import annotations

from mappings.valuesets import VS, class_of, load_value_set
from service.simulator.j07_additions import J07_ADDITIONS
from service.simulator.namespaces import (
    DE_AUTHOR,
    DE_CLASS_CODE,
    DE_CONFIDENTIALITY,
    DE_FACILITY_TYPE,
    DE_FORMAT_CODE,
    DE_PRACTICE_SETTING,
    DE_TYPE_CODE,
    SS_AUTHOR,
    SS_CONTENT_TYPE,
)
from service.simulator.problems import IheCode, Problem
from service.simulator.submission import Classification, RegistryObject

META = IheCode.REGISTRY_METADATA
HL7_CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"
HL7_LEVELS = frozenset({"N", "R", "V"})
SECTOR_SYSTEM = "1.2.250.1.71.4.2.4"
OLD_CONTENT_TYPE_SYSTEM = "1.2.250.1.213.2.2"  # DRIMbox's contentTypeCode scheme (spec §7)
SIMPLE = {
    DE_FORMAT_CODE: (VS.FORMAT_CODE, "formatCode", "JDV_J60"),
    DE_FACILITY_TYPE: (VS.FACILITY_TYPE, "healthcareFacilityTypeCode", "JDV_J02"),
    DE_PRACTICE_SETTING: (VS.PRACTICE_SETTING, "practiceSettingCode", "JDV_J04"),
}


def _system(item: Classification) -> str:
    return (item.slots.get("codingScheme") or [""])[0].strip()


def _type_problems(entry: RegistryObject, loc: str) -> list[Problem]:
    types = entry.classified(DE_TYPE_CODE)
    problems: list[Problem] = []
    for item in types:
        key = (item.node, _system(item))
        if not load_value_set(VS.TYPE_CODE).contains(*key) and key not in J07_ADDITIONS:
            problems.append(Problem(META, f"{loc}/typeCode",
                                    f"typeCode {item.node} hors du jeu de valeurs JDV_J07."))
    for item in entry.classified(DE_CLASS_CODE):
        if not load_value_set(VS.CLASS_CODE).contains(item.node, _system(item)):
            problems.append(Problem(META, f"{loc}/classCode",
                                    f"classCode {item.node} hors de TRE_A03."))
            continue
        for type_item in types:
            expected = class_of(type_item.node, _system(type_item))
            if expected is not None and expected.code != item.node:
                problems.append(Problem(META, f"{loc}/classCode",
                                        f"classCode {item.node} incohérent avec le typeCode "
                                        f"{type_item.node} (ASS_X04 : {expected.code})."))
    return problems


def _confidentiality_problems(entry: RegistryObject, loc: str) -> list[Problem]:
    codes = entry.classified(DE_CONFIDENTIALITY)
    problems: list[Problem] = []
    for item in codes:
        if not load_value_set(VS.CONFIDENTIALITY).contains(item.node, _system(item)):
            problems.append(Problem(META, f"{loc}/confidentialityCode",
                                    f"confidentialityCode {item.node} hors de JDV_J08 (N/R/V "
                                    "HL7 ou MASQUE_PS / INVISIBLE_* de TRE_A07)."))
    levels = [c for c in codes if c.node in HL7_LEVELS and _system(c) == HL7_CONFIDENTIALITY_SYSTEM]
    if codes and len(levels) != 1:
        problems.append(Problem(META, f"{loc}/confidentialityCode",
                                "Il faut exactement un niveau de confidentialité HL7 N, R ou V."))
    if len(codes) > 4:
        problems.append(Problem(META, f"{loc}/confidentialityCode",
                                "Au plus quatre confidentialityCode par fiche."))
    return problems


def specialty_problems(obj: RegistryObject, scheme: str, loc: str) -> list[Problem]:
    """authorSpecialty `code^libellé^système` ∈ JDV_J01."""
    problems: list[Problem] = []
    for author in obj.classified(scheme):
        for value in author.slots.get("authorSpecialty") or []:
            parts = value.split("^")
            code, system = parts[0], parts[2] if len(parts) > 2 else ""
            if not load_value_set(VS.AUTHOR_SPECIALTY).contains(code, system):
                problems.append(Problem(META, f"{loc}/authorSpecialty",
                                        "authorSpecialty hors de JDV_J01 (format "
                                        "code^libellé^1.2.250.1.213.1.1.4.5 attendu)."))
    return problems


def check_entry_codes(entry: RegistryObject) -> list[Problem]:
    """Every coded classification of one DocumentEntry against its value set."""
    loc = f"ExtrinsicObject[@id='{entry.id}']"
    problems = _type_problems(entry, loc) + _confidentiality_problems(entry, loc)
    for scheme, (vs, label, name) in SIMPLE.items():
        for item in entry.classified(scheme):
            if not load_value_set(vs).contains(item.node, _system(item)):
                problems.append(Problem(META, f"{loc}/{label}",
                                        f"{label} {item.node} hors du jeu de valeurs {name}."))
    problems.extend(specialty_problems(entry, DE_AUTHOR, loc))
    return problems


def check_set_codes(ss: RegistryObject) -> list[Problem]:
    """contentTypeCode and authorSpecialty of the submission set."""
    loc = f"RegistryPackage[@id='{ss.id}']"
    problems: list[Problem] = []
    for item in ss.classified(SS_CONTENT_TYPE):
        system = _system(item)
        if system == OLD_CONTENT_TYPE_SYSTEM:
            problems.append(Problem(META, f"{loc}/contentTypeCode",
                                    "contentTypeCode avec le codingScheme 1.2.250.1.213.2.2 "
                                    "(ancien, hors JDV_J59).", lenient=True))
        elif system == SECTOR_SYSTEM and not load_value_set(VS.SECTOR).contains(item.node, system):
            problems.append(Problem(META, f"{loc}/contentTypeCode",
                                    f"contentTypeCode {item.node} hors de TRE_R02."))
    problems.extend(specialty_problems(ss, SS_AUTHOR, loc))
    return problems
