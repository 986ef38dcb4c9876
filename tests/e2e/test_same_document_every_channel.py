"""Issue 7 acceptance: the same document sent through every intake channel ends byte-identical
(same metadata, same CDA) in the DMP simulator.

One real installation, one real `dmp-bridge run` process (embedded simulator, export folder,
MLLP listener and local HTTP API all enabled), and ONE document — the same PDF bytes and the same
metadata — sent five times:

- the export folder, as `NAME.pdf` + `NAME.json`;
- the export folder, as an HL7 v2 ORU^R01 2.5 file (`NAME.hl7`, PDF in OBX ED base64);
- MLLP, as an HL7 v2 MDM^T02 2.6 message (PDF in OBX ED base64);
- the HTTP API, `POST /api/v1/documents` as JSON (`pdf_base64` + `metadata`);
- the HTTP API, the same POST as multipart/form-data (`file` + `metadata`).

Each document travels alone (`lot_max_documents = 1`), so each has its own submission set and
its own signature entry, as when a practice sends it at different times.

What "identical" means. Every channel mints its own identifiers, and the bridge and the registry
stamp their own times and ids; exactly these are replaced by placeholders, nothing else:
- the CDA's `id/@root` (= the DocumentEntry uniqueId) and `setId/@root`;
- the entryUUID (the ExtrinsicObject's id, and the classifiedObject / registryObject that point
  at it) and the id the registry gives each Classification and ExternalIdentifier;
- the uniqueId ExternalIdentifier's value;
- the `hash` and `size` slots: the registry computes them over the CDA bytes, which carry the
  minted ids. They are first checked to be the SHA-1 and the length of that channel's CDA, whose
  normalised bytes are then compared;
- on the signature entry only: `creationTime`, `serviceStartTime` and `serviceStopTime`, which are
  the bridge's submissionTime (checked equal to each other).
The CDA carries no packaging time (its effectiveTime, author/time and legalAuthenticator/time
are the document's date), so nothing else in it is normalised. After that, the CDA bytes, the
DocumentEntry as registered (every slot, classification, external identifier, title, author,
patient, the PDF inside the CDA) and the registry's columns (type, class, format, patient,
author, status) must be byte-identical across the five; the signature entries likewise. (The
CDA placeholders are put in its stored bytes; the ExtrinsicObject is parsed, normalised and
serialised again, after checking that this round trip gives back the registered bytes exactly.)
A difference fails with every differing field, by path, and the channel it came from.

Common subset of inputs: HL7 v2 has no place for the author's activity sector (the mapping
leaves the sidecar's default, SA07), for `confirm_with_patient`, for the patient's
`feeding_opposition` and `consultation_consent_date`, and its document title is the
OBX-3.2 text and its kind the OBX-3 LOINC code. So the sidecar states sector SA07, no
confirmation, no patient choices, the kind as the typeCode `11506-3`, and the title the HL7
messages carry in OBX-3.2. The visibility restrictions (MetaDMPMSS flags in HL7,
`document.visibility` in the sidecar) are given in the same order in both.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import pytest
from lxml import etree

from bridge import xds_ids
from bridge.hl7v2.mllp import frame
from bridge.jobs import Job, JobState
from bridge.xds_formats import hl7_escape
from bridge.xmlsafe import parse_xml
from connectors.sqlite_store import SqliteStore
from service.api_token import load_token
from service.config import load_config
from service.sample_pdf import make_pdf
from service.simulator.storage import SimulatorStore, StoredDocument
from tests.e2e.conftest import Installation, free_port, wait_for
from tests.hl7.messages import encode, msh, seg

# ------------------------------------------------------------------ the one document, its inputs

PDF = make_pdf(["Compte rendu de soins infirmiers", "Pansement & soins, 15/07/2026"])

INS = "279035121518989"
INS_OID = "1.2.250.1.213.1.4.10"  # test INS-NIR
BIRTH_NAME = "PAT-TROIS"
GIVEN_NAMES = ["DOMINIQUE", "MARIE-LOUISE"]
USED_NAME = "ÉPOUSE-TROIS"
BIRTH_DATE, BIRTH_DATE_HL7 = "1979-03-28", "19790328"
BIRTHPLACE = "51215"

RPPS = "10101010101"
AUTHOR_FAMILY, AUTHOR_GIVEN = "SOIGNANTE", "Hélène"
PROFESSION, SPECIALTY = "60", "G15_60"
STRUCTURE_ID, STRUCTURE_NAME = "499700366240007", "Cabinet infirmier des Lilas"

TYPE_CODE = "11506-3"
TITLE = "Soins infirmiers à domicile — pansement & surveillance"
DATE, DATE_HL7 = "2026-07-15T14:05:00+02:00", "20260715140500"  # Paris wall clock in HL7
VISIBILITY = ["INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"]

SIDECAR: dict[str, object] = {
    "patient": {
        "ins": INS, "ins_oid": INS_OID, "identity_status": "QUAL",
        "birth_family_name": BIRTH_NAME, "given_names": GIVEN_NAMES,
        "used_family_name": USED_NAME, "birth_date": BIRTH_DATE, "sex": "F",
        "birthplace_code": BIRTHPLACE,
    },
    "document": {"kind": TYPE_CODE, "title": TITLE, "date": DATE, "visibility": VISIBILITY},
    "author": {
        "rpps": RPPS, "family_name": AUTHOR_FAMILY, "given_name": AUTHOR_GIVEN,
        "profession": PROFESSION, "specialty": SPECIALTY, "structure_id": STRUCTURE_ID,
        "structure_name": STRUCTURE_NAME, "sector": "SA07",
    },
}


def _pid() -> str:
    given = " ".join(GIVEN_NAMES)
    return seg("PID", {
        3: f"{INS}^^^ASIP-SANTE-INS-NIR&{INS_OID}&ISO^INS",
        5: f"{BIRTH_NAME}^{GIVEN_NAMES[0]}^{given}^^^^L~{USED_NAME}^{GIVEN_NAMES[0]}^^^^^D",
        7: BIRTH_DATE_HL7, 8: "F", 11: f"^^^^^^BDL^^{BIRTHPLACE}", 32: "QUAL",
    })


def _prt_sender() -> str:
    return seg("PRT", {
        2: "UC", 4: "SB^^participation",
        5: f"8{RPPS}^{AUTHOR_FAMILY}^{AUTHOR_GIVEN}^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO"
           "^D^^^IDNPS",
        6: f"{SPECIALTY}^Infirmier^JDV_J01",
        8: f"{hl7_escape(STRUCTURE_NAME)}^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^IDNST^^^"
           f"{STRUCTURE_ID}",
    })


def _document_obx() -> str:
    data = base64.b64encode(PDF).decode("ascii")
    return seg("OBX", {1: "1", 2: "ED", 3: f"{TYPE_CODE}^{hl7_escape(TITLE)}^LN",
                       5: f"^application^pdf^Base64^{data}", 11: "F"})


def _flags(first: int, value_type: str) -> list[str]:
    """MetaDMPMSS flags in the profile's order: the two restrictions of VISIBILITY, for the DMP."""
    answers = [("MASQUE_PS", "N"), ("INVISIBLE_PATIENT", "Y"), ("INVISIBLE_REP_LEGAUX", "Y"),
               ("DESTDMP", "Y")]
    return [seg("OBX", {1: str(n), 2: value_type, 3: f"{code}^{code}^MetaDMPMSS",
                        5: f"{answer}^^expandedYes-NoIndicator", 11: "F"})
            for n, (code, answer) in enumerate(answers, start=first)]


