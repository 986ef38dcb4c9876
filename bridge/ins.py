"""The INS matricule: a 13-character NIR followed by its 2-digit control key.

key = 97 − (NIR mod 97), where Corsican départements "2A" and "2B" count as 19 and 18
(DESIGN.md §5). A wrong key means a typing error in the practice software: the document must not
reach another patient's record.
"""

from __future__ import annotations

import re

from bridge.domain import Ins, InsOid
from bridge.errors import IdentityRejected

_MATRICULE = re.compile(r"^[12378][0-9]{2}[0-9]{2}(?:[0-9]{2}|2A|2B)[0-9]{6}[0-9]{2}$")


def nir_key(nir13: str) -> int:
    """The control key of a 13-character NIR (Corsica handled)."""
    numeric = nir13.upper().replace("2A", "19", 1).replace("2B", "18", 1)
    if len(numeric) != 13 or not numeric.isdigit():
        raise ValueError("a NIR has 13 characters, digits or 2A/2B")
    return 97 - (int(numeric) % 97)


def parse_ins(matricule: str, oid: str) -> Ins:
    """Check an INS matricule and its OID, or raise IdentityRejected saying what to fix."""
    value = matricule.strip().replace(" ", "").upper()
    if not _MATRICULE.match(value):
        raise IdentityRejected(
            "Le matricule INS doit comporter 15 caractères (13 pour le NIR, 2 pour la clé), "
            "sans espace. Vérifiez l'INS dans le dossier du patient.",
            code="INS_FORMAT",
            event="ins_format_invalid",
        )
    if nir_key(value[:13]) != int(value[13:]):
        raise IdentityRejected(
            "La clé du matricule INS est fausse : l'INS a probablement été mal saisi. "
            "Récupérez-le à nouveau par le téléservice INSi avant de renvoyer le document.",
            code="INS_KEY",
            event="ins_key_mismatch",
        )
    try:
        ins_oid = InsOid(oid.strip())
    except ValueError:
        raise IdentityRejected(
            "L'OID de l'INS n'est pas reconnu : attendu 1.2.250.1.213.1.4.8 (INS-NIR), "
            ".9 (INS-NIA), ou .10/.11 pour les identités de test.",
            code="INS_OID",
            event="ins_oid_unknown",
        ) from None
    return Ins(matricule=value, oid=ins_oid)
