"""A document that is a plain text (an HPRIM Net letter without PDF) goes to the DMP as a CDA R2
N1 whose body is that text: `nonXMLBody/text mediaType="text/plain" representation="B64"`, with
the XDS-SD formatCode of a text body (`urn:ihe:iti:xds-sd:text:2008`, in JDV_J60).

The sidecar says so (`document.body_format = "text"`); the payload is the UTF-8 text, passed
through unchanged; a text that is not UTF-8, too large, empty or not plain is refused with a
French reason, at intake and again before sending.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from bridge import xds_ids as ids
from bridge.cda import MAX_TEXT_BYTES, build_cda, check_text_body
from bridge.classify import FORMAT_PDF, FORMAT_TEXT, resolve
from bridge.domain import Coded
from bridge.errors import BridgeError, IntakeRejected, MappingRejected
from bridge.folder_formats import FolderFormat, FolderProfile, hprim_net_body, read_file_set
from bridge.hprim import parse_hprim_net
from bridge.identity_gate import Target
from bridge.jobs import Intake, Job, JobState
from bridge.lot_keys import with_lot_keys
from bridge.packaging import MintedIds, Package, build_package
from bridge.schemas import SchemaName, validation_errors
from bridge.sidecar import DocumentRequest, parse_sidecar
from bridge.vihf import Software
from bridge.xmlsafe import parse_xml
from connectors.dmp_client import DmpClient
from connectors.software_credentials import SoftwareCredentials
from connectors.sqlite_store import SqliteStore
from mappings.matrix import Matrix
from mappings.matrix_load import load_matrix
from mappings.valuesets import VS, load_value_set
from service.dispatcher import Dispatcher, Gatekeeping
from service.preview import preview
from service.sample_pdf import make_pdf
from service.simulator.config import SimulatorConfig
from service.simulator.server import RunningSimulator, start_simulator
from service.test_pki import pki_layout
from tests.factories import (
    PARIS_WINTER,
    make_author,
    make_clinical_document,
    make_document_codes,
    make_sidecar_dict,
)
from tests.test_packaging import with_inline_documents

HL7 = {"hl7": "urn:hl7-org:v3"}
XDS = {"rim": ids.NS_RIM}
LETTER = ("Cher confrère,\r\nJ'ai vu Mme PAT-TROIS ce jour : fièvre à 38,5 °C, "
          "auscultation normale.\r\nTraitement symptomatique ; à revoir si besoin.\r\n"
          "Bien confraternellement.").encode()
NOW = dt.datetime(2024, 1, 15, 10, 35, 0, tzinfo=PARIS_WINTER)
IDS = MintedIds(uuid.UUID("3a1c0b7e-7f1a-4b7e-9f42-1d2b3c4d5e6f"),
                uuid.UUID("1b2b4c6d-8e0f-4a1b-8c3d-5e7f9a1b3c5d"),
                uuid.UUID("c0e1d2c3-b4a5-4968-8776-655443322110"))
SOFTWARE = Software("dmp-bridge", "test", "2.25.1", "TEST")
DOCTOR = {"rpps": "10101010101", "family_name": "MARTIN", "given_name": "Claire",
          "profession": "10", "structure_id": "499700366240007",
          "structure_name": "Cabinet médical des Lilas"}


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


def text_sidecar(**document: Any) -> dict[str, Any]:
    sidecar = make_sidecar_dict()
    sidecar["document"]["body_format"] = "text"
    sidecar["document"].update(document)
    return sidecar


def request_of(sidecar: dict[str, Any]) -> DocumentRequest:
    return parse_sidecar(json.dumps(sidecar).encode(), file_name="lettre.json")


def text_package(credentials: SoftwareCredentials, matrix: Matrix, text: bytes) -> Package:
    request = request_of(text_sidecar())
    codes = resolve(matrix, request.author, kind=request.kind, text_body=True).codes
    return build_package(request, text, codes=codes, ids=IDS, now=NOW, source_id="2.25.1",
                         certificate=credentials.signing_certificate, sign=credentials.sign)


def body_of(cda: bytes) -> etree._Element:
    found = parse_xml(cda, huge_text=True).xpath(
        "/hl7:ClinicalDocument/hl7:component/hl7:nonXMLBody/hl7:text", namespaces=HL7)
    assert isinstance(found, list) and len(found) == 1
    element = found[0]
    assert isinstance(element, etree._Element)
    return element


def hprim_letter(body: str, *, coded: str = "") -> bytes:
    """A synthetic HPRIM Net letter (12-line header), Latin-1 with CR-LF line ends."""
    header = ["PAT0001", "PAT-TROIS", "DOMINIQUE", "1 rue des Tests", "", "51100 REIMS",
              "28/03/1979", "", "REF-42", "15/01/2024", "MEDGEN01  Dr MARTIN Claire",
              "MEDGEN02  Dr DURAND Paul"]
    return "\r\n".join([*header, body, *([coded] if coded else []),
                        "****FINFICHIER****", ""]).encode("latin-1")


# --------------------------------------------------------------------------------- the sidecar

def test_a_sidecar_says_the_payload_is_a_pdf_unless_it_says_text() -> None:
    assert request_of(make_sidecar_dict()).body_format == "pdf"
    assert request_of(text_sidecar()).body_format == "text"


def test_an_unknown_body_format_is_refused_naming_the_key_and_the_values() -> None:
    with pytest.raises(IntakeRejected) as refused:
        request_of(text_sidecar(body_format="docx"))
    assert refused.value.code == "SIDECAR_INVALID"
    assert "document.body_format" in refused.value.message_fr
    assert "'pdf' ou 'text'" in refused.value.message_fr


# ------------------------------------------------------------------------ what a text may be

@pytest.mark.parametrize(("data", "code", "said"), [
    ("Fièvre à 38,5 °C".encode("latin-1"), "TEXT_NOT_UTF8", "n'est pas encodé en UTF-8"),
    (b"a" * (MAX_TEXT_BYTES + 1), "TEXT_TOO_LARGE", "dépasse 1024 Ko"),
    (make_pdf(["Compte rendu"]), "TEXT_IS_PDF", "c'est un PDF"),
    (b"\xef\xbb\xbf \r\n", "TEXT_EMPTY", "il est vide"),
    (b"Lettre\x00\x01binaire", "TEXT_NOT_PLAIN", "caractères de contrôle"),
])
def test_a_text_body_that_cannot_go_is_refused_with_a_french_reason(
        data: bytes, code: str, said: str) -> None:
    with pytest.raises(IntakeRejected) as refused:
        check_text_body(data, file_name="lettre.hpm")
    assert refused.value.code == code
    assert said in refused.value.message_fr and "lettre.hpm" in refused.value.message_fr


def test_a_utf8_letter_of_the_largest_size_is_a_text_body() -> None:
    check_text_body(LETTER, file_name="lettre.hpm")
    check_text_body(b"\tA\x0c" + b"a" * (MAX_TEXT_BYTES - 3), file_name="long.txt")


# -------------------------------------------------------------------------- the matrix's codes

def test_a_text_gets_the_text_format_code_of_jdv_j60_instead_of_the_pdf_one(
        matrix: Matrix) -> None:
    author = make_author()
    as_pdf = resolve(matrix, author, kind="cr-soins-infirmiers")
    as_text = resolve(matrix, author, kind="cr-soins-infirmiers", text_body=True)
    j60 = load_value_set(VS.FORMAT_CODE).get(FORMAT_TEXT)
    assert j60 is not None
    assert as_pdf.codes.format_code.code == FORMAT_PDF
    assert as_text.codes.format_code == Coded(FORMAT_TEXT, j60.display, j60.system)
    assert as_text.codes.format_code.system == "1.3.6.1.4.1.19376.1.2.3"
    assert as_text.codes.type_code == as_pdf.codes.type_code  # only the format changes
    assert any(FORMAT_TEXT in line and "texte brut" in line for line in as_text.trace)


def test_a_text_of_a_document_the_dmp_wants_structured_is_held_like_a_pdf(
        matrix: Matrix) -> None:
    held = resolve(matrix, make_author(), kind="vaccination", text_body=True)
    assert [h.code for h in held.holds] == ["STRUCTURED_REQUIRED"]
    assert "pas en texte brut" in held.holds[0].message_fr


def test_a_text_cannot_take_a_format_that_is_neither_pdf_nor_structured(
        matrix: Matrix) -> None:
    # A regional row that would send a DICOM manifest without asking for a structured model.
    lenient = dataclasses.replace(matrix, rows=tuple(
        dataclasses.replace(row, structured_required=False) if row.id == "RAD-02" else row
        for row in matrix.rows))
    radiologist = make_author(profession_code="10", specialty_code="G15_10/SM44")
    with pytest.raises(MappingRejected) as refused:
        resolve(lenient, radiologist, kind="KOS", text_body=True)
    assert refused.value.code == "TEXT_FORMAT_UNSUPPORTED"
    assert "texte brut" in refused.value.message_fr


# ---------------------------------------------------------------------------- the CDA and XDS

def test_the_cda_body_of_a_text_format_is_the_text_in_base64_as_text_plain() -> None:
    codes = make_document_codes(format_code=Coded(FORMAT_TEXT, "texte brut",
                                                  "1.3.6.1.4.1.19376.1.2.3"))
    cda = build_cda(make_clinical_document(codes=codes, pdf=LETTER))
    body = body_of(cda)
    assert dict(body.attrib) == {"mediaType": "text/plain", "representation": "B64"}
    assert base64.b64decode(body.text or "", validate=True) == LETTER
    assert validation_errors(parse_xml(cda, huge_text=True), SchemaName.CDA) == []


def test_a_text_request_becomes_a_package_valid_for_cda_and_xds_b(
        credentials: SoftwareCredentials, matrix: Matrix) -> None:
    package = text_package(credentials, matrix, LETTER)
    cda = package.parts[0][1]

    assert validation_errors(parse_xml(cda, huge_text=True), SchemaName.CDA) == []
    assert base64.b64decode(body_of(cda).text or "") == LETTER  # byte for byte
    assert body_of(cda).get("mediaType") == "text/plain"
    assert validation_errors(with_inline_documents(package), SchemaName.XDS_B) == []
    [entry] = [e for e in package.body.iter(f"{{{ids.NS_RIM}}}ExtrinsicObject")
               if e.get("id") == "Document01"]
    assert entry.get("mimeType") == "text/xml"  # the XDS document is the CDA
    formats = [c.get("nodeRepresentation") for c in entry.iter(f"{{{ids.NS_RIM}}}Classification")
               if c.get("classificationScheme") == ids.DE_FORMAT_CODE]
    assert formats == [FORMAT_TEXT]


# --------------------------------------------------------------------------------- HPRIM Net

def test_a_text_only_hprim_net_letter_gives_its_text_as_a_utf8_body() -> None:
    data = hprim_letter("Cher confrère,\r\nfièvre &agrave; 38,5 °C<br />à revoir.\x1a")
    letter = parse_hprim_net(data, file_name="lettre.hpm")

    body = hprim_net_body("lettre.hpm", letter, {})

    assert (body.body_format, body.label) == ("text", "lettre.hpm")
    assert body.payload == "Cher confrère,\r\nfièvre à 38,5 °C\r\nà revoir.".encode()
    check_text_body(body.payload, file_name="lettre.hpm")


def test_a_letter_with_its_pdf_still_sends_the_pdf() -> None:
    report = make_pdf(["Compte rendu"])
    letter = parse_hprim_net(hprim_letter("Voir PDF."), file_name="lettre.hpm")

    body = hprim_net_body("lettre.hpm", letter, {"LETTRE.PDF": report})

    assert (body.body_format, body.payload, body.label) == ("pdf", report, "LETTRE.PDF")


def test_a_letter_with_coded_results_and_no_pdf_asks_for_the_pdf() -> None:
    coded = "****LAB****\r\nRES|HEMOGLOBINE|HB|N|14.8|g/dL\r\n****FIN****"
    letter = parse_hprim_net(hprim_letter("Résultats :", coded=coded), file_name="bio.hpm")

    with pytest.raises(BridgeError) as refused:
        hprim_net_body("bio.hpm", letter, {})

    assert refused.value.code == "HPRIM_RESULTS_NEED_PDF"
    assert "bio.pdf" in refused.value.message_fr


def test_a_text_only_letter_dropped_in_a_folder_still_stops_at_the_identity_gate(
        matrix: Matrix) -> None:
    with pytest.raises(BridgeError) as refused:
        read_file_set(FolderFormat.HPRIM_NET, "lettre.hpm", hprim_letter("Cher confrère."), {},
                      profile=FolderProfile(author=DOCTOR), matrix=matrix)
    assert refused.value.code == "IDENTITY_INCOMPLETE"
    assert "statut de l'identité" in refused.value.message_fr


def test_the_letter_s_body_and_a_qualified_sidecar_make_a_valid_text_package(
        credentials: SoftwareCredentials, matrix: Matrix) -> None:
    # What the folder sends once HPRIM identities can be qualified: its body, as it is.
    letter = parse_hprim_net(hprim_letter("Cher confrère,\r\nà revoir."), file_name="l.hpm")
    body = hprim_net_body("l.hpm", letter, {})

    package = text_package(credentials, matrix, body.payload)

    assert base64.b64decode(body_of(package.parts[0][1]).text or "") == body.payload


def test_the_preview_of_a_text_only_letter_shows_its_text_body_and_why_it_stops(
        tmp_path: Path, matrix: Matrix) -> None:
    path = tmp_path / "lettre.hpm"
    path.write_bytes(hprim_letter("Cher confrère,\r\nà revoir."))

    shown = preview(path, matrix, Target.SIMULATOR, FolderProfile(author=DOCTOR))

    assert shown.verdict == "refusé"
    assert "sans PDF, envoyée comme texte" in shown.text
    assert "mediaType text/plain" in shown.text and FORMAT_TEXT in shown.text
    assert "statut de l'identité" in shown.text  # the identity gate, as the intake says


def test_the_preview_of_a_pair_checks_the_payload_as_its_sidecar_says(
        tmp_path: Path, matrix: Matrix) -> None:
    (tmp_path / "cr.pdf").write_bytes(make_pdf(["Compte rendu"]))
    (tmp_path / "cr.json").write_text(json.dumps(text_sidecar()), encoding="utf-8")

    shown = preview(tmp_path / "cr.json", matrix, Target.SIMULATOR)

    assert shown.verdict == "refusé" and "c'est un PDF, pas un texte" in shown.text


# ---------------------------------------------------------------- through the real dispatcher

@dataclass
class Rig:
    store: SqliteStore
    simulator: RunningSimulator
    dispatcher: Dispatcher

    def queue(self, key: str, payload: bytes, sidecar: dict[str, Any]) -> Job:
        job, _ = self.store.enqueue(Intake("folder", f"{key}.hpm", key, payload,
                                           json.dumps(sidecar).encode(),
                                           dt.datetime.now(dt.UTC)))
        return job

    def job(self, job_id: int) -> Job:
        job = self.store.get(job_id)
        assert job is not None
        return job


@pytest.fixture
async def rig(tmp_path: Path, pki_dir: Path, credentials: SoftwareCredentials,
              matrix: Matrix) -> AsyncIterator[Rig]:
    pki = pki_layout(pki_dir)
    simulator = await start_simulator(SimulatorConfig(
        db_path=tmp_path / "sim.sqlite3", ca_cert=pki.ca_cert, server_cert=pki.server.cert,
        server_key=pki.server.key))
    store = SqliteStore.open(tmp_path / "queue.sqlite3")
    client = DmpClient(simulator.base_url, credentials.ssl_context(), timeout_seconds=10,
                       rate_per_second=5)
    dispatcher = Dispatcher(store, client, credentials, source_id="2.25.1", software=SOFTWARE,
                            gate=Gatekeeping(matrix))
    try:
        yield Rig(store, simulator, dispatcher)
    finally:
        await client.close()
        store.close()
        await simulator.close()


async def test_the_simulator_registers_a_text_letter_sent_by_the_dispatcher(rig: Rig) -> None:
    job = rig.queue("lettre", LETTER, text_sidecar())

    assert await rig.dispatcher.run_once()

    assert (rig.job(job.id).state, rig.job(job.id).attempts) == (JobState.DONE, 1)
    [stored] = [d for d in rig.simulator.store.documents() if not d.is_signature]
    assert (stored.mime_type, stored.format_code) == ("text/xml", FORMAT_TEXT)
    assert body_of(stored.content).get("mediaType") == "text/plain"
    assert base64.b64decode(body_of(stored.content).text or "") == LETTER


async def test_a_text_and_a_pdf_of_the_same_patient_travel_in_one_lot_each_as_itself(
        rig: Rig) -> None:
    report = make_pdf(["Compte rendu de soins infirmiers"])
    for key, payload, sidecar in (("lettre", LETTER, text_sidecar()),
                                  ("cr", report, make_sidecar_dict())):
        rig.store.enqueue(with_lot_keys(Intake("folder", key, key, payload,
                                               json.dumps(sidecar).encode(),
                                               dt.datetime.now(dt.UTC))))

    assert await rig.dispatcher.run_once()

    stored = [d for d in rig.simulator.store.documents() if not d.is_signature]
    assert len({d.submission_unique_id for d in stored}) == 1
    media = {d.format_code: body_of(d.content).get("mediaType") for d in stored}
    assert media == {FORMAT_TEXT: "text/plain", FORMAT_PDF: "application/pdf"}


async def test_a_text_that_is_not_utf8_is_refused_before_sending_with_a_french_reason(
        rig: Rig) -> None:
    job = rig.queue("latin1", "Fièvre à 38,5 °C".encode("latin-1"), text_sidecar())

    await rig.dispatcher.run_once()

    dead = rig.job(job.id)
    assert (dead.state, dead.last_error_code) == (JobState.DEAD, "TEXT_NOT_UTF8")
    assert "n'est pas encodé en UTF-8" in (dead.last_error_fr or "")
    assert rig.simulator.store.documents() == []  # nothing reached the DMP


async def test_an_oversized_text_is_refused_before_sending(rig: Rig) -> None:
    job = rig.queue("longue", b"a" * (MAX_TEXT_BYTES + 1), text_sidecar())

    await rig.dispatcher.run_once()

    dead = rig.job(job.id)
    assert (dead.state, dead.last_error_code) == (JobState.DEAD, "TEXT_TOO_LARGE")
    assert "Exportez ce document en PDF" in (dead.last_error_fr or "")
    assert rig.simulator.store.documents() == []