def mdm_t02(control_id: str) -> bytes:
    """The document as an MDM^T02 2.6 message (date in TXA-4)."""
    title = f"{TYPE_CODE}^{hl7_escape(TITLE)}^LN"
    return encode([
        msh(control_id, type_="MDM^T02^MDM_T02", version="2.6"),
        seg("EVN", {2: DATE_HL7}),
        _pid(),
        seg("PV1", {1: "1", 2: "O"}),
        seg("ORC", {1: "NW"}),
        seg("OBR", {1: "1", 4: title, 7: DATE_HL7}),
        seg("TXA", {1: "1", 2: TYPE_CODE, 3: "TEXT", 4: DATE_HL7, 17: "AU"}),
        _document_obx(),
        _prt_sender(),
        *_flags(2, "CWE"),
    ])


def oru_r01(control_id: str) -> bytes:
    """The document as an ORU^R01 2.5 message (no TXA: the date is OBR-7)."""
    return encode([
        msh(control_id, type_="ORU^R01^ORU_R01", version="2.5"),
        _pid(),
        seg("PV1", {1: "1", 2: "O"}),
        seg("ORC", {1: "NW"}),
        seg("OBR", {1: "1", 4: f"{TYPE_CODE}^{hl7_escape(TITLE)}^LN", 7: DATE_HL7}),
        _document_obx(),
        _prt_sender(),
        *_flags(2, "CE"),
    ])


