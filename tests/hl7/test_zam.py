"""ZAM^Z01: the sender that asked for it (MetaDMPMSS ACK_RECEPTION = Y) hears, once, over MLLP,
whether the DMP registered its document. Real store, real MLLP server, real MLLP receiver."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.dmp_answer import Decision
from bridge.dmp_error_table import ErrorClass
from bridge.hl7v2 import ZamOutcome, build_zam, frame, read_header, zam_request
from bridge.hl7v2.mllp import MllpDecoder
from bridge.jobs import Intake, Job, JobState
from connectors.mllp_server import EnqueueFn, MllpServer, MllpSettings
from connectors.sqlite_store import SqliteStore
from connectors.zam_sender import (
    UNCLAIMED_OUTCOME_RETENTION,
    SqliteZamOutbox,
    ZamDestination,
    ZamNotifier,
)
from tests.hl7.messages import encode, flag, nurse_mdm, sample
from tests.hl7.test_mllp_server import exchange, msa, store_enqueue

NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=5)
DONE = Decision(None, JobState.DONE, "OK", "Document enregistré dans le DMP.")
DEAD = Decision(ErrorClass.PERMANENT, JobState.DEAD, "DMP_DOSSIER_FERME",
                "Le DMP du patient est fermé : le document ne peut pas y être ajouté.")
LATER = Decision(ErrorClass.TRANSIENT, JobState.DEFERRED, "HTTP_503",
                 "Le DMP est momentanément indisponible ; nouvel essai automatique.")


# -- a real MLLP receiver (the sender's own listener) -------------------------------------------

@dataclass
class Receiver:
    """Collects framed messages on 127.0.0.1 and answers each with `answer` (AA by default)."""

    answer: str = "AA"
    messages: list[bytes] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MllpDecoder()
        try:
            while data := await reader.read(65536):
                for event in decoder.feed(data):
                    message = getattr(event, "data", b"")
                    self.messages.append(message)
                    self.arrived.set()
                    control = read_header(message).control_id
                    writer.write(frame(f"MSH|^~\\&|SIL|X|PFI|X|20261121||ACK|A{control}|P|2.6\r"
                                       f"MSA|{self.answer}|{control}\r".encode()))
                    await writer.drain()
        finally:
            writer.close()

    def zams(self) -> list[list[str]]:
        return [m.decode("utf-8").rstrip("\r").split("\r") for m in self.messages]


@contextlib.asynccontextmanager
async def receiving(answer: str = "AA", port: int = 0) -> AsyncIterator[tuple[Receiver, int]]:
    receiver = Receiver(answer)
    bound = await receiver.start(port)
    try:
        yield receiver, bound
    finally:
        await receiver.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "file.sqlite3") as opened:
        yield opened


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SqliteZamOutbox]:
    with SqliteZamOutbox(tmp_path / "file.sqlite3") as opened:
        yield opened


def asking(control_id: str, ack_reception: str = "Y") -> bytes:
    return encode([*nurse_mdm(control_id), flag(5, "ACK_RECEPTION", ack_reception)])


async def receive(server: MllpServer, *messages: bytes) -> None:
    for message in messages:
        assert msa(await exchange(server.port, message))[1] == "AA"


def finish(store: SqliteStore, job_id: int, decision: Decision) -> Job:
    """What the dispatcher does: the job leaves `active` for the decision's state."""
    claimed = store.claim(NOW, LEASE)
    assert claimed is not None and claimed.id == job_id
    later = NOW + dt.timedelta(minutes=1) if decision.state is JobState.DEFERRED else None
    return store.transition(job_id, decision.state, code=decision.code,
                            message_fr=decision.message_fr, now=NOW, next_attempt_at=later)


# -- the builder --------------------------------------------------------------------------------

def test_a_failure_zam_has_the_shape_of_the_ans_example() -> None:
    oru = sample("05-hl7-oru-r01-cr-bio-n1-n3.hl7")
    expected = sample("12-hl7-zam-z01-dmp-closed.hl7").decode("utf-8").rstrip("\n").split("\n")
    request = zam_request(read_header(oru))
    outcome = ZamOutcome(False, "DMPClosed", "Le DMP du patient est fermé.")
    lines = build_zam(request, outcome, now=dt.datetime(2021, 6, 6, 9, 33),
                      control_id="017").decode("utf-8").rstrip("\r").split("\r")
    assert lines[0] == expected[0].replace("|202106060933|", "|20210606093300|")
    assert lines[1] == "EVN||20210606093300"
    ours, theirs = lines[2].split("|"), expected[2].split("|")
    assert ours[:5] == theirs[:5]  # OBX|1|CWE|ACK_RECEPTION_DMP^…^AckMetierZAM|015
    no = ["N", "expandedYes-NoIndicator"]
    assert ours[5].split("^")[0::2] == theirs[5].split("^")[0::2] == no
    assert ours[11] == theirs[11] == "F"
    err, their_err = lines[3].split("|"), expected[3].split("|")
    assert err[:5] == their_err[:5]  # ERR|||207^Application internal error^…|E
    assert err[5] == "DMPClosed^DMPClosed^DMP_ERROR_CODE"
    assert err[8] == "Le DMP du patient est fermé."


