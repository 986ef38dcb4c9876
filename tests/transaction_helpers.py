"""Shared values for the transaction tests: a document request and packages built from it."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
from typing import Any

from lxml import etree

from bridge.packaging import LotDocument
from bridge.sidecar import DocumentRequest
from tests.factories import TINY_PDF, make_author, make_document_codes, make_patient

XOP_INCLUDE = "{http://www.w3.org/2004/08/xop/include}Include"
NOW = dt.datetime(2026, 3, 2, 9, 15, tzinfo=dt.UTC)


def make_request(**overrides: Any) -> DocumentRequest:
    request = DocumentRequest(
        patient=make_patient(),
        author=make_author(),
        kind="cr-soins-infirmiers",
        title="Compte rendu de soins infirmiers",
        date=dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    )
    return dataclasses.replace(request, **overrides)


def make_lot_document(**overrides: Any) -> LotDocument:
    document = LotDocument(
        request=overrides.pop("request", None) or make_request(),
        pdf=TINY_PDF,
        codes=make_document_codes(),
        document_id=uuid.uuid4(),
    )
    return dataclasses.replace(document, **overrides)


def inline_xop(body: etree._Element, parts: dict[str, bytes]) -> etree._Element:
    """The XOP infoset: each xop:Include replaced by the base64 of its part, for schema checks."""
    copy = etree.fromstring(etree.tostring(body))
    for include in list(copy.iter(XOP_INCLUDE)):
        parent = include.getparent()
        assert parent is not None
        parent.remove(include)
        parent.text = base64.b64encode(parts[include.get("href", "")[4:]]).decode()
    return copy
