"""The TOML configuration (service/config.py): what loads, and the French error for what does not.

Every refusal must name the key and say what to do, so the operator can fix the file alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import EXIT_CONFIG, main
from service.config import CONFIG_NAME, ConfigError, default_config_text, load_config

SOURCE_ID = "1.2.250.1.999.42"
WHAT_TO_DO = "Corrigez le fichier puis relancez."


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_NAME
    path.write_text(text, encoding="utf-8")
    return path


def config_with(folder: Path, old: str, new: str) -> Path:
    """The default configuration with one line changed."""
    text = default_config_text(SOURCE_ID)
    assert old in text
    return write_config(folder, text.replace(old, new, 1))


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.message_fr


def test_the_default_configuration_loads_with_its_documented_values(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, default_config_text(SOURCE_ID)))

    assert config.bridge.source_id == SOURCE_ID
    assert config.bridge.environment == "simulateur"
    assert config.dmp.max_rate_per_second == 4.0
    assert config.dmp.url == "https://127.0.0.1:8443/si-dmp-server/v2/services"
    assert config.intake.stability_seconds == 2.0
    assert config.credentials.mode == "etablissement"
    assert config.logging.level == "info"


def test_each_default_configuration_gets_its_own_source_id(tmp_path: Path) -> None:
    first = load_config(write_config(tmp_path / "a", default_config_text()))
    second = load_config(write_config(tmp_path / "b", default_config_text()))

    assert first.bridge.source_id.startswith("2.25.")
    assert first.bridge.source_id != second.bridge.source_id


def test_every_relative_path_resolves_against_the_configuration_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installation = tmp_path / "installation"
    path = write_config(installation, default_config_text(SOURCE_ID))
    monkeypatch.chdir(tmp_path)  # the working directory must not matter

    config = load_config(Path("installation") / CONFIG_NAME)

    base = installation.resolve()
    assert config.base_dir == base
    assert config.store_path == base / "donnees" / "file-attente.sqlite3"
    assert config.simulator_db_path == base / "donnees" / "simulateur.sqlite3"
    assert config.log_path == base / "donnees" / "journaux" / "dmp-bridge.jsonl"
    assert config.path(config.intake.folder) == base / "depot"
    configured = [config.dmp.server_ca, config.credentials.tls_cert, config.credentials.tls_key,
                  config.credentials.sign_cert, config.credentials.sign_key,
                  config.simulator.server_cert, config.simulator.server_key,
                  config.simulator.client_ca]
    for value in configured:
        assert config.path(value) == base / value
        assert config.path(value).parent == base / "pki"
    assert path.exists()


def test_an_absolute_path_is_kept_as_it_is(tmp_path: Path) -> None:
    elsewhere = tmp_path / "ailleurs" / "donnees"
    path = config_with(tmp_path / "installation", 'data_dir = "donnees"',
                       f"data_dir = '{elsewhere}'")

    assert load_config(path).store_path == elsewhere / "file-attente.sqlite3"


@pytest.mark.parametrize(
    ("old", "new", "key", "explanation"),
    [
        pytest.param(f'source_id = "{SOURCE_ID}"\n', "", "bridge.source_id",
                     "ajoutez cette clé", id="missing-key"),
        pytest.param("[logging]", "[logging]\ncouleur = true", "logging.couleur",
                     "cette clé n'existe pas : vérifiez son orthographe", id="unknown-key"),
        pytest.param("port = 8443", 'port = "huit"', "simulator.port",
                     "un nombre entier est attendu", id="wrong-type"),
        pytest.param("max_rate_per_second = 4.0", "max_rate_per_second = 6",
                     "dmp.max_rate_per_second",
                     "la valeur est trop grande — attendu : entre 0 et 5", id="rate-too-high"),
        pytest.param(f'source_id = "{SOURCE_ID}"', 'source_id = "cabinet-des-lilas"',
                     "bridge.source_id", "« dmp-bridge init » en crée un", id="bad-source-id"),
        pytest.param('level = "info"', 'level = "bavard"', "logging.level",
                     "debug, info, warning ou error", id="bad-level"),
    ],
)
def test_an_invalid_value_is_refused_naming_the_key_and_what_to_do(
        tmp_path: Path, old: str, new: str, key: str, explanation: str) -> None:
    message = config_error(config_with(tmp_path, old, new))

    assert f"clé « {key} »" in message
    assert explanation in message
    assert "est invalide" in message and WHAT_TO_DO in message


def test_the_value_read_is_shown_so_the_operator_finds_the_line(tmp_path: Path) -> None:
    message = config_error(config_with(tmp_path, "max_rate_per_second = 4.0",
                                       "max_rate_per_second = 6"))

    assert "(valeur lue : 6)" in message


def test_bad_toml_syntax_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = config_with(tmp_path, 'level = "info"', "level = info sans guillemets")

    message = config_error(path)

    assert "n'est pas un TOML valide" in message
    assert "Vérifiez les guillemets" in message
    assert str(path) in message


def test_a_missing_file_is_refused_saying_how_to_create_one(tmp_path: Path) -> None:
    message = config_error(tmp_path / "absent" / CONFIG_NAME)

    assert "est introuvable" in message
    assert "dmp-bridge init DOSSIER" in message and "--config" in message


def test_the_cli_prints_the_french_error_on_stderr_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = config_with(tmp_path, "max_rate_per_second = 4.0", "max_rate_per_second = 6")

    code = main(["status", "--config", str(bad)])

    assert code == EXIT_CONFIG == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("dmp-bridge : La configuration")
    assert "clé « dmp.max_rate_per_second »" in err
    assert WHAT_TO_DO in err


def test_retry_bounds_retention_and_lot_size_are_configurable(tmp_path: Path) -> None:
    from service.runner import retry_policy

    config = load_config(write_config(tmp_path, default_config_text(SOURCE_ID)))
    assert (config.dmp.retry_first_seconds, config.dmp.retry_max_seconds,
            config.dmp.retry_max_attempts, config.dmp.lot_max_documents) == (30.0, 3600.0, 48, 10)
    assert config.bridge.retention_days == 90
    policy = retry_policy(load_config(config_with(
        tmp_path / "b", "retry_max_attempts = 48", "retry_max_attempts = 5")))
    assert (policy.first_delay.total_seconds(), policy.max_delay.total_seconds(),
            policy.max_attempts) == (30.0, 3600.0, 5)


def test_a_retry_ceiling_below_the_first_delay_is_refused_in_french(tmp_path: Path) -> None:
    message = config_error(config_with(tmp_path, "retry_max_seconds = 3600.0",
                                       "retry_max_seconds = 10.0"))
    assert "dmp.retry_max_seconds doit être supérieur ou égal à dmp.retry_first_seconds" in message
    assert WHAT_TO_DO in message
