"""Checks a loaded feeding matrix against the CI-SIS value sets.

`load_matrix` only refuses what it cannot read (syntax, missing keys, wrong types, unknown ids);
this module judges the content: every code must exist in its value set, the classCode must come
from ASS_X04, aliases must not be ambiguous. Each problem names the file, the row and, in
French, the fix. CI runs it on the shipped matrices; the CLI can run it on a URPS file.
"""

from __future__ import annotations

from mappings.matrix import FORMAT_PDF, Category, Matrix, MatrixProblem, MatrixRow
from mappings.valuesets import VS, class_of, load_value_set

__all__ = ["check_matrix"]

HL7_CONFIDENTIALITY = "2.16.840.1.113883.5.25"
TRE_A03 = "1.2.250.1.213.1.1.4.1"
TRE_A07 = "1.2.250.1.213.1.1.4.13"


def _file_of(row: MatrixRow) -> str:
    """The file that last touched the row (its origin trail ends with that layer)."""
    last = row.origin.rsplit("; ", 1)[-1]
    return last.split(" ", 1)[0]


def check_matrix(matrix: Matrix) -> list[MatrixProblem]:
    """Every content problem of the matrix, in file order; empty when it can be used."""
    problems: list[MatrixProblem] = []
    for key, category in matrix.categories.items():
        problems.extend(_check_category(key, category))

    first_of: dict[str, MatrixRow] = {}
    for row in matrix.rows:
        first = first_of.setdefault(row.id, row)
        if first is not row:
            # Reported on the later row: the layer that added it is the one to fix.
            problems.append(
                MatrixProblem(
                    _file_of(row),
                    row.id,
                    f"l'id « {row.id} » est déjà utilisé (ligne venant de {_file_of(first)}) ; "
                    "donnez un id unique à chaque ligne (par exemple "
                    f"{row.id}a, {row.id}b), ou utilisez [[override]] pour modifier la ligne.",
                )
            )
        problems.extend(_check_row(matrix, row))
    problems.extend(_check_aliases(matrix))
    return problems


def _check_category(key: str, category: Category) -> list[MatrixProblem]:
    out: list[MatrixProblem] = []

    def problem(message: str) -> None:
        out.append(MatrixProblem(category.origin, f"categories.{key}", message))

    professions = load_value_set(VS.PROFESSION)
    specialties = load_value_set(VS.AUTHOR_SPECIALTY)
    for code in category.professions:
        if not professions.contains(code):
            problem(
                f"profession « {code} » inconnue de TRE_G15 ; utilisez un code TRE_G15 "
                "(10 médecin, 21 pharmacien, 60 infirmier, 70 masseur-kinésithérapeute, "
                "50 sage-femme, 40 chirurgien-dentiste)."
            )
    for code in category.specialties:
        stem = code.removesuffix("*").rstrip("/")
        if not specialties.contains(stem):
            what = "préfixe de spécialité" if code.endswith("*") else "spécialité"
            problem(
                f"{what} « {code} » absente de JDV_J01 (authorSpecialty) ; corrigez le "
                "code, par exemple G15_10/SM54."
            )
    if not load_value_set(VS.PRACTICE_SETTING).contains(category.default_practice_setting):
        problem(
            f"cadre d'exercice « {category.default_practice_setting} » absent de JDV_J04 ; "
            "utilisez par exemple AMBULATOIRE ou SAD."
        )
    if not load_value_set(VS.FACILITY_TYPE).contains(category.default_facility_type):
        problem(
            f"type de structure « {category.default_facility_type} » absent de JDV_J02 ; "
            "utilisez par exemple SA07 (cabinet individuel)."
        )
    return out


