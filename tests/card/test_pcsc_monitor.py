"""The PC/SC monitor against a real pcscd: readers, cards, and a pcscd that stops and comes back."""

import threading
from collections.abc import Callable, Iterator

import pytest

from connectors.pcsc_monitor import PcscEvent, PcscEventKind, PcscMonitor
from tests.card.emulator import ATR

WAIT = 20.0


class Events:
    """What a monitor reported, in order, with a way to wait for the next expected ones."""

    def __init__(self) -> None:
        self._events: list[PcscEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: PcscEvent) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    def seen(self) -> list[PcscEvent]:
        with self._changed:
            return list(self._events)

    def wait_for(self, kind: PcscEventKind, reader: str | None = None, *, after: int = 0) -> int:
        """Index of the first `kind` event (for `reader`) at or after `after`; fails on timeout."""

        def find() -> int | None:
            for index in range(after, len(self._events)):
                event = self._events[index]
                if event.kind is kind and (reader is None or event.reader == reader):
                    return index
            return None

        with self._changed:
            found = self._changed.wait_for(lambda: find() is not None, WAIT)
            assert found, f"no {kind} for {reader} after #{after}; got {self._events[after:]}"
            index = find()
            assert index is not None
            return index


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def start_monitor(pcsc, events) -> Iterator[Callable[..., PcscMonitor]]:
    monitors: list[PcscMonitor] = []

    def start(**options) -> PcscMonitor:
        monitor = PcscMonitor(events, **options)
        monitors.append(monitor)
        monitor.start()
        return monitor

    yield start
    for monitor in monitors:
        monitor.stop()


def test_reports_the_service_and_both_readers_at_start(pcsc, events, start_monitor):
    start_monitor()
    up = events.wait_for(PcscEventKind.SERVICE_UP)
    for reader in pcsc.readers:
        assert events.wait_for(PcscEventKind.READER_ADDED, reader) > up
    assert not [e for e in events.seen() if e.kind is PcscEventKind.CARD_INSERTED]


def test_reports_insertion_with_the_atr_then_removal(pcsc, events, start_monitor, cps_card):
    start_monitor()
    events.wait_for(PcscEventKind.READER_ADDED, pcsc.readers[0])
    handle = pcsc.insert(cps_card.json_path, reader=0)
    inserted = events.wait_for(PcscEventKind.CARD_INSERTED, pcsc.readers[0])
    assert events.seen()[inserted].atr == ATR
    pcsc.remove(handle)
    events.wait_for(PcscEventKind.CARD_REMOVED, pcsc.readers[0], after=inserted)


def test_reports_a_card_already_present_at_start_and_one_in_the_second_reader(
        pcsc, events, start_monitor, cps_card, second_card):
    pcsc.insert(cps_card.json_path, reader=0)
    start_monitor()
    events.wait_for(PcscEventKind.CARD_INSERTED, pcsc.readers[0])
    pcsc.insert(second_card.json_path, reader=1)
    events.wait_for(PcscEventKind.CARD_INSERTED, pcsc.readers[1])
    removed = [e for e in events.seen() if e.kind is PcscEventKind.CARD_REMOVED]
    assert removed == []


def test_watches_only_the_configured_readers(pcsc, events, start_monitor, cps_card, second_card):
    start_monitor(readers=["Virtual PCD 00 01"])
    events.wait_for(PcscEventKind.READER_ADDED, pcsc.readers[1])
    pcsc.insert(cps_card.json_path, reader=0)
    pcsc.insert(second_card.json_path, reader=1)
    events.wait_for(PcscEventKind.CARD_INSERTED, pcsc.readers[1])
    assert {e.reader for e in events.seen() if e.reader is not None} == {pcsc.readers[1]}


def test_recovers_after_pcscd_stops_and_starts_again(pcsc, events, start_monitor, cps_card):
    pcsc.insert(cps_card.json_path, reader=0)
    start_monitor()
    first = events.wait_for(PcscEventKind.CARD_INSERTED, pcsc.readers[0])

    pcsc.stop_pcscd()
    removed = events.wait_for(PcscEventKind.CARD_REMOVED, pcsc.readers[0], after=first)
    down = events.wait_for(PcscEventKind.SERVICE_DOWN, after=removed)

    pcsc.restart_pcscd()
    up = events.wait_for(PcscEventKind.SERVICE_UP, after=down)
    events.wait_for(PcscEventKind.READER_ADDED, pcsc.readers[0], after=up)
    again = events.wait_for(PcscEventKind.CARD_INSERTED, pcsc.readers[0], after=up)
    assert events.seen()[again].atr == ATR


def test_reports_the_service_down_when_pcscd_is_not_running_at_start(pcsc, events,
                                                                    start_monitor):
    pcsc.stop_pcscd()
    start_monitor()
    down = events.wait_for(PcscEventKind.SERVICE_DOWN)
    assert not [e for e in events.seen()[:down] if e.kind is PcscEventKind.SERVICE_UP]
    pcsc.restart_pcscd()
    events.wait_for(PcscEventKind.SERVICE_UP, after=down)


def test_stop_cancels_a_long_wait(pcsc, events, start_monitor):
    # With a one-hour poll, only SCardCancel can end the blocking wait before join gives up.
    monitor = start_monitor(poll_seconds=3600)
    events.wait_for(PcscEventKind.READER_ADDED, pcsc.readers[1])
    monitor.stop(timeout=10)
    assert not monitor.running


def test_a_failing_callback_does_not_stop_the_monitor(pcsc, cps_card):
    delivered = Events()

    def fragile(event: PcscEvent) -> None:
        delivered(event)
        raise RuntimeError("consumer bug")

    with PcscMonitor(fragile) as monitor:
        delivered.wait_for(PcscEventKind.READER_ADDED, pcsc.readers[0])
        pcsc.insert(cps_card.json_path, reader=0)
        delivered.wait_for(PcscEventKind.CARD_INSERTED, pcsc.readers[0])
        assert monitor.running
