"""ERRORS.md lists exactly the codes the simulator can emit."""

from __future__ import annotations

import re
from pathlib import Path

import service.simulator
from service.simulator.problems import ALL_ERROR_CODES

DOC = Path(service.simulator.__file__).parent / "ERRORS.md"


def test_errors_md_lists_every_code() -> None:
    listed = set(re.findall(r"^\| `([A-Za-z0-9_]+)` \|", DOC.read_text(encoding="utf-8"), re.M))
    assert listed == set(ALL_ERROR_CODES)
