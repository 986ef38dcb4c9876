"""The author's activity sector of an HL7 document (issue 7): HL7 v2 has no field for it, so the
channel's configuration (`[mllp] author_sector`) gives it, and it reaches the package sent to the
DMP (healthcareFacilityTypeCode of the document, contentTypeCode of the submission set).

A pharmacy's documents must say SA33 (pharmacie d'officine), not SA07 (cabinet individuel).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bridge import xds_ids as ids
from bridge.cda import build_cda
from bridge.classify import resolve
from bridge.domain import OID_SECTOR, Coded
from bridge.hl7v2 import ErrorCode, HL7Rejected, frame, parse_message
from bridge.jobs import Intake, Job
from bridge.packaging import MintedIds, Package, build_package
from bridge.sidecar import DocumentRequest, parse_sidecar
from connectors.mllp_server import MllpServer, MllpSettings
from connectors.software_credentials import SoftwareCredentials
from connectors.sqlite_store import SqliteStore
from mappings.matrix import Matrix
from mappings.matrix_load import load_matrix
from service.config import ConfigError, load_config
from tests.factories import make_clinical_document, make_document_codes
from tests.hl7.messages import doc_obx, encode, nurse_mdm, replace_segment, seg

PHARMACIST = seg("PRT", {
    2: "UC", 4: "SB^^participation",
    5: "810101010101^OFFICINE^Paul^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
    6: "21^Pharmacien^TRE_G15",
    8: "Pharmacie des Lilas^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^IDNST^^^499700366240007",
})
CONSULTATION = "93024-8"  # CR de consultation pharmaceutique (matrix row PHA-05)


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "file.sqlite3") as opened:
        yield opened


def pharmacy_message(control_id: str = "PHA-1") -> bytes:
    """An MDM^T02 of a pharmacist: a pharmaceutical consultation report, PDF in OBX."""
    segments = replace_segment(nurse_mdm(control_id), "PRT", PHARMACIST)
    segments = replace_segment(segments, "OBX", doc_obx(code=CONSULTATION))
    segments = replace_segment(segments, "OBR", seg("OBR", {
        1: "1", 4: f"{CONSULTATION}^CR de consultation pharmaceutique^LN",
        7: "20261121093000"}))
    segments = replace_segment(segments, "TXA", seg("TXA", {
        1: "1", 2: CONSULTATION, 3: "TEXT", 4: "20261121093000", 17: "AU"}))
    return encode(segments)


@contextlib.asynccontextmanager
async def mllp(store: SqliteStore, matrix: Matrix, **settings: str) -> AsyncIterator[int]:
    async def enqueue(intake: Intake) -> tuple[Job, bool]:
        return await asyncio.to_thread(store.enqueue, intake)

    server = MllpServer(enqueue, MllpSettings(port=0, **settings), matrix=matrix)
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop()


async def send(port: int, message: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame(message))
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\x1c\x0d"), 10)
    finally:
        writer.close()
        await writer.wait_closed()


def package_of(request: DocumentRequest, pdf: bytes, matrix: Matrix,
               credentials: SoftwareCredentials) -> Package:
    """The ITI-41 package the dispatcher would build for this request."""
    codes = resolve(matrix, request.author, kind=request.kind).codes
    return build_package(
        request, pdf, codes=codes,
        ids=MintedIds(uuid.uuid4(), uuid.uuid4(), uuid.uuid4()),
        now=dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC), source_id="1.2.250.1.999.1.1",
        certificate=credentials.signing_certificate, sign=credentials.sign)


def classification_codes(package: Package, scheme: str) -> set[str]:
    found = package.body.iter(f"{{{ids.NS_RIM}}}Classification")
    return {c.get("nodeRepresentation", "") for c in found
            if c.get("classificationScheme") == scheme}


@pytest.mark.parametrize(("settings", "sector"), [
    ({}, "SA07"),  # nothing configured: cabinet individuel, as a sidecar without "sector"
    ({"author_sector": "SA33"}, "SA33"),  # pharmacie d'officine
    ({"author_sector": "SA08"}, "SA08"),  # cabinet de groupe
])
async def test_the_configured_sector_reaches_the_package_sent_to_the_dmp(
        store: SqliteStore, matrix: Matrix, credentials: SoftwareCredentials,
        settings: dict[str, str], sector: str) -> None:
    async with mllp(store, matrix, **settings) as port:
        ack = await send(port, pharmacy_message())
    assert b"MSA|AA|PHA-1" in ack, ack

    [job] = store.list_jobs()
    request = parse_sidecar(store.metadata(job.id), file_name="job")
    assert request.author.sector_code == sector
    package = package_of(request, store.payload(job.id), matrix, credentials)
    assert classification_codes(package, ids.DE_HEALTHCARE_FACILITY_TYPE_CODE) == {sector}
    assert classification_codes(package, ids.SS_CONTENT_TYPE_CODE) == {sector}


def test_a_sector_the_cda_states_wins_over_the_configured_one(matrix: Matrix) -> None:
    group = Coded("SA08", "Cabinet de groupe", OID_SECTOR)  # CDA healthCareFacility code
    cda = build_cda(make_clinical_document(codes=make_document_codes(facility_type=group)))
    message = encode(replace_segment(nurse_mdm("C-1"), "OBX", doc_obx(cda)))

    document = parse_message(message, matrix=matrix, author_sector="SA33")

    assert document.request is not None
    assert document.request.author.sector_code == "SA08"
    assert json.loads(document.sidecar_json)["author"]["sector"] == "SA08"


def test_an_unknown_sector_is_refused_by_the_listener_settings() -> None:
    with pytest.raises(ValueError, match="SA99"):
        MllpSettings(author_sector="SA99")


def test_an_unknown_sector_given_to_the_parser_gets_ae_with_the_table_code(
        matrix: Matrix) -> None:
    with pytest.raises(HL7Rejected) as caught:
        parse_message(pharmacy_message(), matrix=matrix, author_sector="SA99")
    assert caught.value.error is ErrorCode.TABLE_VALUE
    assert "SA99" in caught.value.message_fr


@pytest.mark.parametrize(("line", "accepted"), [
    ('author_sector = "SA33"', True),
    ('author_sector = "SA99"', False),
    ('author_sector = "sa33"', False),
])
def test_the_configuration_checks_the_sector_against_the_value_set(
        tmp_path: Path, line: str, accepted: bool) -> None:
    path = tmp_path / "dmp-bridge.toml"
    path.write_text(f'[bridge]\nsource_id = "1.2.3"\n\n[mllp]\n{line}\n', encoding="utf-8")
    if accepted:
        assert load_config(path).mllp.author_sector == "SA33"
        return
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = caught.value.message_fr
    assert "mllp.author_sector" in message and "SA33 officine" in message
