"""Which DMP metadata a document gets: the feeding matrix applied to one author and one kind.

(profession + specialty → matrix category) + (local document name, alias or typeCode → matrix
row) → typeCode, classCode (always derived from the typeCode through ASS_X04, never chosen),
classeur, formatCode, practice setting, facility type, confidentiality and visibility flags,
event codes — and the reasons the document must wait for a person (a structured document the DMP
requires, information to confirm with the patient first). Every choice is traced, in French, so
`dmp-bridge preview` can say which row and which value-set entry produced each field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bridge.domain import (
    OID_CONFIDENTIALITY,
    OID_PRACTICE_SETTING,
    OID_SECTOR,
    OID_VISIBILITY,
    Author,
    Coded,
    DocumentCodes,
)
from bridge.errors import MappingRejected
from mappings.matrix import Matrix, MatrixRow
from mappings.valuesets import VS, class_of, load_value_set

FORMAT_PDF = "urn:ihe:iti:xds-sd:pdf:2008"
# The N1 of a plain text body (IHE XDS-SD, JDV_J60 « Document à corps non structuré en texte
# brut »): what a matrix row's PDF format becomes when the document is a text.
FORMAT_TEXT = "urn:ihe:iti:xds-sd:text:2008"


@dataclass(frozen=True)
class Hold:
    """Why a document must wait in `held` for a person, and what that person must do."""

    code: str
    message_fr: str


@dataclass(frozen=True)
class Resolution:
    """The matrix's answer for one document."""

    category: str
    row: MatrixRow
    codes: DocumentCodes
    classeur: str
    holds: tuple[Hold, ...]
    auto_feed: bool
    trace: tuple[str, ...]


def _concept(vs: VS, code: str, system: str | None, what: str) -> Coded:
    concept = load_value_set(vs).get(code, system)
    if concept is None:
        raise MappingRejected(
            f"Le code {what} « {code} » n'est pas dans le jeu de valeurs {vs.value} : la matrice "
            "d'alimentation est incohérente. Lancez « dmp-bridge matrix check » et corrigez-la.",
            code="MATRIX_CODE_UNKNOWN", event="matrix_code_unknown")
    return Coded(concept.code, concept.display, concept.system)


def find_row(matrix: Matrix, author: Author, kind: str) -> tuple[str, MatrixRow]:
    """The author's category and the row for `kind` (a local name, an alias or a typeCode)."""
    category = matrix.category_of(author.profession_code, author.specialty_code)
    if category is None:
        raise MappingRejected(
            f"La matrice d'alimentation ne prévoit aucun document pour la profession "
            f"{author.profession_code} (spécialité {author.specialty_code}). Vérifiez la "
            "profession et la spécialité de l'auteur dans la fiche.",
            code="MATRIX_NO_CATEGORY", event="matrix_no_category")
    row = matrix.row_for_kind(category, kind) or matrix.row_for_type(category, kind.strip())
    if row is None:
        label = matrix.categories[category].label_fr
        known = "; ".join(sorted({r.label for r in matrix.rows_for(category)}))
        raise MappingRejected(
            f"Le type de document « {kind} » n'est pas prévu pour l'auteur ({label}) dans la "
            f"matrice d'alimentation. Types possibles : {known}. Corrigez le type dans le "
            "logiciel, ou demandez à votre URPS d'ajouter ce libellé à la matrice régionale.",
            code="KIND_UNKNOWN", event="document_kind_unknown")
    return category, row


VISIBILITY_ORDER = ("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")


def _visibility_rank(flag: str) -> tuple[int, str]:
    return (VISIBILITY_ORDER.index(flag) if flag in VISIBILITY_ORDER else len(VISIBILITY_ORDER),
            flag)


def _format(row: MatrixRow, text_body: bool) -> tuple[Coded, str]:
    """The row's formatCode (a text body turns its PDF format into the text one), and why.

    A row with another format (a DICOM manifest…) cannot carry a text; a structured one is held
    by the caller (STRUCTURED_REQUIRED), as a PDF of it would be."""
    if text_body and row.format_code == FORMAT_PDF:
        return (_concept(VS.FORMAT_CODE, FORMAT_TEXT, None, "de format"),
                f"formatCode {FORMAT_TEXT} ← ligne {row.id} (document en texte brut, pas en PDF)")
    if text_body and not row.structured_required:
        raise MappingRejected(
            f"Un document « {row.label} » ne peut pas être envoyé au DMP en texte brut : la "
            f"matrice d'alimentation prévoit le format {row.format_code} (ligne {row.id}). "
            "Envoyez-le dans ce format depuis le logiciel.",
            code="TEXT_FORMAT_UNSUPPORTED", event="text_format_unsupported")
    format_code = (Coded(row.format_code, row.format_code, "1.3.6.1.4.1.19376.1.2.3")
                   if "format" in row.outside_value_sets
                   else _concept(VS.FORMAT_CODE, row.format_code, None, "de format"))
    return format_code, f"formatCode {format_code.code} ← ligne {row.id}"