# --------------------------------------------------------------------------------- the channels

FOLDER_PAIR = "folder pdf+json"
FOLDER_HL7 = "folder .hl7 ORU^R01"
MLLP = "mllp MDM^T02"
HTTP_JSON = "http json"
HTTP_MULTIPART = "http multipart"
CHANNELS = (FOLDER_PAIR, FOLDER_HL7, MLLP, HTTP_JSON, HTTP_MULTIPART)
PAIR_STEM, HL7_FILE = "soins-paire", "soins-oru.hl7"


@pytest.fixture
def installation(installation: Installation) -> Installation:
    """The e2e installation with every channel open (MLLP and HTTP on free ports), one
    document per submission set."""
    text = installation.config_path.read_text(encoding="utf-8")
    for old, new in (
        ("enabled = false\nport = 2575", f"enabled = true\nport = {free_port()}"),
        ("enabled = false\nport = 8787", f"enabled = true\nport = {free_port()}"),
        ("lot_max_documents = 10", "lot_max_documents = 1"),
    ):
        assert old in text, f"the configuration template no longer contains {old!r}"
        text = text.replace(old, new)
    installation.config_path.write_text(text, encoding="utf-8")
    return Installation(installation.config_path, load_config(installation.config_path))


def send_mllp(port: int, message: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(frame(message))
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def post_document(port: int, token: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/api/v1/documents", body=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": content_type,
            "Idempotency-Key": str(uuid.uuid4())})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def multipart_body(pdf: bytes, metadata: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = ((b'name="file"; filename="soins.pdf"', b"application/pdf", pdf),
             (b'name="metadata"', b"application/json", metadata))
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; " + disposition
        + b"\r\nContent-Type: " + media + b"\r\n\r\n" + data + b"\r\n"
        for disposition, media, data in parts)
    return body + b"--" + boundary.encode() + b"--\r\n", f"multipart/form-data; boundary={boundary}"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def send_everywhere(inst: Installation) -> dict[int, str]:
    """Send the document through the five channels; the HTTP jobs' ids → their channel."""
    mllp_port, http_port = inst.config.mllp.port, inst.config.http.port
    wait_for(lambda: listening(mllp_port) and listening(http_port), timeout=30,
             what="the MLLP listener and the HTTP API")
    inst.drop(PAIR_STEM, SIDECAR, pdf=PDF)
    (inst.inbox / HL7_FILE).write_bytes(oru_r01("SAME-ORU-1"))
    ack = send_mllp(mllp_port, mdm_t02("SAME-MDM-1"))
    assert b"MSA|AA|SAME-MDM-1" in ack, ack
    token = load_token(inst.config.api_token_path)
    metadata = json.dumps(SIDECAR, ensure_ascii=False).encode("utf-8")
    http_jobs = {}
    as_json = json.dumps({"pdf_base64": base64.b64encode(PDF).decode("ascii"),
                          "metadata": SIDECAR}).encode("utf-8")
    for channel, (body, content_type) in (
            (HTTP_JSON, (as_json, "application/json")),
            (HTTP_MULTIPART, multipart_body(PDF, metadata))):
        status, answer = post_document(http_port, token, body, content_type)
        assert status == 202, (channel, answer)
        http_jobs[int(json.loads(answer)["id"])] = channel
    return http_jobs


def channel_of(job: Job, http_jobs: dict[int, str]) -> str:
    if job.channel == "mllp":
        return MLLP
    if job.channel == "http":
        return http_jobs[job.id]
    assert job.channel == "folder", job.channel
    return FOLDER_HL7 if job.source_ref == HL7_FILE else FOLDER_PAIR