def test_a_success_zam_says_y_with_a_french_text_and_no_err() -> None:
    request = zam_request(read_header(asking("OK-1")))
    lines = build_zam(request, ZamOutcome(True), now=NOW, control_id="Z1").decode().split("\r")
    assert lines[0].startswith("MSH|^~\\&|DMP-BRIDGE|Cabinet des Lilas|LOGICIEL-IDE|"
                               "Cabinet des Lilas|")
    obx = lines[2].split("|")
    assert obx[4] == "OK-1"
    assert obx[5] == "Y^Document enregistré dans le DMP du patient.^expandedYes-NoIndicator"
    assert not any(line.startswith("ERR") for line in lines)


def test_a_latin_9_sender_gets_its_zam_in_latin_9() -> None:
    request = zam_request(read_header(encode(nurse_mdm("L-1", charset="8859/15"), "iso-8859-15")))
    data = build_zam(request, ZamOutcome(False, "X", "Refusé : étiquette"), now=NOW,
                     control_id="Z2")
    assert b"|8859/15|" in data and "Refusé".encode("iso-8859-15") in data


# -- the notifier ---------------------------------------------------------------------------------

async def test_exactly_one_zam_per_finished_document_that_asked_for_one(
        store: SqliteStore, outbox: SqliteZamOutbox) -> None:
    async with receiving() as (receiver, port):
        notifier = ZamNotifier(outbox, ZamDestination("127.0.0.1", port, first_delay=0.05))
        server = MllpServer(store_enqueue(store), MllpSettings(port=0),
                            on_committed=notifier.remember)
        await server.start()
        try:
            await receive(server, asking("ZAM-A"), asking("ZAM-A"),  # resent: one job
                          asking("ZAM-B"), asking("ZAM-C", ack_reception="N"), asking("ZAM-D"))
        finally:
            await server.stop()
        a, b, c, d = sorted(store.list_jobs(), key=lambda job: job.id)
        # The dispatcher's hook is synchronous: notify_soon returns before anything is sent.
        notifier.notify_soon(finish(store, a.id, DONE), DONE)
        assert receiver.messages == []
        notifier.notify_soon(finish(store, b.id, LATER), LATER)  # not final: no ZAM
        notifier.notify_soon(finish(store, c.id, DONE), DONE)  # did not ask: no ZAM
        await notifier.wait_idle()
        dead = store.transition(b.id, JobState.DEAD, code=DEAD.code, message_fr=DEAD.message_fr,
                                now=NOW)
        notifier.notify_soon(dead, DEAD)
        again = store.get(a.id)
        assert again is not None
        notifier.notify_soon(again, DONE)  # the hook heard twice: still one ZAM
        await notifier.wait_idle()
        # D asked but is still queued: nothing yet.
        waiting = store.get(d.id)
        assert waiting is not None and waiting.state is JobState.QUEUED
    zams = receiver.zams()
    assert len(zams) == 2
    by_id = {zam[2].split("|")[4]: zam for zam in zams}
    assert set(by_id) == {"ZAM-A", "ZAM-B"}
    assert by_id["ZAM-A"][0].split("|")[8] == "ZAM^Z01^ZAM_Z01"
    assert by_id["ZAM-A"][2].split("|")[5].startswith("Y^")
    assert len(by_id["ZAM-A"]) == 3  # MSH EVN OBX
    assert by_id["ZAM-B"][2].split("|")[5].startswith("N^")
    assert by_id["ZAM-B"][3].split("|")[5] == "DMP_DOSSIER_FERME^DMP_DOSSIER_FERME^DMP_ERROR_CODE"
    assert by_id["ZAM-B"][3].split("|")[8].startswith("Le DMP du patient est fermé")
    assert outbox.pending() == []


