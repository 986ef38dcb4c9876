"""The shipped CI-SIS value sets: every file loads, is well formed, and holds the known facts.

Only the determinism/freshness tests read ``../shared`` (the official files); they are skipped
where that folder is absent, since the project must not need it to run or to test.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from mappings.valuesets import (
    CONCEPT_MAPS,
    LOINC,
    TRE_A05_SYSTEM,
    VS,
    Concept,
    ConceptMap,
    ValueSet,
    ValueSetError,
    class_of,
    load_concept_map,
    load_value_set,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
SCRIPT = REPO_ROOT / "scripts" / "import_valuesets.py"
VALUE_SETS = [vs for vs in VS if vs not in CONCEPT_MAPS]
TRE_A07 = "1.2.250.1.213.1.1.4.13"


def _raw(vs: VS) -> dict[str, object]:
    resource = resources.files("mappings") / "valuesets" / f"{vs.value}.json"
    data: dict[str, object] = json.loads(resource.read_text(encoding="utf-8"))
    return data


# ── every file ───────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("vs", list(VS), ids=str)
def test_every_file_has_header_and_provenance(vs: VS) -> None:
    data = _raw(vs)
    assert data["name"] == vs.value
    for key in ("oid", "version", "date", "description"):
        assert isinstance(data[key], str) and data[key], key
    dt.date.fromisoformat(str(data["date"]))
    provenance = data["provenance"]
    assert isinstance(provenance, dict)
    assert provenance["derived_by"] == "scripts/import_valuesets.py"
    if "source" in provenance:  # hand transcription
        assert str(provenance["source"]).startswith("transcribed from shared/spec/")
    else:
        for key in ("repository", "path", "file_commit", "snapshot"):
            assert provenance[key], key
        assert len(str(provenance["file_commit"])) == 40


@pytest.mark.parametrize("vs", VALUE_SETS, ids=str)
def test_concepts_non_empty_sorted_unique(vs: VS) -> None:
    concepts = _raw(vs)["concepts"]
    assert isinstance(concepts, list) and concepts
    keys = [(c["system"], c["code"]) for c in concepts]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert all(c["display"] for c in concepts)
    value_set = load_value_set(vs)
    assert isinstance(value_set, ValueSet)
    assert value_set.name == vs.value and len(value_set.concepts) == len(concepts)


@pytest.mark.parametrize("vs", sorted(CONCEPT_MAPS), ids=str)
def test_concept_maps_sorted_and_load(vs: VS) -> None:
    pairs = _raw(vs)["pairs"]
    assert isinstance(pairs, list) and pairs
    keys = [
        (p["from"]["system"], p["from"]["code"], p["to"]["system"], p["to"]["code"]) for p in pairs
    ]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    concept_map = load_concept_map(vs)
    assert isinstance(concept_map, ConceptMap)
    assert len(concept_map.pairs) + sum(len(t) for t in concept_map.ambiguous.values()) == len(
        pairs
    )


def test_files_and_enum_agree() -> None:
    shipped = {
        p.name.removesuffix(".json")
        for p in resources.files("mappings").joinpath("valuesets").iterdir()
        if p.name.endswith(".json")
    }
    assert shipped == {vs.value for vs in VS}


def test_wrong_loader_is_refused_in_french() -> None:
    with pytest.raises(ValueSetError, match=r"ASS_X04-CorrespondanceType-Classe-CISIS\.json"):
        load_value_set(VS.TYPE_TO_CLASS)
    with pytest.raises(ValueSetError, match="table de correspondance"):
        load_concept_map(VS.TYPE_CODE)


# ── known facts ──────────────────────────────────────────────────────────────────────────────


def test_type_codes() -> None:
    j07 = load_value_set(VS.TYPE_CODE)
    assert j07.oid == "1.2.250.1.213.1.1.5.471"
    assert j07.get("11506-3", LOINC) == Concept(
        "11506-3", "CR ou fiche de suivi de soins par auxiliaire médical", LOINC
    )
    consultation = j07.get("11488-4")
    assert consultation is not None
    assert consultation.display == "CR ou fiche de consultation ou de visite"
    assert j07.contains("SYNTH", TRE_A05_SYSTEM)
    assert not j07.contains("SYNTH", LOINC)
    assert not j07.contains("96163-1")
    assert {"11506-3", "11488-4", "SYNTH"} <= j07.codes()


def test_class_is_derived_from_type() -> None:
    def code(concept: Concept | None) -> str | None:
        return None if concept is None else concept.code

    assert code(class_of("11506-3", LOINC)) == "10"
    assert code(class_of("87273-9")) == "52"
    assert code(class_of("SYNTH", "1.2.250.1.213.1.1.4.12")) == "11"
    assert class_of("96163-1") is None  # Bilan de soins infirmiers: not in X04 2024
    assert class_of("SYNTH") is None  # the system matters
    vaccination = class_of("87273-9")
    assert vaccination is not None
    assert vaccination.system == "1.2.250.1.213.1.1.4.1"
    assert vaccination.display == "Certificat, déclaration"


def test_x04_keeps_the_odd_signature_pair_and_classes_are_known() -> None:
    x04 = load_concept_map(VS.TYPE_TO_CLASS)
    signature = x04.target("E1762", "ASTM")
    assert signature is not None
    assert (signature.code, signature.system) == ("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN")
    classes = load_value_set(VS.CLASS_CODE)
    for target in x04.pairs.values():
        assert classes.contains(target.code, target.system), target


def test_class_codes() -> None:
    a03 = load_value_set(VS.CLASS_CODE)
    assert a03.oid == "1.2.250.1.213.1.1.4.1"
    expected = {"10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95", "99"}
    assert {c.code for c in a03.concepts.values() if c.system == a03.oid} == expected
    assert a03.get("10") == Concept("10", "Compte rendu", "1.2.250.1.213.1.1.4.1")
    assert a03.contains("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN")


def test_professions_and_specialties() -> None:
    g15 = load_value_set(VS.PROFESSION)
    nurse = g15.get("60")
    assert nurse is not None and nurse.display == "Infirmier"
    assert nurse.system == "1.2.250.1.71.1.2.7"
    assert not g15.contains("93")  # created retired by ANS: listed under "retired" only
    assert load_value_set(VS.AUTHOR_SPECIALTY).contains("G15_60", "1.2.250.1.213.1.1.4.5")
    assert load_value_set(VS.SAVOIR_FAIRE).contains("SM54")


def test_structures_and_settings() -> None:
    sa07 = load_value_set(VS.FACILITY_TYPE).get("SA07")
    assert sa07 is not None and sa07.display == "Cabinet individuel"
    assert load_value_set(VS.PRACTICE_SETTING).contains("AMBULATOIRE", "1.2.250.1.213.1.1.4.9")
    assert load_value_set(VS.SECTOR).contains("SA33")


def test_visibility_flags() -> None:
    a07 = load_value_set(VS.VISIBILITY)
    assert a07.oid == TRE_A07
    assert a07.codes() == {"MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"}
    j08 = load_value_set(VS.CONFIDENTIALITY)
    for concept in a07.concepts.values():
        assert j08.get(concept.code, TRE_A07) == concept
    assert load_value_set(VS.HL7_CONFIDENTIALITY).contains("N", "2.16.840.1.113883.5.25")


def test_format_codes() -> None:
    j60 = load_value_set(VS.FORMAT_CODE)
    assert j60.oid == "1.2.250.1.213.1.1.5.8"
    pdf = j60.get("urn:ihe:iti:xds-sd:pdf:2008")
    assert pdf is not None and pdf.system == "1.3.6.1.4.1.19376.1.2.3"
    assert j60.contains("urn:asip:ci-sis:vac-note:2021", "1.2.250.1.213.1.1.4.2.282")
    assert j60.contains("http://www.w3.org/2000/09/xmldsig#", "URN")
    a11 = load_concept_map(VS.MODEL_TO_FORMAT)
    xds_sd = ("1.3.6.1.4.1.19376.1.2.20", "1.2.250.1.213.1.1.4.329")
    assert a11.target(*xds_sd) is None  # five formatCodes: never pick one silently
    assert {t.code for t in a11.targets(*xds_sd)} >= {
        "urn:ihe:iti:xds-sd:pdf:2008",
        "urn:ihe:iti:xds-sd:text:2008",
    }
    for targets in a11.ambiguous.values():
        for target in targets:
            assert j60.contains(target.code, target.system)


def test_other_sets() -> None:
    assert load_value_set(VS.REFERENCE_ID_TYPES).contains("urn:ihe:iti:xds:2013:accession")
    assert load_value_set(VS.SUBJECT_ROLE).contains("10", "1.2.250.1.71.1.2.7")
    assert load_value_set(VS.FUNCTION_CODE).concepts
    assert load_value_set(VS.TYPE_A05).contains("PRESC-INF")
    assert load_value_set(VS.LOINC_TYPES).contains("11506-3", LOINC)


def test_value_set_lookup_semantics() -> None:
    first = Concept("X", "premier", "1.1")
    second = Concept("X", "second", "1.2")
    value_set = ValueSet(
        "test", "1", "1", dt.date(2024, 1, 1), {("X", "1.1"): first, ("X", "1.2"): second}
    )
    assert value_set.get("X") is first  # ambiguous across systems: the first in file order
    assert value_set.get("X", "1.2") is second
    assert value_set.get("X", "9.9") is None
    assert not value_set.contains("Y")
    assert value_set.codes() == frozenset({"X"})


# ── the import script (needs the official files) ─────────────────────────────────────────────


@pytest.mark.skipif(not SHARED.exists(), reason="../shared (official files) not available")
def test_script_is_deterministic_and_shipped_files_are_current(tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        subprocess.run(
            [sys.executable, str(SCRIPT), "--shared", str(SHARED), "--out", str(out)],
            check=True,
            capture_output=True,
        )
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]
    shipped = REPO_ROOT / "mappings" / "valuesets"
    assert outputs[0] == {p.name: p.read_bytes() for p in sorted(shipped.iterdir())}
