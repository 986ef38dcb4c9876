"""The minimal built-in mapping: two document kinds and the professions of our users.

A stop-gap until the regional feeding matrix lands as data files (its own issue). Every code here
was checked against the official ANS files in `shared/data/valuesets/` on 2026-11-21:
JDV_J07 XdsTypeCode CISIS, ASS_X04 type→class (dateMaj 20240223), JDV_J01 XdsAuthorSpecialty,
JDV_J02 healthcare facility types, JDV_J04 practice settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DocumentKind:
    """A document kind the practice software names, and its DMP type and class."""

    key: str  # what the sidecar says, e.g. "cr-soins-infirmiers"
    label_fr: str
    type_code: str  # JDV_J07 (LOINC)
    type_display: str
    class_code: str  # TRE_A03, from ASS_X04(type_code), never chosen freely
    class_display: str


DOCUMENT_KINDS: dict[str, DocumentKind] = {
    kind.key: kind
    for kind in (
        DocumentKind(
            key="cr-soins-infirmiers",
            label_fr="Compte rendu / fiche de soins infirmiers",
            type_code="11506-3",
            type_display="CR ou fiche de suivi de soins par auxiliaire médical",
            class_code="10",
            class_display="Compte rendu",
        ),
        DocumentKind(
            key="cr-consultation",
            label_fr="Compte rendu de consultation ou de visite",
            type_code="11488-4",
            type_display="CR ou fiche de consultation ou de visite",
            class_code="10",
            class_display="Compte rendu",
        ),
    )
}


@dataclass(frozen=True)
class Profession:
    """A TRE_G15 profession and the authorSpecialty (JDV_J01) used when none is given."""

    code: str  # TRE_G15
    label_fr: str
    default_specialty: str  # JDV_J01 code
    default_specialty_display: str
    # JDV_J01 codes this profession may use as authorSpecialty, with their display names.
    specialties: dict[str, str]


PROFESSIONS: dict[str, Profession] = {
    p.code: p
    for p in (
        Profession(
            "10",
            "Médecin",
            "G15_10/SM54",
            "Médecin - Médecine Générale (SM)",
            {
                "G15_10/SM54": "Médecin - Médecine Générale (SM)",
                "G15_10/SM26": "Médecin - Qualifié en Médecine Générale (SM)",
            },
        ),
        Profession(
            "21",
            "Pharmacien",
            "G15_21/A",
            "Pharmacien titulaire d'officine",
            {"G15_21/A": "Pharmacien titulaire d'officine"},
        ),
        Profession(
            "40",
            "Chirurgien-dentiste",
            "G15_40",
            "Chirurgien-Dentiste",
            {"G15_40": "Chirurgien-Dentiste"},
        ),
        Profession("50", "Sage-femme", "G15_50", "Sage-Femme", {"G15_50": "Sage-Femme"}),
        Profession("60", "Infirmier", "G15_60", "Infirmier", {"G15_60": "Infirmier"}),
        Profession(
            "70",
            "Masseur-kinésithérapeute",
            "G15_70",
            "Masseur-Kinésithérapeute",
            {"G15_70": "Masseur-Kinésithérapeute"},
        ),
    )
}

# TRE_R02 activity sectors of a private practice (JDV_J02 healthcare facility types).
SECTORS: dict[str, str] = {
    "SA07": "Cabinet individuel",
    "SA08": "Cabinet de groupe",
    "SA09": "Exercice en société",
    "SA33": "Pharmacie d'officine",
    "SA52": "Maison de santé ou Pôle de santé",
}

PRACTICE_SETTING_AMBULATORY = ("AMBULATOIRE", "Ambulatoire")
FORMAT_PDF_IN_CDA = ("urn:ihe:iti:xds-sd:pdf:2008", "Document à corps non structuré en Pdf/A-1")