def _check_row(matrix: Matrix, row: MatrixRow) -> list[MatrixProblem]:
    """Categories, typeCode and classCode of one row, then the rest."""
    file = _file_of(row)
    out: list[MatrixProblem] = []

    def problem(message: str) -> None:
        out.append(MatrixProblem(file, row.id, message))

    for category in row.categories:
        if category not in matrix.categories:
            problem(
                f"catégorie « {category} » inconnue ; catégories possibles : "
                f"{', '.join(matrix.categories)}."
            )

    # typeCode, and the gaps the file declares knowingly.
    in_j07 = load_value_set(VS.TYPE_CODE).contains(row.type_code, row.type_system)
    if not in_j07 and "type_code" not in row.outside_value_sets:
        problem(
            f"typeCode « {row.type_code} » (système {row.type_system}) absent de JDV_J07 ; "
            "corrigez le code ou son système (LN / A05), ou, s'il vient d'une version plus "
            'récente du jeu de valeurs, ajoutez outside_value_sets = ["type_code"] avec un '
            "commentaire."
        )
    if in_j07 and "type_code" in row.outside_value_sets:
        problem(
            f"typeCode « {row.type_code} » est maintenant dans JDV_J07 : retirez "
            '"type_code" de outside_value_sets.'
        )

    # classCode: derived from X04, explicit only where X04 is silent.
    derived = class_of(row.type_code, row.type_system)
    if derived is not None and row.class_code is not None:
        if row.class_code != derived.code:
            problem(
                f"classCode « {row.class_code} » contredit ASS_X04 ({row.type_code} → "
                f"{derived.code} {derived.display}) ; supprimez class_code et class_status : "
                "la classe est déduite du typeCode."
            )
        else:
            problem(
                f"class_code « {row.class_code} » est écrit alors qu'ASS_X04 le donne déjà ; "
                "supprimez class_code et class_status (la classe est toujours déduite)."
            )
    elif derived is None and row.class_code is None:
        problem(
            f"aucune classe : ASS_X04 ne connaît pas le typeCode « {row.type_code} » ; "
            'ajoutez class_code = "10" (ou la classe TRE_A03 qui convient) avec '
            'class_status = "INFERRED".'
        )
    elif row.class_code is not None and not load_value_set(VS.CLASS_CODE).contains(
        row.class_code, TRE_A03
    ):
        problem(
            f"classCode « {row.class_code} » absent de TRE_A03 ; utilisez 10, 11, 31, 42, "
            "43, 44, 45 ou 52."
        )

    out.extend(_check_presentation(matrix, row))
    return out


def _check_presentation(matrix: Matrix, row: MatrixRow) -> list[MatrixProblem]:
    """Classeur, confidentiality, visibility, format, practice setting and facility type."""
    file = _file_of(row)
    out: list[MatrixProblem] = []

    def problem(message: str) -> None:
        out.append(MatrixProblem(file, row.id, message))

    if row.classeur not in matrix.classeurs:
        problem(
            f"classeur « {row.classeur} » inconnu ; classeurs possibles : "
            f"{', '.join(matrix.classeurs)}."
        )
    confidentiality = load_value_set(VS.CONFIDENTIALITY)
    if not confidentiality.contains(row.confidentiality, HL7_CONFIDENTIALITY):
        problem(
            f'confidentialité « {row.confidentiality} » invalide ; écrivez "N" (normal), '
            '"R" ou "V" (à ne pas partager).'
        )
    visibility = load_value_set(VS.VISIBILITY)
    for flag in row.visibility:
        if not visibility.contains(flag, TRE_A07):
            problem(
                f"visibilité « {flag} » absente de TRE_A07 ; utilisez MASQUE_PS, "
                "INVISIBLE_PATIENT ou INVISIBLE_REPRESENTANTS_LEGAUX."
            )

    in_j60 = load_value_set(VS.FORMAT_CODE).contains(row.format_code)
    if not in_j60 and "format" not in row.outside_value_sets:
        problem(
            f'formatCode « {row.format_code} » absent de JDV_J60 ; écrivez format = "pdf" '
            "ou le formatCode du modèle structuré (par exemple urn:asip:ci-sis:vac-note:2021)."
        )
    if in_j60 and "format" in row.outside_value_sets:
        problem(
            f"formatCode « {row.format_code} » est maintenant dans JDV_J60 : retirez "
            '"format" de outside_value_sets.'
        )
    if row.structured_required and row.format_code == FORMAT_PDF:
        problem(
            'structured_required = true mais format = "pdf" : indiquez le formatCode du '
            "modèle structuré exigé, ou mettez structured_required = false."
        )

    if row.practice_setting is not None and not load_value_set(VS.PRACTICE_SETTING).contains(
        row.practice_setting
    ):
        problem(
            f"cadre d'exercice « {row.practice_setting} » absent de JDV_J04 ; utilisez par "
            "exemple AMBULATOIRE ou SAD."
        )
    if row.facility_type is not None and not load_value_set(VS.FACILITY_TYPE).contains(
        row.facility_type
    ):
        problem(
            f"type de structure « {row.facility_type} » absent de JDV_J02 ; utilisez par "
            "exemple SA07."
        )
    return out


def _check_aliases(matrix: Matrix) -> list[MatrixProblem]:
    """A name (id, label or alias, normalized) must lead to one row per category."""
    out: list[MatrixProblem] = []
    seen_pairs: set[tuple[str, str, str]] = set()
    for category in matrix.categories:
        owner: dict[str, MatrixRow] = {}
        for row in matrix.rows_for(category):
            for key in row.names():
                first = owner.setdefault(key, row)
                if first is row:
                    continue
                pair = (key, first.id, row.id)
                if pair in seen_pairs:
                    continue
                seen_pairs.add(pair)
                out.append(
                    MatrixProblem(
                        _file_of(row),
                        row.id,
                        f"le libellé « {key} » désigne déjà la ligne {first.id} pour la catégorie "
                        f"{category} ; retirez-le des aliases de {row.id} (ou de {first.id}) ou "
                        "rendez-le plus précis.",
                    )
                )
    return out