async def test_an_absent_receiver_is_retried_with_backoff_until_it_listens(
        store: SqliteStore, outbox: SqliteZamOutbox) -> None:
    port = free_port()
    notifier = ZamNotifier(outbox, ZamDestination("127.0.0.1", port, attempts=8,
                                                  first_delay=0.1, max_delay=0.4, timeout=2))
    job = await _one_job(store, notifier)
    notifier.notify_soon(finish(store, job.id, DONE), DONE)
    await asyncio.sleep(0.3)  # a couple of refused connections first
    async with receiving(port=port) as (receiver, _):
        await asyncio.wait_for(notifier.wait_idle(), 10)
    assert len(receiver.messages) == 1
    assert outbox.pending() == []


async def test_an_undelivered_zam_waits_for_the_next_start(
        store: SqliteStore, outbox: SqliteZamOutbox) -> None:
    port = free_port()
    notifier = ZamNotifier(outbox, ZamDestination("127.0.0.1", port, attempts=2,
                                                  first_delay=0.05))
    job = await _one_job(store, notifier)
    assert not await notifier.notify(finish(store, job.id, DEAD), DEAD)
    [pending] = outbox.pending()
    assert (pending.job_id, pending.outcome.received) == (job.id, False)
    async with receiving(port=port) as (receiver, _):
        restarted = ZamNotifier(outbox, ZamDestination("127.0.0.1", port))
        assert await restarted.resume() == 1
        assert await restarted.resume() == 0
    assert len(receiver.messages) == 1 and b"|N^" in receiver.messages[0]


async def test_a_receiver_that_refuses_the_zam_is_not_hammered(
        store: SqliteStore, outbox: SqliteZamOutbox) -> None:
    async with receiving(answer="AE") as (receiver, port):
        notifier = ZamNotifier(outbox, ZamDestination("127.0.0.1", port, first_delay=0.05))
        job = await _one_job(store, notifier)
        assert not await notifier.notify(finish(store, job.id, DONE), DONE)
    assert len(receiver.messages) == 1
    assert outbox.pending() == []


async def _one_job(store: SqliteStore, notifier: ZamNotifier) -> Job:
    server = MllpServer(store_enqueue(store), MllpSettings(port=0),
                        on_committed=notifier.remember)
    await server.start()
    try:
        await receive(server, asking("ONE-1"))
    finally:
        await server.stop()
    [job] = store.list_jobs()
    return job


# -- the race: the dispatcher may finish a job before its request is kept -----------------------

@dataclass
class Clock:
    """The notifier's clock, moved by the test."""

    now: dt.datetime = NOW

    def __call__(self) -> dt.datetime:
        return self.now


def dispatcher_first(store: SqliteStore, outbox: SqliteZamOutbox, notifier: ZamNotifier,
                     *decisions: Decision) -> EnqueueFn:
    """The runner's enqueue when the dispatcher wins the race: woken by the commit, it finishes
    the job and its hook fires (once per decision) before the MLLP server's `on_committed` runs."""
    commit = store_enqueue(store)

    async def enqueue(intake: Intake) -> tuple[Job, bool]:
        job, created = await commit(intake)
        if created:
            finished = finish(store, job.id, decisions[0])
            for decision in decisions:
                assert not await notifier.notify(finished, decision)  # no request yet
            assert outbox.unclaimed() == [job.id]
        return job, created

    return enqueue


async def receive_with(enqueue: EnqueueFn, notifier: ZamNotifier, *messages: bytes) -> None:
    server = MllpServer(enqueue, MllpSettings(port=0), on_committed=notifier.remember)
    await server.start()
    try:
        await receive(server, *messages)
    finally:
        await server.stop()


def replay(store: SqliteStore, job_id: int, decision: Decision) -> Job:
    """A person replays a dead job; the dispatcher then finishes it again."""
    store.transition(job_id, JobState.QUEUED, code="REPLAY",
                     message_fr="Document renvoyé par l'utilisateur.", now=NOW)
    return finish(store, job_id, decision)


def answers(receiver: Receiver) -> list[tuple[str, str]]:
    """(MSH-10 of the original message, Y/N) for each ZAM received, in order."""
    return [(zam[2].split("|")[4], zam[2].split("|")[5].split("^")[0])
            for zam in receiver.zams()]


@pytest.mark.parametrize(("decision", "answer"), [(DEAD, "N"), (DONE, "Y")],
                         ids=["refused-locally", "registered-fast"])
async def test_a_document_finished_before_its_request_was_kept_gets_exactly_one_zam(
        store: SqliteStore, outbox: SqliteZamOutbox, decision: Decision, answer: str) -> None:
    async with receiving() as (receiver, port):
        notifier = ZamNotifier(outbox, ZamDestination("127.0.0.1", port, first_delay=0.05))
        await receive_with(dispatcher_first(store, outbox, notifier, decision), notifier,
                           asking("FAST-1"), asking("FAST-1"))  # resent: still one job
        await notifier.wait_idle()
        [job] = store.list_jobs()
        assert not await notifier.notify(job, decision)  # heard again: already delivered
        await notifier.wait_idle()
    assert answers(receiver) == [("FAST-1", answer)]
    assert outbox.pending() == []
    assert outbox.unclaimed() == []


