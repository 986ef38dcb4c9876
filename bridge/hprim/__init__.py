"""HPRIM: the two families legacy lab and letter software still write (spec B.2).

- HPRIM Santé 2.x: `H|…` … `L|` records (`bridge.hprim.sante`);
- HPRIM Net / Médecins: a 12-line text header, the letter, an optional coded block
  (`bridge.hprim.net`).

Pure: bytes in, values out; every refusal is an IntakeRejected with a precise French reason.
"""

from bridge.hprim.net import HprimNetLetter, HprimNetResult, parse_hprim_net
from bridge.hprim.sante import (
    HprimPatient,
    HprimResult,
    HprimSanteFile,
    looks_like_hprim_sante,
    parse_hprim_sante,
)

__all__ = [
    "HprimNetLetter",
    "HprimNetResult",
    "HprimPatient",
    "HprimResult",
    "HprimSanteFile",
    "looks_like_hprim_sante",
    "parse_hprim_net",
    "parse_hprim_sante",
]
