"""The MLLP server on a real loopback socket, with a real SQLite store behind it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from bridge.hl7v2 import frame
from bridge.jobs import Intake, Job, JobState
from connectors.mllp_server import MllpOutcome, MllpServer, MllpSettings
from connectors.sqlite_store import SqliteStore
from tests.hl7.messages import PDF as PDF_BYTES
from tests.hl7.messages import doc_obx, encode, nurse_mdm, replace_segment, sample, seg

Enqueue = Callable[[Intake], Awaitable[tuple[Job, bool]]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "file.sqlite3") as opened:
        yield opened


@contextlib.asynccontextmanager
async def running(enqueue: Enqueue, **options: object) -> AsyncIterator[MllpServer]:
    settings = MllpSettings(port=0, **options)  # type: ignore[arg-type]
    outcomes: list[MllpOutcome] = []
    server = MllpServer(enqueue, settings, on_outcome=outcomes.append)
    server.outcomes = outcomes  # type: ignore[attr-defined]
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def store_enqueue(store: SqliteStore, log: list[str] | None = None) -> Enqueue:
    async def enqueue(intake: Intake) -> tuple[Job, bool]:
        result = await asyncio.to_thread(store.enqueue, intake)
        if log is not None:
            log.append("committed")
        return result
    return enqueue


async def exchange(port: int, message: bytes, *, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame(message))
        await writer.drain()
        return await read_ack(reader, timeout)
    finally:
        writer.close()
        await writer.wait_closed()


async def read_ack(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    data = await asyncio.wait_for(reader.readuntil(b"\x1c\x0d"), timeout)
    assert data.startswith(b"\x0b")
    return data[1:-2]


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed the connection (EOF, or a reset seen by our writes)."""
    try:
        return await asyncio.wait_for(reader.read(), 3) == b""
    except ConnectionError:
        return True


def msa(ack: bytes) -> list[str]:
    return ack.split(b"\r")[1].decode().split("|")


def err(ack: bytes) -> list[str]:
    return ack.split(b"\r")[2].decode("utf-8").split("|")


async def test_aa_comes_only_after_the_commit_and_the_job_holds_pdf_and_sidecar(
        store: SqliteStore) -> None:
    events: list[str] = []
    enqueue = store_enqueue(store, events)

    async def watched(intake: Intake) -> tuple[Job, bool]:
        events.append("enqueue called")
        await asyncio.sleep(0.2)  # a slow commit: the ACK must wait for it
        return await enqueue(intake)

    async with running(watched) as server:
        ack = await exchange(server.port, encode(nurse_mdm("MSG-1")))
        events.append("ack received")
    assert msa(ack)[1:3] == ["AA", "MSG-1"]
    assert events == ["enqueue called", "committed", "ack received"]
    [job] = store.list_jobs()
    assert (job.channel, job.source_ref, job.state) == (
        "mllp", "MSG-1@LOGICIEL-IDE/Cabinet des Lilas", JobState.QUEUED)
    assert store.payload(job.id) == PDF_BYTES
    assert b'"ins": "279035121518989"' in store.metadata(job.id)


async def test_a_repeated_msh_10_gets_the_same_positive_ack_and_no_second_job(
        store: SqliteStore) -> None:
    async with running(store_enqueue(store)) as server:
        first = await exchange(server.port, encode(nurse_mdm("DUP-1")))
        second = await exchange(server.port, encode(nurse_mdm("DUP-1")))
        other_doc = replace_segment(nurse_mdm("DUP-1"), "OBX", doc_obx(PDF_BYTES + b"\n"))
        reused = await exchange(server.port, encode(other_doc))
        outcomes = server.outcomes  # type: ignore[attr-defined]
    assert msa(first)[1:] == msa(second)[1:] == ["AA", "DUP-1"]
    assert len(store.list_jobs()) == 1
    assert [o.duplicate for o in outcomes[:2]] == [False, True]
    # The same MSH-10 for another document is not silently swallowed.
    assert msa(reused)[1:] == ["AE", "DUP-1"]
    assert err(reused)[3].startswith("205^")


async def test_enhanced_mode_gets_ca(store: SqliteStore) -> None:
    async with running(store_enqueue(store)) as server:
        ack = await exchange(server.port, encode(nurse_mdm("ENH-1", accept_ack="AL")))
    assert msa(ack)[1:] == ["CA", "ENH-1"]


