"""What the MLLP listener answers to what it cannot take, on real loopback sockets: replace and
delete requests (never silently accepted), and every kind of broken input, while another sender
on another connection keeps being served."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.hl7v2 import frame
from connectors.mllp_server import MllpServer, MllpSettings
from connectors.sqlite_store import SqliteStore
from tests.hl7.messages import doc_obx, encode, nurse_mdm, pid, replace_segment, sample, seg
from tests.hl7.test_mllp_server import err, exchange, msa, read_ack, store_enqueue


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "file.sqlite3") as opened:
        yield opened


def request(control_id: str, trigger: str, order: str, status: str) -> bytes:
    """An MDM asking to replace (T10) or delete (T04) the document 1.2.250.1.999.1.41."""
    segments = nurse_mdm(control_id, type_=f"MDM^{trigger}^MDM_T02")
    segments = replace_segment(segments, "ORC", seg("ORC", {1: order}))
    segments = replace_segment(segments, "OBX", doc_obx(status=status))
    segments = replace_segment(segments, "TXA", seg("TXA", {
        1: "1", 2: "11506-3", 3: "TEXT", 4: "20261121093000", 12: "1.2.250.1.999.1.42",
        13: "1.2.250.1.999.1.41", 17: "AU"}))
    return encode(segments)


@pytest.mark.parametrize(("trigger", "order", "status", "what"), [
    ("T10", "RO", "C", "remplacement"),
    ("T04", "CA", "D", "suppression"),
])
async def test_replace_and_delete_get_ae_207_saying_where_to_do_it_and_nothing_is_queued(
        store: SqliteStore, trigger: str, order: str, status: str, what: str) -> None:
    server = MllpServer(store_enqueue(store), MllpSettings(port=0))
    await server.start()
    try:
        ack = await exchange(server.port, request(f"{trigger}-1", trigger, order, status))
    finally:
        await server.stop()
    assert ack.split(b"\r")[0].split(b"|")[8] == f"ACK^{trigger}^ACK".encode()
    assert msa(ack)[1:] == ["AE", f"{trigger}-1"]
    assert err(ack)[3] == "207^Application internal error^messageErrorCondition"
    reason = err(ack)[8]
    assert what in reason and "rien n'a été fait" in reason
    assert "www.dmp.fr" in reason and "dmp-bridge cancel" in reason
    assert store.list_jobs() == []


async def test_each_broken_input_gets_its_outcome_while_another_sender_is_served(
        store: SqliteStore) -> None:
    bad_charset = encode(nurse_mdm("CS-1", charset="KOI8-R"))
    wrong_bytes = encode(nurse_mdm("CS-2"), "latin-1")  # declares UTF-8, is Latin-1
    bad_base64 = encode(replace_segment(nurse_mdm("B64-1"), "OBX", doc_obx("JVBERi0x*!!")))
    no_pid_3 = encode(replace_segment(nurse_mdm("PID-1"), "PID", pid(ids="")))
    oversized = encode(nurse_mdm("BIG-1")) + b"x" * 70_000
    expected = [
        ("AR", "", "199^"),  # the half frame, cut by the next start block
        ("AE", "CS-1", "103^"), ("AE", "CS-2", "199^"), ("AE", "B64-1", "102^"),
        ("AE", "PID-1", "101^"), ("AE", "BIG-1", "207^"), ("AE", "015", "102^"),
    ]
    server = MllpServer(store_enqueue(store), MllpSettings(port=0, max_frame_bytes=64 * 1024))
    await server.start()
    try:
        bad_reader, bad = await asyncio.open_connection("127.0.0.1", server.port)
        good_reader, good = await asyncio.open_connection("127.0.0.1", server.port)
        bad.write(b"\x0bMSH|^~\\&|LOGICIEL|CAB|DMP-BRIDGE|CAB|2026")  # a frame left open
        await bad.drain()
        good_acks = []
        for n, message in enumerate([bad_charset, wrong_bytes, bad_base64, no_pid_3, oversized,
                                     sample("01-hl7-mdm-t02-cr-imagerie-init.er7")]):
            good.write(frame(encode(nurse_mdm(f"GOOD-{n}"))))  # meanwhile, on the other line
            await good.drain()
            bad.write(frame(message))
            await bad.drain()
            good_acks.append(await read_ack(good_reader))
        bad_acks = [await read_ack(bad_reader) for _ in expected]
        for writer in (bad, good):
            writer.close()
    finally:
        await server.stop()
    assert [msa(ack)[1:] for ack in good_acks] == [["AA", f"GOOD-{n}"] for n in range(6)]
    got = [(msa(ack)[1], msa(ack)[2], err(ack)[3][:4]) for ack in bad_acks]
    assert got == expected
    for ack in bad_acks:
        assert err(ack)[8], "every refusal tells the user why, in French"
    assert err(bad_acks[4])[2] == "PID^1^3"
    assert sorted(job.source_ref.split("@")[0] for job in store.list_jobs()) == [
        f"GOOD-{n}" for n in range(6)]