def all_done(inst: Installation) -> bool:
    """True once every channel's job is done; fails at once, with the reason, on a refusal."""
    refused = sorted((inst.inbox / "error").glob("*.reason.txt"))
    assert not refused, refused[0].read_text(encoding="utf-8")
    jobs = cast(list[Job], inst.jobs())
    for job in jobs:
        assert job.state not in (JobState.DEAD, JobState.HELD, JobState.CORRUPT), (
            job.channel, job.state, job.last_error_code, job.last_error_fr)
    return len(jobs) == len(CHANNELS) and all(j.state is JobState.DONE for j in jobs)


# ------------------------------------------------------------------------------ normalisation

ENTRY_UUID = "{entryUUID}"
REGISTRY_ID = "{registry id}"
UNIQUE_ID = "{document uniqueId}"
SET_ID = "{CDA setId}"
CDA_HASH, CDA_SIZE = "{sha1 of the CDA}", "{size of the CDA}"
SUBMISSION_TIME = "{submissionTime}"
SIGNATURE_TIMES = ("creationTime", "serviceStartTime", "serviceStopTime")
RIM = xds_ids.NS_RIM
HL7V3 = "urn:hl7-org:v3"


@dataclass(frozen=True)
class Registered:
    """One channel's document as the simulator holds it, minted values replaced."""

    cda: bytes
    metadata: bytes
    signature_metadata: bytes
    fields: dict[str, str]  # every compared value, by a readable path


# Classification and identification schemes by their bridge.xds_ids names, for readable paths.
SCHEMES = {value: name for name, value in vars(xds_ids).items()
           if name.startswith(("DE_", "SS_")) and isinstance(value, str)}


def _key(element: etree._Element) -> str:
    tag = str(etree.QName(element).localname)
    for attribute in ("name", "classificationScheme", "identificationScheme"):
        value = element.get(attribute)
        if value:
            return f"{tag}[{SCHEMES.get(value, value)}]"
    return tag


def flatten(element: etree._Element, path: str) -> Iterator[tuple[str, str]]:
    """(path, value) for every attribute and text of the tree; same-key siblings numbered."""
    for name, value in element.attrib.items():
        yield f"{path}/@{etree.QName(name).localname}", value
    if element.text and element.text.strip():
        yield f"{path}/text()", element.text
    seen: dict[str, int] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        key = _key(child)
        seen[key] = seen.get(key, 0) + 1
        yield from flatten(child, f"{path}/{key}#{seen[key]}")


def _normalised_entry(doc: StoredDocument, times: tuple[str, ...] = ()) -> etree._Element:
    """The registered ExtrinsicObject with the registry's and the bridge's minted values
    replaced; the hash and size slots are first checked against the stored content."""
    entry = parse_xml(doc.metadata_xml)
    assert etree.tostring(entry) == doc.metadata_xml  # the round trip is byte-exact
    assert entry.get("id") == doc.entry_uuid
    entry.set("id", ENTRY_UUID)
    for child in entry.iter(f"{{{RIM}}}Classification", f"{{{RIM}}}ExternalIdentifier"):
        child.set("id", REGISTRY_ID)
        for attribute in ("classifiedObject", "registryObject"):
            if child.get(attribute) is not None:
                assert child.get(attribute) == doc.entry_uuid
                child.set(attribute, ENTRY_UUID)
        if child.get("identificationScheme") == xds_ids.DE_UNIQUE_ID:
            assert child.get("value") == doc.unique_id
            child.set("value", UNIQUE_ID)
    expected = {"hash": (hashlib.sha1(doc.content).hexdigest(), CDA_HASH),
                "size": (str(len(doc.content)), CDA_SIZE)}
    stamped = set()
    for slot in entry.findall(f"{{{RIM}}}Slot"):
        values = slot.findall(f"{{{RIM}}}ValueList/{{{RIM}}}Value")
        name = slot.get("name", "")
        if name in expected:
            assert [v.text for v in values] == [expected[name][0]], name
            values[0].text = expected[name][1]
        elif name in times:
            stamped.add(tuple(v.text for v in values))
            values[0].text = SUBMISSION_TIME
    assert len(stamped) <= 1, f"the signature's times are not one submissionTime: {stamped}"
    return entry


