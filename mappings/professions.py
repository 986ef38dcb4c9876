"""The authorSpecialty (JDV_J01) used when the source names a profession but no specialty.

Most of our users' documents come from a GP, a pharmacist running an officine, or a profession
with a single J01 code, so those are the defaults; a sidecar can always name another code.
"""

from __future__ import annotations

_DEFAULTS = {
    "10": "G15_10/SM54",  # médecin → médecine générale
    "21": "G15_21/A",  # pharmacien → titulaire d'officine
}


def default_specialty(profession_code: str) -> str:
    """The JDV_J01 code for a TRE_G15 profession code when the source gives none."""
    return _DEFAULTS.get(profession_code, f"G15_{profession_code}")
