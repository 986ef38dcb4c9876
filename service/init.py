"""`dmp-bridge init DIR`: a commented configuration and the data folders, in one step."""

from __future__ import annotations

import os
from pathlib import Path

from connectors.folder_intake import FolderLayout
from service.api_token import ensure_token_file
from service.config import CONFIG_NAME, default_config_text, load_config
from service.test_pki import generate_test_pki


def init_installation(folder: Path, *, test_pki: bool, overwrite: bool) -> Path:
    """Create `folder/dmp-bridge.toml` (kept if present unless `overwrite`) and its folders."""
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / CONFIG_NAME
    if overwrite or not config_path.exists():
        tmp = config_path.with_suffix(".tmp")
        tmp.write_text(default_config_text(), encoding="utf-8")
        os.replace(tmp, config_path)
    config = load_config(config_path)
    data_dir = config.path(config.bridge.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    ensure_token_file(config.api_token_path)
    FolderLayout(config.path(config.intake.folder)).create()
    if test_pki:
        generate_test_pki(config.path(config.dmp.server_ca).parent)
    return config_path
