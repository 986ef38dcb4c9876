"""Accepting a PDF + sidecar pair from an export folder: everything that can be judged from the
files alone, before they are queued — so a bad pair goes back to the practice at once, in
`error/` with its reason, instead of failing later in the queue."""

from __future__ import annotations

from bridge.cda import check_text_body
from bridge.classify import find_row
from bridge.pdf import check_pdf
from bridge.sidecar import DocumentRequest, parse_sidecar
from mappings.matrix import Matrix


def accept_pair(pdf: bytes, sidecar: bytes, *, pdf_name: str, sidecar_name: str,
                matrix: Matrix | None) -> DocumentRequest:
    """The request the pair carries; raises a BridgeError (French reason) when it cannot go.

    With a matrix, the document kind must be one the matrix knows for this author; the
    identity gate is not applied here: an unqualified identity is queued and held, visibly, so
    the practice sees it waiting rather than bounced.
    """
    request = parse_sidecar(sidecar, file_name=sidecar_name)
    if request.body_format == "text":  # the sidecar says the "PDF" is a plain-text body
        check_text_body(pdf, file_name=pdf_name)
    else:
        check_pdf(pdf, file_name=pdf_name)
    if matrix is not None:
        find_row(matrix, request.author, request.kind)
    return request