async def test_a_store_that_cannot_commit_gets_ar_or_cr_never_aa() -> None:
    async def broken(intake: Intake) -> tuple[Job, bool]:
        raise OSError("disk full")

    async with running(broken) as server:
        original = await exchange(server.port, encode(nurse_mdm("S-1")))
        enhanced = await exchange(server.port, encode(nurse_mdm("S-2", accept_ack="AL")))
    assert msa(original)[1:] == ["AR", "S-1"]
    assert msa(enhanced)[1:] == ["CR", "S-2"]
    assert err(original)[3].startswith("207^")
    assert "renvoyez-le" in err(original)[8]


async def test_the_ans_placeholder_sample_gets_ae_102_and_nothing_is_queued(
        store: SqliteStore) -> None:
    async with running(store_enqueue(store)) as server:
        ack = await exchange(server.port, sample("01-hl7-mdm-t02-cr-imagerie-init.er7"))
    assert msa(ack)[1:] == ["AE", "015"]
    assert err(ack)[3].startswith("102^")
    assert store.list_jobs() == []


async def test_an_incoming_ack_is_not_acknowledged_and_the_connection_goes_on(
        store: SqliteStore) -> None:
    async with running(store_enqueue(store)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame(sample("07-hl7-ack-r01-aa.hl7")) + frame(encode(nurse_mdm("N-1"))))
        await writer.drain()
        ack = await read_ack(reader)
        writer.close()
    assert msa(ack)[1:] == ["AA", "N-1"]


async def test_two_clients_at_once_one_sending_garbage_the_other_is_served(
        store: SqliteStore) -> None:
    async with running(store_enqueue(store)) as server:
        bad_reader, bad_writer = await asyncio.open_connection("127.0.0.1", server.port)
        good_reader, good_writer = await asyncio.open_connection("127.0.0.1", server.port)
        bad_writer.write(b"\x00\xff garbage \x1c\x0d" + frame(b"\xff\xfe not hl7 at all")
                         + b"\x0bMSH|^~\\&|half a frame")
        await bad_writer.drain()
        garbage_ack = await read_ack(bad_reader)
        good_writer.write(frame(encode(nurse_mdm("G-1"))))
        await good_writer.drain()
        good_ack = await read_ack(good_reader)
        # The garbage sender's next (valid) frame interrupts its half frame: AR, then AA.
        bad_writer.write(frame(encode(nurse_mdm("G-2"))))
        await bad_writer.drain()
        interrupted, after = await read_ack(bad_reader), await read_ack(bad_reader)
        for writer in (bad_writer, good_writer):
            writer.close()
    assert msa(garbage_ack)[1:] == ["AE", ""]
    assert msa(good_ack)[1:] == ["AA", "G-1"]
    assert msa(interrupted)[1] == "AR" and err(interrupted)[3].startswith("199^")
    assert msa(after)[1:] == ["AA", "G-2"]
    assert len(store.list_jobs()) == 2


async def test_an_oversized_frame_gets_ae_207_and_the_connection_is_still_served(
        store: SqliteStore) -> None:
    async with running(store_enqueue(store), max_frame_bytes=4096) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame(encode(nurse_mdm("BIG-1")) + b"x" * 10_000))
        writer.write(frame(encode(nurse_mdm("SMALL-1"))))
        await writer.drain()
        big, small = await read_ack(reader), await read_ack(reader)
        writer.close()
    assert msa(big)[1:] == ["AE", "BIG-1"] and err(big)[3].startswith("207^")
    assert msa(small)[1:] == ["AA", "SMALL-1"]


