"""`dmp-bridge preview` on every folder format, and the [[intake.profiles]] configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.folder_formats import FolderFormat, FolderProfile
from bridge.identity_gate import Target
from mappings.matrix import Matrix
from mappings.matrix_load import load_matrix
from service.config import ConfigError, default_config_text, load_config
from service.preview import folder_profile, preview, profile_for
from tests.intake_formats.builders import hl7_file, hprim_net, hprim_sante, pdf, xdm_zip

DOCTOR = {"rpps": "10101010101", "family_name": "MARTIN", "given_name": "Claire",
          "profession": "10", "structure_id": "499700366240007",
          "structure_name": "Cabinet médical des Lilas"}
AUTHOR_TOML = "\n".join(f'{k} = "{v}"' for k, v in DOCTOR.items())


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


def test_an_xdm_archive_is_previewed_document_by_document(tmp_path: Path,
                                                          matrix: Matrix) -> None:
    path = tmp_path / "envoi.zip"
    path.write_bytes(xdm_zip())

    shown = preview(path, matrix, Target.SIMULATOR, FolderProfile(cda_identity_qualified=True))

    assert shown.verdict == "envoyé"
    assert "archive IHE XDM" in shown.text and "DOC0001.XML" in shown.text
    assert "CDA transmis tel quel" in shown.text and "11506-3" in shown.text


def test_an_xdm_archive_without_the_profiles_word_is_refused_in_the_preview(
        tmp_path: Path, matrix: Matrix) -> None:
    path = tmp_path / "envoi.zip"
    path.write_bytes(xdm_zip())

    shown = preview(path, matrix, Target.SIMULATOR)

    assert shown.verdict == "refusé"
    assert "cda_identity_qualified" in shown.text


def test_an_hprim_sante_file_with_its_pdf_shows_why_it_cannot_go(tmp_path: Path,
                                                                 matrix: Matrix) -> None:
    (tmp_path / "echo-0042.hpr").write_bytes(hprim_sante())
    (tmp_path / "echo-0042-cr.pdf").write_bytes(pdf())

    shown = preview(tmp_path / "echo-0042.hpr", matrix, Target.SIMULATOR,
                    FolderProfile(author=DOCTOR))

    assert shown.verdict == "refusé"
    assert "fichier HPRIM Santé" in shown.text and "l'INS" in shown.text


def test_an_hprim_net_letter_and_an_hl7_text_file_are_recognised(tmp_path: Path,
                                                                 matrix: Matrix) -> None:
    (tmp_path / "bio.hpm").write_bytes(hprim_net())
    (tmp_path / "message.txt").write_bytes(hl7_file())

    letter = preview(tmp_path / "bio.hpm", matrix, Target.SIMULATOR)
    message = preview(tmp_path / "message.txt", matrix, Target.SIMULATOR)

    assert "lettre HPRIM Net" in letter.text and letter.verdict == "refusé"
    assert "message HL7 v2" in message.text and message.verdict == "envoyé"


def write_config(tmp_path: Path, intake: str) -> Path:
    text = default_config_text("2.25.1").replace(
        '[intake]\n', f'[intake]\n{intake}\n', 1)
    path = tmp_path / "dmp-bridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_commented_template_still_loads_with_a_single_folder(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""))

    [main] = config.intake.folders()
    assert main.folder == Path("depot") and main.author is None


def test_profiles_give_their_folder_its_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    path.write_text(path.read_text(encoding="utf-8") + (
        '\n[[intake.profiles]]\nfolder = "depot-labo"\nformat = "hprim-sante"\n'
        'kind = "11502-2"\nignore = ["*.log"]\n[intake.profiles.author]\n' + AUTHOR_TOML
        + '\n[[intake.profiles]]\nfolder = "depot"\ncda_identity_qualified = true\n'),
        encoding="utf-8")
    config = load_config(path)

    main, labo = config.intake.folders()
    assert main.cda_identity_qualified and labo.folder == Path("depot-labo")
    profile = folder_profile(labo)
    assert profile.expected_format is FolderFormat.HPRIM_SANTE
    assert profile.author is not None and profile.author["rpps"] == "10101010101"
    (tmp_path / "depot-labo").mkdir()
    assert profile_for(config, tmp_path / "depot-labo" / "x.hpr").kind == "11502-2"
    assert profile_for(config, tmp_path / "ailleurs" / "x.hpr") == FolderProfile()


@pytest.mark.parametrize(("profile", "words"), [
    ('folder = "d"\n[intake.profiles.author]\nrpps = "123"', "auteur par défaut est invalide"),
    ('folder = "d"\nidentity_from_filename = true', "filename_pattern"),
    ('folder = "d"\nidentity_from_filename = true\nfilename_pattern = "(?P<age>[0-9]+)"',
     "groupes inconnus"),
    ('folder = "d"\nformat = "docx"', "intake.profiles.0.format"),
])
def test_a_wrong_profile_stops_the_start_with_a_french_reason(tmp_path: Path, profile: str,
                                                              words: str) -> None:
    path = write_config(tmp_path, "")
    path.write_text(path.read_text(encoding="utf-8") + f"\n[[intake.profiles]]\n{profile}\n",
                    encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert words in caught.value.message_fr


def test_two_profiles_for_one_folder_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    path.write_text(path.read_text(encoding="utf-8")
                    + '\n[[intake.profiles]]\nfolder = "d"\n[[intake.profiles]]\nfolder = "d"\n',
                    encoding="utf-8")

    with pytest.raises(ConfigError, match="deux profils"):
        load_config(path)
