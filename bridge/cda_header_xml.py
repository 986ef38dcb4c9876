"""Small readers over the elements of a CDA header (HL7 v3 namespace), shared by the readers of
each part of it (`bridge.cda_header_*`): find by a slash path, an attribute or the text of an
element, a code, a HL7 date. A missing element reads as None; a missing or invalid required
value is added, in French, to the caller's `problems`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bridge.cda import NS_HL7
from bridge.domain import Coded
from bridge.hl7_time import parse_hl7_ts

_NS = {"h": NS_HL7}


def _path(path: str) -> str:
    return "/".join(f"h:{step}" for step in path.split("/"))


def find(element: Any, path: str) -> Any:
    return None if element is None else element.find(_path(path), _NS)


def find_all(element: Any, path: str) -> list[Any]:
    return [] if element is None else list(element.findall(_path(path), _NS))


def attr(element: Any, name: str) -> str | None:
    if element is None:
        return None
    value = element.get(name)
    text = "" if value is None else str(value).strip()
    return text or None


def text_of(element: Any) -> str | None:
    if element is None:
        return None
    text = " ".join(str(element.xpath("string()")).split())  # comments excluded
    return text or None


def coded_of(element: Any) -> Coded | None:
    code = attr(element, "code")
    if code is None:
        return None
    return Coded(code, attr(element, "displayName") or "", attr(element, "codeSystem") or "")


def required_coded(element: Any, what: str, problems: list[str]) -> Coded | None:
    coded = coded_of(element)
    if coded is None:
        problems.append(f"{what} : code absent.")
    elif not coded.display or not coded.system:
        problems.append(
            f"{what} : le libellé (displayName) et le système (codeSystem) sont requis."
        )
    return coded


def read_time(
    element: Any, what: str, problems: list[str], *, required: bool
) -> dt.datetime | None:
    value = attr(element, "value")
    if value is None:
        if required:
            problems.append(f"{what} : date absente.")
        return None
    try:
        return parse_hl7_ts(value)
    except ValueError:
        problems.append(
            f"{what} : la date « {value} » n'est pas au format HL7 AAAAMMJJ[hhmm[ss]][+hhmm]."
        )
        return None