def resolve(matrix: Matrix, author: Author, *, kind: str, is_pdf: bool = True,
            source_confirm: bool = False, source_visibility: Sequence[str] = (),
            text_body: bool = False) -> Resolution:
    """Apply the matrix; raise MappingRejected (the input is refused) when nothing fits.

    `text_body`: the document is a plain text (sidecar `body_format` "text"), wrapped in an N1
    like a PDF: a row's PDF formatCode becomes the text one."""
    category_key, row = find_row(matrix, author, kind)
    category = matrix.categories[category_key]
    trace = [f"catégorie {category_key} ({category.label_fr}) : profession "
             f"{author.profession_code}, spécialité {author.specialty_code}",
             f"ligne {row.id} « {row.label} » ({row.origin})"]

    if "type_code" in row.outside_value_sets:
        # Knowingly newer than the shipped JDV_J07 (the matrix row says so and why).
        type_code = Coded(row.type_code, row.label, row.type_system)
        trace.append(f"typeCode {type_code.code} « {type_code.display} » ← ligne {row.id} "
                     "(absent du JDV_J07 livré)")
    else:
        type_code = _concept(VS.TYPE_CODE, row.type_code, row.type_system, "de type")
        trace.append(f"typeCode {type_code.code} « {type_code.display} » ← JDV_J07")
    derived = class_of(row.type_code, row.type_system)
    if derived is not None:
        class_code = _concept(VS.CLASS_CODE, derived.code, None, "de classe")
        trace.append(f"classCode {class_code.code} « {class_code.display} » ← ASS_X04"
                     f"({type_code.code})")
    elif row.class_code is not None:
        class_code = _concept(VS.CLASS_CODE, row.class_code, None, "de classe")
        trace.append(f"classCode {class_code.code} « {class_code.display} » ← ligne {row.id} "
                     f"(absent d'ASS_X04, statut {row.class_status})")
    else:
        raise MappingRejected(
            f"Aucune classe connue pour le type {row.type_code} (ligne {row.id}).",
            code="MATRIX_NO_CLASS", event="matrix_no_class")

    format_code, format_why = _format(row, text_body)
    setting_code = row.practice_setting or category.default_practice_setting
    setting = _concept(VS.PRACTICE_SETTING, setting_code, OID_PRACTICE_SETTING, "de cadre")
    facility_code = row.facility_type or author.sector_code or category.default_facility_type
    facility = _concept(VS.FACILITY_TYPE, facility_code, OID_SECTOR, "d'établissement")
    confidentiality = _concept(VS.HL7_CONFIDENTIALITY, row.confidentiality, OID_CONFIDENTIALITY,
                               "de confidentialité")
    # The row's restrictions plus those the professional asked for; a source can only add.
    # One fixed order, whatever the order of the source (the same restrictions must give the
    # same metadata through every channel).
    flags = tuple(sorted(set((*row.visibility, *source_visibility)), key=_visibility_rank))
    visibility = tuple(_concept(VS.VISIBILITY, flag, OID_VISIBILITY, "de visibilité")
                       for flag in flags)
    events = tuple(Coded(code, display, system) for code, display, system in row.event_codes)
    trace += [
        format_why,
        f"practiceSettingCode {setting.code} ← "
        + ("ligne" if row.practice_setting else f"catégorie {category_key}"),
        f"healthcareFacilityTypeCode {facility.code} « {facility.display} » ← "
        + ("ligne" if row.facility_type else "secteur de l'auteur"),
        f"confidentialityCode {confidentiality.code}"
        + "".join(f" + {flag.code}" for flag in visibility),
        f"classeur {row.classeur} « {matrix.classeurs.get(row.classeur, row.classeur)} »",
    ]

    holds = []
    if row.structured_required and is_pdf:
        holds.append(Hold(
            "STRUCTURED_REQUIRED",
            f"Le DMP exige ce document ({row.label}) au format structuré ({row.format_code}), "
            f"pas en {'texte brut' if text_body else 'PDF'}. Produisez-le avec le module dédié "
            "du logiciel (par exemple la note de vaccination VAC-NOTE), puis annulez cet envoi "
            "(dmp-bridge cancel)."))
    if row.confirm_with_patient or source_confirm:
        why = "la matrice d'alimentation le demande" if row.confirm_with_patient else (
            "le logiciel l'a demandé")
        holds.append(Hold(
            "CONFIRM_WITH_PATIENT",
            f"Document à voir avec le patient avant son envoi au DMP ({why}) : il peut contenir "
            "une information à lui annoncer. Après l'avoir informé, libérez-le "
            "(dmp-bridge release) ; sinon, annulez-le (dmp-bridge cancel)."))
    codes = DocumentCodes(
        type_code=type_code, class_code=class_code, format_code=format_code,
        practice_setting=setting, facility_type=facility, confidentiality=confidentiality,
        visibility=visibility, event_codes=events,
    )
    return Resolution(category_key, row, codes, row.classeur, tuple(holds), row.auto_feed,
                      tuple(trace))


def content_type(author: Author) -> Coded:
    """The submission set's contentTypeCode (JDV_J59): the author's activity sector (TRE_R02)."""
    concept = load_value_set(VS.SECTOR).get(author.sector_code)
    display = concept.display if concept is not None else author.sector_code
    return Coded(author.sector_code, display, OID_SECTOR)
