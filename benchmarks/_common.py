"""Shared helpers of the benchmark scripts: realistic inputs, temp dirs, and the result line.

Each script prints its figures for a person, then one `BENCH {json}` line per measurement that
`run_all.py` turns into the Markdown table of the README's performance section.

Importing this module puts the project root on `sys.path`, so the scripts (run as
`.venv/bin/python benchmarks/NAME.py`) can use `tests.factories` like the test suite does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Words for the text of the synthetic PDFs: varied enough that the content does not compress to
# nothing (a real scanned or printed report does not either).
_WORDS = (
    "patient", "soins", "pansement", "injection", "surveillance", "tension", "glycémie",
    "douleur", "plaie", "traitement", "prescription", "infirmier", "domicile", "passage", "matin",
    "soir", "constantes", "poids", "température", "saturation", "observation", "évolution",
    "favorable", "cicatrisation", "retrait", "fils", "insuline", "dextro", "perfusion", "sonde",
    "prélèvement", "sanguin", "bilan", "transmission", "médecin",
)

PDF_TARGET_BYTES = 100 * 1024


def make_pdf_100k(seed: int, size: int = PDF_TARGET_BYTES) -> bytes:
    """A one-page PDF of about `size` bytes made by `service.sample_pdf.make_pdf`, with enough
    pseudo-random lines of text to reach the size (it passes `bridge.pdf.check_pdf`)."""
    from bridge.pdf import check_pdf
    from service.sample_pdf import make_pdf

    rng = random.Random(seed)
    lines = [f"Compte rendu de soins no {seed}"]
    # Each line costs ~ its length + 8 bytes in the content stream ("(…) Tj T*\n").
    approx = 600
    while approx < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(10))
        lines.append(line)
        approx += len(line) + 8
    pdf = make_pdf(lines)
    check_pdf(pdf, file_name=f"bench-{seed}.pdf")
    return pdf


def sidecar_bytes() -> bytes:
    """A valid sidecar for the test nurse and the test patient (tests.factories)."""
    from tests.factories import make_sidecar_dict

    return json.dumps(make_sidecar_dict(), ensure_ascii=False).encode("utf-8")


def folder_key(name: str, pdf: bytes, sidecar: bytes) -> str:
    """The idempotency key the folder connector computes for a pair."""
    return hashlib.sha256(
        b"folder\0" + name.encode() + b"\0" + hashlib.sha256(pdf).digest()
        + hashlib.sha256(sidecar).digest()
    ).hexdigest()


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def temp_dir_on_project_disk(prefix: str) -> Iterator[Path]:
    """A temporary directory on the same file system as the project (fsync costs differ per
    device): the system temp dir when it is on the same device, else one under the project."""
    project_dev = os.stat(ROOT).st_dev
    base: str | None = None
    if os.stat(tempfile.gettempdir()).st_dev != project_dev:
        base = str(ROOT)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=base) as name:
        path = Path(name)
        assert os.stat(path).st_dev == project_dev
        yield path


def report(name: str, metric: str, value: float, unit: str, target: float | None, *,
           higher_is_better: bool, note: str = "") -> None:
    """Print one measurement against its target (None: no target, figure for information),
    and the machine-readable line for run_all."""
    u = f" {unit}" if unit else ""
    sign = "≥" if higher_is_better else "≤"
    if target is None:
        ratio, meets = None, None
        print(f"  {metric}: {value:.4g}{u}  (no target; for information)")
    else:
        ratio = value / target
        meets = value >= target if higher_is_better else value <= target
        print(f"  {metric}: {value:.4g}{u}  (target {sign} {target:g}{u};"
              f" measured/target = {ratio:.3g}; {'within' if meets else 'OUTSIDE'} target)")
    print("BENCH " + json.dumps({
        "script": name, "metric": metric, "value": value, "unit": unit, "target": target,
        "direction": sign, "ratio": ratio, "meets": meets, "note": note,
    }, ensure_ascii=False))
