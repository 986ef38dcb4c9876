"""The feeding matrix: the shipped national + Bretagne matrices, their golden content, lookups,
overlay mechanics, and the problems a broken matrix reports (file, row, French fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mappings.matrix import (
    FORMAT_PDF,
    Matrix,
    MatrixError,
    MatrixProblem,
    MatrixRow,
    normalize_label,
)
from mappings.matrix_check import check_matrix
from mappings.matrix_load import load_matrix
from mappings.valuesets import class_of

PDF = FORMAT_PDF
VAC_NOTE = "urn:asip:ci-sis:vac-note:2021"
KOS = "1.2.840.10008.5.1.4.1.1.88.59"

# GOLDEN: for every national row id, what spec/matrix-and-intake.md A.3 says (as transcribed):
# (typeCode, classCode — from ASS_X04 or explicit —, classeur, formatCode, visibility flags,
#  confirm_with_patient, auto_feed). A change to the matrix must change this table too.
GOLDEN: dict[str, tuple[str, str, str, str, tuple[str, ...], bool, bool]] = {
    "MG-01": ("SYNTH", "11", "synthese", PDF, (), False, False),
    "MG-02": ("60591-5", "11", "synthese", PDF, (), False, False),
    "MG-03": ("57833-6", "42", "traitement", PDF, (), False, False),
    "MG-04": ("PRESC-BIO", "42", "traitement", PDF, (), False, False),
    "MG-05": ("57832-8", "42", "traitement", PDF, (), False, False),
    "MG-06": ("PRESC-INF", "42", "traitement", PDF, (), False, False),
    "MG-07": ("PRESC-KINE", "42", "traitement", PDF, (), False, False),
    "MG-08a": ("PRESC-ORTHOPHO", "42", "traitement", PDF, (), False, False),
    "MG-08b": ("PRESC-ORTHOPTIE", "42", "traitement", PDF, (), False, False),
    "MG-08c": ("PRESC-PEDI", "42", "traitement", PDF, (), False, False),
    "MG-09": ("55115-0", "42", "traitement", PDF, (), False, False),
    "MG-10": ("57828-6", "42", "traitement", PDF, (), False, False),
    "MG-11": ("PRESC-AAT", "42", "traitement", PDF, (), False, False),
    "MG-12": ("11488-4", "10", "compte-rendu", PDF, (), False, False),
    "MG-13": ("96349-6", "10", "compte-rendu", PDF, (), False, False),
    "MG-14": ("89601-9", "52", "certificat", PDF, (), False, False),
    "MG-15": ("CERT_DECL", "52", "certificat", PDF, (), False, False),
    "MG-16": ("PROT_ALD", "44", "traitement", PDF, (), False, False),
    "MG-17": ("18776-5", "44", "traitement", PDF, (), False, False),
    "MG-18a": ("75492-9", "10", "prevention", PDF, (), False, False),
    "MG-18b": ("75482-0", "10", "prevention", PDF, (), False, False),
    "MG-19": ("68817-6", "11", "prevention", PDF, (), False, False),
    "MG-20": ("87273-9", "52", "prevention", VAC_NOTE, (), False, True),
    "MG-21": ("11369-6", "52", "prevention", PDF, (), False, False),
    "MG-22": ("EXPPAT_3", "90", "synthese", PDF, (), True, False),
    "MG-23": ("85208-7", "10", "compte-rendu", PDF, (), False, False),
    "MG-24": ("74207-2", "11", "synthese", PDF, (), False, False),
    "SPE-01": ("34874-8", "10", "compte-rendu", PDF, (), False, False),
    "SPE-02": ("70004-7", "10", "compte-rendu", PDF, (), False, False),
    "SPE-03": ("11505-5", "10", "compte-rendu", PDF, (), False, False),
    "SPE-04a": ("34749-2", "10", "compte-rendu", PDF, (), False, False),
    "SPE-04b": ("77436-4", "10", "compte-rendu", PDF, (), False, False),
    "SPE-05": ("34794-8", "10", "compte-rendu", PDF, ("INVISIBLE_PATIENT",), True, False),
    "SPE-06": ("60568-3", "10", "analyse", PDF, (), True, False),
    "SPE-07": ("78513-9", "10", "compte-rendu", PDF, (), False, False),
    "SPE-08": ("68599-0", "11", "synthese", PDF, (), False, False),
    "BIO-01": ("11502-2", "10", "analyse", PDF, (), False, False),
    "BIO-02": ("51969-4", "10", "analyse", PDF, ("INVISIBLE_PATIENT",), True, False),
    "BIO-03": ("96173-0", "52", "certificat", PDF, (), False, False),
    "RAD-01": ("18748-4", "31", "imagerie", PDF, (), False, False),
    "RAD-02": ("IMG-KOS", "31", "imagerie", KOS, (), False, False),
    "RAD-03": ("52040-3", "31", "imagerie", PDF, (), False, False),
    "PHA-01": ("60593-1", "43", "traitement", PDF, (), False, False),
    "PHA-02": ("DISP_AUT", "43", "traitement", PDF, (), False, False),
    "PHA-03": ("56445-0", "11", "synthese", PDF, (), False, True),
    "PHA-04": ("78601-2", "10", "compte-rendu", PDF, (), False, True),
    "PHA-05": ("93024-8", "10", "compte-rendu", PDF, (), False, False),
    "PHA-06": ("61357-0", "42", "traitement", PDF, (), False, False),
    "PHA-07": ("75468-9", "42", "traitement", PDF, (), False, False),
    "PHA-08a": ("87273-9", "52", "prevention", VAC_NOTE, (), False, True),
    "PHA-08b": ("96874-3", "52", "prevention", PDF, (), False, False),
    "IDE-01": ("96163-1", "10", "compte-rendu", PDF, (), False, False),
    "IDE-02": ("11506-3", "10", "compte-rendu", PDF, (), False, False),
    "IDE-03": ("18776-5", "44", "traitement", PDF, (), False, False),
    "IDE-04": ("80565-5", "45", "traitement", PDF, (), False, False),
    "IDE-05": ("29274-8", "10", "compte-rendu", PDF, (), False, False),
    "IDE-06": ("57833-6", "42", "traitement", PDF, (), False, False),
    "MK-01": ("47420-5", "10", "compte-rendu", PDF, (), False, False),
    "MK-02": ("34120-6", "10", "compte-rendu", PDF, (), False, False),
    "SF-01": ("89233-1", "10", "compte-rendu", PDF, (), False, False),
    "SF-02": ("57055-6", "11", "synthese", PDF, (), False, False),
    "SF-03": ("15508-5", "10", "compte-rendu", PDF, (), False, False),
    "SF-04": ("89235-6", "11", "synthese", PDF, (), False, False),
    "SF-05a": ("57057-2", "11", "synthese", PDF, (), False, False),
    "SF-05b": ("57075-4", "11", "synthese", PDF, (), False, False),
    "SF-05c": ("78489-2", "11", "synthese", PDF, (), False, False),
    "SF-06": ("59283-2", "10", "prevention", PDF, (), False, False),
    "DEN-01": ("83836-7", "11", "synthese", PDF, (), False, False),
    "DEN-02": ("28617-9", "10", "prevention", PDF, (), False, False),
    "ES-01": ("11490-0", "10", "compte-rendu", PDF, (), False, False),
    "ES-02": ("34112-3", "10", "compte-rendu", PDF, (), False, False),
    "ES-03": ("15507-7", "10", "compte-rendu", PDF, (), False, False),
    "ES-04": ("18761-7", "11", "synthese", PDF, (), False, False),
}

# Rows whose typeCode ASS_X04 (2024-02-23) does not map: their class is written, INFERRED.
EXPLICIT_CLASS = {"IDE-01", "MK-02", "SF-01", "DEN-02"}


@pytest.fixture(scope="module")
def national() -> Matrix:
    return load_matrix(region=None)


@pytest.fixture(scope="module")
def bretagne() -> Matrix:
    return load_matrix()


def _row(matrix: Matrix, row_id: str) -> MatrixRow:
    found = [row for row in matrix.rows if row.id == row_id]
    assert len(found) == 1, row_id
    return found[0]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


OVERLAY_HEADER = """\
[matrix]
name = "Test"
version = "0"
date = "2026-11-21"
provenance = "test"
"""


def _add_row(**fields: str) -> str:
    row = {
        "id": "T-01",
        "categories": '["IDE"]',
        "label": "Document de test",
        "aliases": '["document test"]',
        "type_code": "11506-3",
        "type_system": "LN",
        "classeur": "compte-rendu",
        "status": "INFERRED",
        "source": "test",
    }
    row.update(fields)
    body = "\n".join(
        f"{key} = {value}" if value.startswith("[") else f'{key} = "{value}"'
        for key, value in row.items()
    )
    return f"{OVERLAY_HEADER}\n[[add]]\n{body}\n"


# ─── the shipped matrices ─────────────────────────────────────────────────────────────────


def test_shipped_national_matrix_has_no_problem(national: Matrix) -> None:
    assert check_matrix(national) == []


def test_shipped_bretagne_matrix_has_no_problem(bretagne: Matrix) -> None:
    assert check_matrix(bretagne) == []
    assert bretagne.layers == ("national.toml (national)", "bretagne.toml (region bretagne)")
    assert "bretagne" in bretagne.version and "national" in bretagne.version


def test_row_ids_are_exactly_the_golden_table(national: Matrix) -> None:
    assert [row.id for row in national.rows] == list(GOLDEN)


@pytest.mark.parametrize("row_id", list(GOLDEN))
def test_golden_row(national: Matrix, row_id: str) -> None:
    row = _row(national, row_id)
    derived = class_of(row.type_code, row.type_system)
    class_code = derived.code if derived is not None else row.class_code
    got = (
        row.type_code,
        class_code,
        row.classeur,
        row.format_code,
        row.visibility,
        row.confirm_with_patient,
        row.auto_feed,
    )
    assert got == GOLDEN[row_id]


def test_class_code_is_derived_wherever_x04_knows_the_type(national: Matrix) -> None:
    for row in national.rows:
        derived = class_of(row.type_code, row.type_system)
        if row.id in EXPLICIT_CLASS:
            assert derived is None, row.id
            assert (row.class_code, row.class_status) == ("10", "INFERRED"), row.id
        else:
            assert derived is not None, row.id
            assert row.class_code is None, row.id  # never written: class_of() gives it
            assert row.class_status == "DERIVED", row.id


def test_type_systems_are_oids(national: Matrix) -> None:
    assert _row(national, "MG-01").type_system == "1.2.250.1.213.1.1.4.12"  # SYNTH, TRE_A05
    assert _row(national, "IDE-02").type_system == "2.16.840.1.113883.6.1"  # LOINC


def test_vaccination_note_must_be_structured(national: Matrix) -> None:
    for row_id in ("MG-20", "PHA-08a"):
        row = _row(national, row_id)
        assert row.structured_required and row.format_code == VAC_NOTE
    assert all(row.format_code != PDF for row in national.rows if row.structured_required)


def test_every_category_of_a3_has_rows(national: Matrix) -> None:
    counts = {key: len(national.rows_for(key)) for key in national.categories}
    assert set(counts) == {"MG", "SPE", "BIO", "RAD", "PHA", "IDE", "MK", "SF", "DEN", "ES"}
    assert all(counts.values()), counts
    assert len(national.classeurs) == 7


def test_bretagne_changes_only_its_documented_rows(national: Matrix, bretagne: Matrix) -> None:
    changed = {row.id for row in bretagne.rows if row != _row(national, row.id)}
    assert changed == {"IDE-02", "SPE-06"}
    assert [row.id for row in bretagne.rows] == [row.id for row in national.rows]


# ─── lookups ──────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "local_kind", ["CR SOINS INFIRMIERS", "cr-soins infirmiers", "Compte-rendu de soins"]
)
def test_alias_matching_ignores_case_accents_punctuation(national: Matrix, local_kind: str) -> None:
    row = national.row_for_kind("IDE", local_kind)
    assert row is not None and row.id == "IDE-02"


def test_row_for_kind_matches_id_and_label(national: Matrix) -> None:
    assert national.row_for_kind("IDE", "ide-02") is _row(national, "IDE-02")
    assert national.row_for_kind("IDE", "bilan de soins infirmiers (bsi)") is _row(
        national, "IDE-01"
    )
    assert national.row_for_kind("PHA", "Bilan médicamenteux") is _row(national, "PHA-03")
    assert national.row_for_kind("IDE", "ordonnance de soins inconnue") is None
    assert national.row_for_kind("IDE", "  ") is None


def test_row_for_kind_stays_within_the_category(national: Matrix) -> None:
    assert national.row_for_kind("IDE", "bilan") is _row(national, "IDE-01")
    assert national.row_for_kind("MK", "bilan") is _row(national, "MK-01")
    assert national.row_for_kind("IDE", "compte rendu opératoire") is None


def test_row_for_type_prefers_the_category_s_own_row(national: Matrix) -> None:
    assert national.row_for_type("PHA", "87273-9") is _row(national, "PHA-08a")
    assert national.row_for_type("MG", "87273-9") is _row(national, "MG-20")
    assert national.row_for_type("IDE", "57833-6") is _row(national, "IDE-06")
    assert national.row_for_type("IDE", "34874-8") is None


def test_normalize_label() -> None:
    assert normalize_label("  Compte-rendu d'Évaluation  ") == "compte rendu d evaluation"
    assert normalize_label("Bilan   œdème") == "bilan oedeme"
    assert normalize_label("CR_SOINS.infirmiers") == "cr soins infirmiers"


@pytest.mark.parametrize(
    ("profession", "specialty", "expected"),
    [
        ("60", "G15_60", "IDE"),
        ("10", "G15_10/SM54", "MG"),
        ("10", "G15_10/SM26", "MG"),
        ("10", "G15_10/SM04", "SPE"),  # cardiologie: a non-GP specialty
        ("10", "G15_10/SM44", "RAD"),
        ("10", "G15_10/SM03", "BIO"),
        ("21", "G15_21/A", "PHA"),
        ("21", "G15_21/G", "BIO"),  # pharmacien biologiste: specialty beats profession-only
        ("70", None, "MK"),
        ("50", "G15_50", "SF"),
        ("40", "G15_40", "DEN"),
        ("10", None, None),  # a doctor without specialty: no guess
        ("99", None, None),
    ],
)
def test_category_of(
    national: Matrix, profession: str, specialty: str | None, expected: str | None
) -> None:
    assert national.category_of(profession, specialty) == expected


# ─── overlays ─────────────────────────────────────────────────────────────────────────────


def test_override_changes_a_field_and_records_its_origin(tmp_path: Path) -> None:
    urps = _write(
        tmp_path,
        "urps.toml",
        OVERLAY_HEADER
        + '[[override]]\nid = "IDE-05"\nconfirm_with_patient = true\n'
        + 'aliases_add = ["relevé de glycémies"]\n',
    )
    matrix = load_matrix(extra_files=[urps])
    row = _row(matrix, "IDE-05")
    assert row.confirm_with_patient is True
    assert row.aliases[-1] == "relevé de glycémies"
    assert "national.toml" in row.origin and "urps.toml" in row.origin
    assert matrix.row_for_kind("IDE", "Relevé de glycémies") is row
    assert matrix.layers[-1] == "urps.toml (extra)"
    assert check_matrix(matrix) == []


def test_disable_removes_a_row() -> None:
    matrix = load_matrix(overrides=[{"disable": [{"id": "MG-11", "reason": "pas d'AAT"}]}])
    assert "MG-11" not in {row.id for row in matrix.rows}
    assert matrix.row_for_type("MG", "PRESC-AAT") is None


def test_add_row_records_its_origin(tmp_path: Path) -> None:
    matrix = load_matrix(extra_files=[_write(tmp_path, "urps.toml", _add_row())])
    row = _row(matrix, "T-01")
    assert row.origin.startswith("urps.toml")
    assert row.class_code is None and row.confidentiality == "N" and row.format_code == PDF
    assert check_matrix(matrix) == []


def test_practice_overrides_apply_last(tmp_path: Path) -> None:
    urps = _write(
        tmp_path,
        "urps.toml",
        OVERLAY_HEADER + '[[override]]\nid = "IDE-02"\npractice_setting = "MAD"\n',
    )
    practice = {"override": [{"id": "IDE-02", "practice_setting": "SAD"}]}
    matrix = load_matrix(extra_files=[urps], overrides=[practice])
    row = _row(matrix, "IDE-02")
    assert row.practice_setting == "SAD"
    assert row.origin.endswith("overrides[0] (practice) override (practice_setting)")
    # the Bretagne overlay came first and is still there
    assert "fiche de transmission" in row.aliases
    assert matrix.layers == (
        "national.toml (national)",
        "bretagne.toml (region bretagne)",
        "urps.toml (extra)",
        "overrides[0] (practice)",
    )


def test_unknown_region_is_refused() -> None:
    with pytest.raises(MatrixError) as err:
        load_matrix(region="atlantide")
    assert "bretagne" in err.value.problems[0].message_fr


# ─── broken matrices: each problem names the file, the row and the fix ───────────────────


def _only(problems: list[MatrixProblem], row_id: str) -> str:
    mine = [p for p in problems if p.row_id == row_id]
    assert len(mine) == 1, problems
    assert mine[0].file == "broken.toml"
    return mine[0].message_fr


def test_unknown_type_code(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "broken.toml",
        _add_row(type_code="99999-9", class_code="10", class_status="INFERRED"),
    )
    message = _only(check_matrix(load_matrix(extra_files=[path])), "T-01")
    assert "99999-9" in message and "JDV_J07" in message and "corrigez" in message


def test_class_mismatch(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", _add_row(class_code="11", class_status="INFERRED"))
    message = _only(check_matrix(load_matrix(extra_files=[path])), "T-01")
    assert "ASS_X04" in message and "supprimez class_code" in message


def test_class_written_where_x04_has_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", _add_row(class_code="10", class_status="INFERRED"))
    message = _only(check_matrix(load_matrix(extra_files=[path])), "T-01")
    assert "toujours déduite" in message


def test_missing_class_where_x04_has_none(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", _add_row(type_code="34120-6"))
    message = _only(check_matrix(load_matrix(extra_files=[path])), "T-01")
    assert "class_code" in message and "INFERRED" in message


def test_unknown_profession(tmp_path: Path) -> None:
    text = OVERLAY_HEADER + (
        '[categories.ORTHO]\nlabel_fr = "Orthophoniste"\nprofessions = ["99"]\n'
        'specialties = ["G15_91/XX"]\ndefault_practice_setting = "AMBULATOIRE"\n'
        'default_facility_type = "SA07"\n'
    )
    path = _write(tmp_path, "broken.toml", text)
    problems = check_matrix(load_matrix(extra_files=[path]))
    assert [p.file for p in problems] == ["broken.toml", "broken.toml"]
    assert {p.row_id for p in problems} == {"categories.ORTHO"}
    assert "profession « 99 » inconnue de TRE_G15" in problems[0].message_fr
    assert "JDV_J01" in problems[1].message_fr


def test_duplicate_alias_within_a_category(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", _add_row(aliases='["Fiche de soins"]'))
    message = _only(check_matrix(load_matrix(extra_files=[path])), "T-01")
    assert "IDE-02" in message and "fiche de soins" in message and "retirez-le" in message


def test_same_alias_in_different_categories_is_fine(tmp_path: Path) -> None:
    path = _write(tmp_path, "ok.toml", _add_row(categories='["ES"]', aliases='["fiche de soins"]'))
    assert check_matrix(load_matrix(extra_files=[path])) == []


def test_duplicate_row_id(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", _add_row(id="IDE-05", aliases='["autre"]'))
    problems = check_matrix(load_matrix(extra_files=[path]))
    assert any(
        p.row_id == "IDE-05" and "unique" in p.message_fr and p.file == "broken.toml"
        for p in problems
    )


def test_unknown_codes_in_a_row(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "broken.toml",
        _add_row(
            categories='["IDE", "XX"]',
            classeur="divers",
            confidentiality="Z",
            visibility='["CACHE"]',
            format="urn:inconnu",
            practice_setting="PLAGE",
            facility_type="SA99",
        ),
    )
    problems = [p.message_fr for p in check_matrix(load_matrix(extra_files=[path]))]
    for needle in ("« XX »", "« divers »", "« Z »", "« CACHE »", "urn:inconnu", "PLAGE", "SA99"):
        assert any(needle in m for m in problems), needle


def test_override_of_an_unknown_id(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "broken.toml", OVERLAY_HEADER + '[[override]]\nid = "IDE-99"\nlabel = "x"\n'
    )
    with pytest.raises(MatrixError) as err:
        load_matrix(extra_files=[path])
    (problem,) = err.value.problems
    assert (problem.file, problem.row_id) == ("broken.toml", "IDE-99")
    assert "vérifiez l'id" in problem.message_fr


def test_disable_of_an_unknown_id_from_the_practice() -> None:
    with pytest.raises(MatrixError) as err:
        load_matrix(overrides=[{"disable": [{"id": "NOPE"}]}])
    assert err.value.problems[0].file == "overrides[0]"
    assert err.value.problems[0].row_id == "NOPE"


def test_bad_toml_syntax(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", OVERLAY_HEADER + '[[override]]\nid = "IDE-02\n')
    with pytest.raises(MatrixError) as err:
        load_matrix(extra_files=[path])
    (problem,) = err.value.problems
    assert problem.file == "broken.toml"
    assert "ligne 7" in problem.message_fr and "Corrigez" in problem.message_fr
    assert "broken.toml" in str(err.value)


def test_missing_keys_and_wrong_types(tmp_path: Path) -> None:
    text = OVERLAY_HEADER + '[[add]]\nid = "T-02"\ncategories = "IDE"\nlabel = 3\n'
    with pytest.raises(MatrixError) as err:
        load_matrix(extra_files=[_write(tmp_path, "broken.toml", text)])
    messages = [p.message_fr for p in err.value.problems]
    assert all(p.row_id == "T-02" for p in err.value.problems)
    assert any("il manque le typeCode" in m for m in messages)


def test_wrong_types_are_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "broken.toml",
        _add_row().replace('categories = ["IDE"]', 'categories = "IDE"') + 'auto_feed = "oui"\n',
    )
    with pytest.raises(MatrixError) as err:
        load_matrix(extra_files=[path])
    messages = [p.message_fr for p in err.value.problems]
    assert any("« categories » doit être une liste" in m for m in messages)
    assert any("« auto_feed » doit valoir true ou false" in m for m in messages)


def test_unknown_key_in_an_override(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "broken.toml", OVERLAY_HEADER + '[[override]]\nid = "IDE-02"\nlibelle = "x"\n'
    )
    with pytest.raises(MatrixError) as err:
        load_matrix(extra_files=[path])
    assert "libelle" in err.value.problems[0].message_fr


def test_outside_value_sets_marker_goes_stale(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", _add_row() + 'outside_value_sets = ["type_code"]\n')
    message = _only(check_matrix(load_matrix(extra_files=[path])), "T-01")
    assert "retirez" in message and "outside_value_sets" in message
