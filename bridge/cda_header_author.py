"""The author of a received CDA: the first author/assignedAuthor, with its RPPS (PS_IdNat "8" +
11 digits), specialty, structure and function; None without a RPPS.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.cda_header_xml import attr, find, find_all, required_coded, text_of
from bridge.domain import OID_RPPS, OID_STRUCTURE, Author

_PS_IDNAT_RPPS = re.compile(r"^8([0-9]{11})$")
_PROFESSION = re.compile(r"^G15_([0-9]{2})(?:/|$)")


def read_author(root: Any, sector_code: str, problems: list[str]) -> Author | None:
    author = find(root, "author")
    assigned = find(author, "assignedAuthor")
    if assigned is None:
        problems.append("Auteur du document (author/assignedAuthor) absent.")
        return None
    ps_ids = [
        attr(i, "extension") or ""
        for i in find_all(assigned, "id")
        if attr(i, "root") == OID_RPPS
    ]
    rpps = next((m.group(1) for m in map(_PS_IDNAT_RPPS.match, ps_ids) if m), None)
    specialty = required_coded(find(assigned, "code"), "Spécialité de l'auteur", problems)
    organization = find(assigned, "representedOrganization")
    structure_id = next(
        (
            attr(i, "extension")
            for i in find_all(organization, "id")
            if attr(i, "root") == OID_STRUCTURE
        ),
        None,
    )
    if structure_id is None:
        problems.append(
            "Structure de l'auteur absente : representedOrganization/id avec la racine "
            f"{OID_STRUCTURE} (Struct_IdNat)."
        )
    if rpps is None:
        problems.append(
            "RPPS de l'auteur absent : assignedAuthor/id doit avoir la racine "
            f"{OID_RPPS} et l'extension « 8 » suivie des 11 chiffres du RPPS."
        )
        return None
    profession = _PROFESSION.match(specialty.code) if specialty else None
    name = find(assigned, "assignedPerson/name")
    return Author(
        rpps=rpps,
        family_name=text_of(find(name, "family")) or "",
        given_name=text_of(find(name, "given")) or "",
        profession_code=profession.group(1) if profession else "",
        specialty_code=specialty.code if specialty else "",
        specialty_display=specialty.display if specialty else "",
        structure_id=structure_id or "",
        structure_name=text_of(find(organization, "name")) or "",
        sector_code=sector_code,
        role_display=attr(find(author, "functionCode"), "displayName"),
    )
