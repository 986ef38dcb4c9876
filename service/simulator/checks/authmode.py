"""Authentification_Mode against the TLS client certificate (spec §2.3, §8.1).

Decision (the real DMP rule is not public): a certificate is "CPS-like" when its subject DN
carries an RPPS PS_IdNat (`8` + 11 digits) as a standalone value (e.g. `CN=899700366240/…` or
`serialNumber=899700366240`); any other certificate of the CA is an establishment ("ORG")
certificate, whose subject carries the structure (O, OU = Struct_IdNat).

- DIRECTE ⇒ a CPS-like certificate, and the VIHF NameID is that RPPS PS_IdNat.
- INDIRECTE / INDIRECTE_RENFORCEE ⇒ an ORG certificate.
"""

from __future__ import annotations

import re

from service.simulator.invented_codes import InventedCode
from service.simulator.problems import Problem

RPPS_IN_DN = re.compile(r"(?<![0-9A-Za-z])(8\d{11})(?![0-9])")
CODE = InventedCode.MODE_AUTHENTIFICATION
LOC = "VIHF/Attribute[@Name='Authentification_Mode']"


def cps_id(dn: str | None) -> str | None:
    """The RPPS PS_IdNat a CPS-like certificate subject carries, else None."""
    found = RPPS_IN_DN.search(dn or "")
    return found.group(1) if found else None


def _direct(person: str | None, name_id: str | None) -> list[Problem]:
    if person is None:
        return [Problem(CODE, LOC, "Le mode DIRECTE exige une carte CPS (certificat TLS "
                                   "portant un identifiant RPPS).")]
    if name_id != person:
        return [Problem(CODE, "VIHF/Subject/NameID", "En mode DIRECTE, le NameID du VIHF doit "
                                                     "être l'identifiant de la carte CPS.")]
    return []


def check_auth_mode(mode: str | None, tls_dn: str | None, name_id: str | None) -> list[Problem]:
    """Problems when the VIHF mode does not match the kind of TLS client certificate."""
    if mode is None:
        return []  # the attribute check already refused it
    if not tls_dn:
        return [Problem(InventedCode.TLS_CERTIFICAT, "TLS",
                        "Un certificat client TLS est obligatoire.")]
    person = cps_id(tls_dn)
    if mode == "DIRECTE":
        return _direct(person, name_id)
    if person is not None:
        return [Problem(CODE, LOC, "Le mode INDIRECTE exige un certificat de structure (ORG), "
                                   "pas une carte CPS.")]
    return []
