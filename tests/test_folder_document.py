"""What an export-folder pair must satisfy before it is queued: a real PDF, a valid sidecar,
and a document kind the feeding matrix knows for this author."""

from __future__ import annotations

import json

import pytest

from bridge.errors import BridgeError
from bridge.folder_document import accept_pair
from mappings.matrix_load import load_matrix
from service.sample_pdf import make_pdf
from tests.factories import make_sidecar_dict

PDF = make_pdf(["Fiche de soins"])
MATRIX = load_matrix()


def sidecar(kind: str, profession: str = "60") -> bytes:
    data = make_sidecar_dict()
    data["document"]["kind"] = kind
    data["author"]["profession"] = profession
    data["author"]["specialty"] = None
    return json.dumps(data).encode()


@pytest.mark.parametrize("label", ["CR soins infirmiers", "fiche de soins",
                                   "COMPTE RENDU DE SOINS", "11506-3"])
def test_a_nurse_may_send_a_care_report_under_its_usual_names(label: str) -> None:
    request = accept_pair(PDF, sidecar(label), pdf_name="a.pdf", sidecar_name="a.json",
                          matrix=MATRIX)
    assert request.kind == label


def test_a_kind_the_matrix_does_not_give_this_profession_is_refused_with_the_choices() -> None:
    with pytest.raises(BridgeError) as caught:
        accept_pair(PDF, sidecar("CR d'imagerie médicale"), pdf_name="a.pdf",
                    sidecar_name="a.json", matrix=MATRIX)
    assert caught.value.code == "KIND_UNKNOWN"
    message = caught.value.message_fr
    assert "« CR d'imagerie médicale »" in message
    assert "Bilan de soins infirmiers" in message  # what a nurse may send instead
    assert "URPS" in message


def test_without_a_matrix_only_the_files_are_checked() -> None:
    request = accept_pair(PDF, sidecar("n'importe quoi"), pdf_name="a.pdf",
                          sidecar_name="a.json", matrix=None)
    assert request.kind == "n'importe quoi"


def text_sidecar() -> bytes:
    data = json.loads(sidecar("CR soins infirmiers"))
    data["document"]["body_format"] = "text"
    return json.dumps(data).encode()


def test_a_pair_declaring_a_text_body_is_checked_as_text_at_intake() -> None:
    letter = b"Compte rendu de passage.\r\nPansement refait, cicatrice propre.\r\n"
    request = accept_pair(letter, text_sidecar(), pdf_name="a.txt", sidecar_name="a.json",
                          matrix=MATRIX)
    assert request.body_format == "text"
    with pytest.raises(BridgeError) as caught:  # a PDF is not a text body: refused now,
        accept_pair(PDF, text_sidecar(), pdf_name="a.pdf", sidecar_name="a.json",  # not later
                    matrix=MATRIX)
    assert caught.value.code == "TEXT_IS_PDF"