def _normalised_cda(doc: StoredDocument) -> bytes:
    """The CDA bytes with its id and setId replaced; its PDF must be the one sent."""
    cda = parse_xml(doc.content, huge_text=True)
    assert cda.findtext(f"{{{HL7V3}}}component/{{{HL7V3}}}nonXMLBody/{{{HL7V3}}}text") == (
        base64.b64encode(PDF).decode("ascii")), "the PDF inside the CDA is not the one sent"
    minted = ((f"{{{HL7V3}}}id", UNIQUE_ID), (f"{{{HL7V3}}}setId", SET_ID))
    data = doc.content
    for tag, placeholder in minted:
        root = cda.find(tag)
        assert root is not None and root.get("root"), tag
        if tag.endswith("}id"):
            assert root.get("root") == doc.unique_id
        needle = f'root="{root.get("root")}"'.encode()
        assert data.count(needle) == 1, (tag, data.count(needle))
        data = data.replace(needle, f'root="{placeholder}"'.encode())
    return data


def registered(doc: StoredDocument, signature: StoredDocument) -> Registered:
    entry = _normalised_entry(doc)
    signature_entry = _normalised_entry(signature, SIGNATURE_TIMES)
    cda = _normalised_cda(doc)
    columns = {f"registry/{name}": str(getattr(doc, name)) for name in (
        "patient_id", "status", "mime_type", "type_code", "class_code", "format_code",
        "author_id", "is_signature", "version")}
    fields = {
        **columns,
        **dict(flatten(entry, "entry")),
        **dict(flatten(signature_entry, "signature")),
        **dict(flatten(parse_xml(cda, huge_text=True), "cda")),
    }
    return Registered(cda, etree.tostring(entry), etree.tostring(signature_entry), fields)


def differences(reference: Registered, other: Registered) -> list[str]:
    def short(value: str | None) -> str:
        return "absent" if value is None else repr(value if len(value) < 90 else value[:87] + "…")

    keys = list(dict.fromkeys([*reference.fields, *other.fields]))
    return [f"{key}: {short(reference.fields.get(key))} ≠ {short(other.fields.get(key))}"
            for key in keys if reference.fields.get(key) != other.fields.get(key)]


# ----------------------------------------------------------------------------------- the test

def test_the_same_document_is_registered_identically_whatever_the_channel(
        installation: Installation, bridge_process: subprocess.Popen[bytes]) -> None:
    http_jobs = send_everywhere(installation)
    wait_for(lambda: all_done(installation), timeout=180, what="the five documents to be done")

    with SqliteStore.open(installation.config.store_path) as store:
        jobs = list(store.list_jobs(limit=100))
    simulator = SimulatorStore(installation.config.simulator_db_path)
    try:
        stored = simulator.documents()
    finally:
        simulator.close()
    documents = {d.unique_id: d for d in stored if not d.is_signature}
    signatures = {d.submission_unique_id: d for d in stored if d.is_signature}
    assert len(documents) == len(signatures) == len(CHANNELS), "one entry per channel, no more"
    by_channel: dict[str, Registered] = {}
    for job in jobs:
        document = documents[job.document_unique_id or ""]
        by_channel[channel_of(job, http_jobs)] = registered(
            document, signatures[document.submission_unique_id])
    assert sorted(by_channel) == sorted(CHANNELS)
    # Each channel hands the store the PDF's hash it computed for its key (hashed once per
    # intake): it must be the hash of the PDF, which the dispatcher checks before sending.
    assert {job.payload_sha256 for job in jobs} == {hashlib.sha256(PDF).hexdigest()}

    reference = by_channel[FOLDER_PAIR]
    report = {channel: lines for channel, found in by_channel.items()
              if (lines := differences(reference, found))}
    if report:
        pytest.fail("\n".join(f"{channel} differs from {FOLDER_PAIR}:\n  " + "\n  ".join(lines)
                              for channel, lines in report.items()), pytrace=False)
    for channel, found in by_channel.items():
        assert found.cda == reference.cda, channel
        assert found.metadata == reference.metadata, channel
        assert found.signature_metadata == reference.signature_metadata, channel
    counts = {part: sum(1 for key in reference.fields if key.startswith(part))
              for part in ("registry/", "entry/", "signature/", "cda/")}
    print(f"{len(reference.fields)} fields compared across {len(CHANNELS)} channels "
          f"(registry columns {counts['registry/']}, DocumentEntry {counts['entry/']}, "
          f"signature entry {counts['signature/']}, CDA {counts['cda/']}); "
          f"CDA {len(reference.cda)} bytes, DocumentEntry {len(reference.metadata)} bytes")