@pytest.mark.parametrize("outcome_first", [True, False], ids=["outcome-first", "request-first"])
async def test_an_outcome_heard_twice_gives_one_zam_per_distinct_outcome(
        store: SqliteStore, outbox: SqliteZamOutbox, outcome_first: bool) -> None:
    async with receiving() as (receiver, port):
        notifier = ZamNotifier(outbox, ZamDestination("127.0.0.1", port, first_delay=0.05))
        enqueue = (dispatcher_first(store, outbox, notifier, DEAD, DEAD) if outcome_first
                   else store_enqueue(store))
        await receive_with(enqueue, notifier, asking("TWICE-1"))
        [job] = store.list_jobs()
        if not outcome_first:
            dead = finish(store, job.id, DEAD)
            notifier.notify_soon(dead, DEAD)
            notifier.notify_soon(dead, DEAD)  # the hook heard twice, while the first is sent
        await notifier.wait_idle()
        assert answers(receiver) == [("TWICE-1", "N")]
        done = replay(store, job.id, DONE)  # a new outcome: the sender hears it, once
        notifier.notify_soon(done, DONE)
        notifier.notify_soon(done, DONE)
        await notifier.wait_idle()
        assert not await notifier.notify(done, DONE)
    assert answers(receiver) == [("TWICE-1", "N"), ("TWICE-1", "Y")]
    assert outbox.pending() == []
    assert outbox.unclaimed() == []


async def test_the_outcome_of_a_document_that_asked_for_no_zam_is_forgotten_after_a_day(
        store: SqliteStore, outbox: SqliteZamOutbox) -> None:
    clock = Clock()
    async with receiving() as (receiver, port):
        notifier = ZamNotifier(outbox, ZamDestination("127.0.0.1", port, first_delay=0.05),
                               clock=clock)
        await receive_with(store_enqueue(store), notifier, asking("NO-1", ack_reception="N"),
                           asking("NO-2", ack_reception="N"), asking("NO-3", ack_reception="N"))
        first, second, third = sorted(store.list_jobs(), key=lambda job: job.id)
        assert not await notifier.notify(finish(store, first.id, DONE), DONE)
        assert outbox.unclaimed() == [first.id]  # kept, in case its request comes late
        clock.now += UNCLAIMED_OUTCOME_RETENTION - dt.timedelta(hours=1)
        assert not await notifier.notify(finish(store, second.id, DEAD), DEAD)
        assert outbox.unclaimed() == [first.id, second.id]  # both within the retention
        clock.now += dt.timedelta(hours=2)
        assert await notifier.resume() == 0
        assert outbox.unclaimed() == [second.id]  # forgotten at start
        clock.now += UNCLAIMED_OUTCOME_RETENTION
        assert not await notifier.notify(finish(store, third.id, DONE), DONE)
        assert outbox.unclaimed() == [third.id]  # and as new outcomes are kept
        await notifier.wait_idle()
    assert receiver.messages == []
    assert outbox.pending() == []


def _keep(outbox: SqliteZamOutbox, start: threading.Barrier, job_id: int) -> bool:
    start.wait()
    request = zam_request(read_header(asking(f"RACE-{job_id}")))
    return outbox.remember(job_id, request, now=NOW) is not None


def _finish(outbox: SqliteZamOutbox, start: threading.Barrier, job_id: int) -> bool:
    start.wait()
    outcome = ZamOutcome(False, "DMP_DOSSIER_FERME", "Le DMP du patient est fermé.")
    return outbox.record_outcome(job_id, outcome, now=NOW) is not None


def test_remember_and_the_outcome_racing_on_two_connections_send_exactly_once(
        tmp_path: Path) -> None:
    path = tmp_path / "file.sqlite3"
    jobs = range(1, 41)
    with (SqliteZamOutbox(path) as reception, SqliteZamOutbox(path) as dispatcher,
          ThreadPoolExecutor(max_workers=2) as pool):
        sends = {}
        for job_id in jobs:
            start = threading.Barrier(2)
            kept = pool.submit(_keep, reception, start, job_id)
            finished = pool.submit(_finish, dispatcher, start, job_id)
            sends[job_id] = [kept.result(timeout=30), finished.result(timeout=30)].count(True)
        assert sends == {job_id: 1 for job_id in jobs}
        assert [item.job_id for item in reception.pending()] == list(jobs)
        assert dispatcher.unclaimed() == []