async def test_a_slow_sender_is_served_and_an_idle_one_is_dropped(store: SqliteStore) -> None:
    async with running(store_enqueue(store), idle_timeout=0.5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        data = frame(encode(nurse_mdm("SLOW-1")))
        step = len(data) // 20 + 1
        for i in range(0, len(data), step):  # 20 pieces, 0.1 s apart: 2 s in all
            writer.write(data[i:i + step])
            await writer.drain()
            await asyncio.sleep(0.1)
        ack = await read_ack(reader)
        assert msa(ack)[1:] == ["AA", "SLOW-1"]
        # Now silent: the server closes the connection after the idle timeout.
        assert await closed_by_server(reader)
        writer.close()


async def test_a_frame_that_never_ends_is_cut_by_the_frame_timeout(store: SqliteStore) -> None:
    async with running(store_enqueue(store), idle_timeout=1.0, frame_timeout=0.6) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x0bMSH|^~\\&|")
        with contextlib.suppress(ConnectionError):
            for _ in range(30):  # keeps trickling within the idle timeout, never ends the frame
                await asyncio.sleep(0.1)
                writer.write(b"x")
                await writer.drain()
        assert await closed_by_server(reader)
        writer.close()
    assert store.list_jobs() == []


async def cut_while_trickling(port: int, first: bytes, byte: bytes, *,
                              every: float, at_most: int) -> bool:
    """Send `first`, then one `byte` every `every` seconds (reading any ACK meanwhile); True
    once the server has closed the connection, False if it still serves after `at_most`."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(first)
        for _ in range(at_most):
            until = loop.time() + every
            while (left := until - loop.time()) > 0:
                try:
                    if await asyncio.wait_for(reader.read(65536), left) == b"":
                        return True
                except TimeoutError:
                    break
            writer.write(byte)
            await writer.drain()
        return False
    except ConnectionError:
        return True
    finally:
        writer.close()


@pytest.mark.parametrize(("first", "byte"), [
    (b"\x0bMSH|^~\\&|", b"x"),  # one frame that never ends
    (b"\r\n", b"\n"),  # noise between frames, never a frame
    (b"\x0bMSH|", b"\x0b"),  # a new frame each second, each one interrupting the last
], ids=["inside-a-frame", "between-frames", "restarting-frames"])
async def test_a_sender_trickling_one_byte_per_second_is_cut_at_the_frame_deadline(
        store: SqliteStore, first: bytes, byte: bytes) -> None:
    # Never idle for 5 s, so only the frame deadline (2.5 s) can close the connection.
    async with running(store_enqueue(store), idle_timeout=5.0, frame_timeout=2.5) as server:
        cut = await cut_while_trickling(server.port, first, byte, every=1.0, at_most=20)
        assert cut, "a trickling sender kept its connection past the frame deadline"
        # The listener still serves the others.
        ack = await exchange(server.port, encode(nurse_mdm("AFTER-1")))
    assert msa(ack)[1:] == ["AA", "AFTER-1"]
    [job] = store.list_jobs()  # nothing from the trickling sender
    assert job.source_ref.startswith("AFTER-1@")


async def test_complete_frames_restart_the_frame_deadline(store: SqliteStore) -> None:
    """A slow sender whose messages each complete in time is served, however long it stays."""
    async with running(store_enqueue(store), idle_timeout=2.0, frame_timeout=1.0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for n in range(1, 4):  # three messages, each sent in 0.6 s: 1.8 s on one connection
            data = frame(encode(nurse_mdm(f"STEP-{n}")))
            step = len(data) // 6 + 1
            for i in range(0, len(data), step):
                writer.write(data[i:i + step])
                await writer.drain()
                await asyncio.sleep(0.1)
            assert msa(await read_ack(reader))[1:] == ["AA", f"STEP-{n}"]
        writer.close()
        await writer.wait_closed()
    assert len(store.list_jobs()) == 3


async def test_replace_requests_are_refused_until_the_queue_supports_them(
        store: SqliteStore) -> None:
    t10 = replace_segment(nurse_mdm("R-1", type_="MDM^T10^MDM_T02"), "ORC", None)
    t10 = replace_segment(t10, "OBX", doc_obx(status="C"))
    t10 = replace_segment(t10, "TXA", seg("TXA", {1: "1", 2: "11506-3", 4: "20261121093000",
                                                  13: "1.2.250.1.999.1.41"}))
    async with running(store_enqueue(store)) as server:
        ack = await exchange(server.port, encode(t10))
    assert msa(ack)[1:] == ["AE", "R-1"], ack
    assert "remplacement" in err(ack)[8]
    assert store.list_jobs() == []


async def test_a_cda_is_queued_as_is(store: SqliteStore) -> None:
    from bridge.cda import build_cda
    from tests.factories import make_clinical_document

    cda = build_cda(make_clinical_document())
    message = replace_segment(nurse_mdm("C-1"), "OBX", doc_obx(cda))
    async with running(store_enqueue(store)) as server:
        ack = await exchange(server.port, encode(message))
    assert msa(ack)[1:] == ["AA", "C-1"], ack
    [job] = store.list_jobs()
    assert job.state is JobState.QUEUED
    assert store.payload(job.id) == cda
