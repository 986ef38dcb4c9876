"""The export folder: `NAME.pdf` + `NAME.json` dropped by the practice software.

Life of a pair of files:
1. seen in the inbox (watchdog event or periodic rescan — events get lost on network shares);
2. taken only when complete: the sidecar exists and both sizes and mtimes are unchanged over the
   stability window (the sidecar is normally written last, but we do not rely on it);
3. claimed atomically by renaming both into `en-cours/` (a rename within one volume is atomic on
   Windows and POSIX, so two bridges or a rescan never take the same pair);
4. checked and committed to the queue; only after the commit are they moved to `done/`. A refused
   pair goes to `error/` with `NAME.reason.txt` saying in French what to fix.

If the process dies at any point, the files are either still in the inbox or in `en-cours/`,
which is handled again at the next start; the queue's idempotency key makes the second commit a
no-op, so nothing is lost and nothing is queued twice.

A file step that fails while the bridge runs (an antivirus or a user holding a file open, a
sub-folder deleted or replaced by a file, a network share gone) leaves the files where they are
and never stops the folder, nor the bridge: it is logged once (no file name: names may carry the
patient's), the other files go on, and what sits in `en-cours/` is finished on every pass with
the start-up logic (committed → moved to `done/` as a duplicate; not committed → processed
again), so it leaves `en-cours/` as soon as the obstacle is gone, without a restart.

The other formats legacy software drops (bridge.folder_formats) follow the same life, as a file
set: one file that starts it (`.hl7`/`.er7`, a CDA `.xml`, an XDM `.zip`, an HPRIM file) and the
files it needs (the PDF an HPRIM file names, or the PDF of the same name). The whole set is
checked for stability, claimed (companions first, the starting file last), committed, then
moved to `done/`, or refused to `error/` with its reason. Every document of an XDM archive is
checked before the first is committed (one bad document refuses the archive); they are then
committed one by one, and an archive whose commit stopped half-way is taken again later: the
idempotency key of a document read from a file set holds no file name (see `_set_intake`), so
the documents already queued are not queued again, whatever name the archive comes back under.
Files matching the folder profile's `ignore` patterns are never touched.

A pass takes up to `PAIRS_IN_FLIGHT` pairs at once, and at most `IN_FLIGHT_BYTES` of their
files (a backlog left by an outage or a batch export is hundreds of pairs): while one pair's
commit is being written to disk the next pairs are read and checked, and pairs whose commits
wait together share one COMMIT (the store's group commit). Each pair is still moved to `done/`
only after the COMMIT holding its job, and an error in one pair stops no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fnmatch
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from bridge.errors import BridgeError, IntakeRejected
from bridge.folder_document import accept_pair
from bridge.folder_formats import (
    PRIMARY_SUFFIXES,
    FolderDocument,
    FolderFormat,
    FolderProfile,
    companion_names,
    primary_format,
    read_file_set,
)
from bridge.jobs import Intake, Job
from mappings.matrix import Matrix

log = structlog.get_logger("dmp_bridge.folder")

CLAIMED_DIR = "en-cours"
DONE_DIR = "done"
ERROR_DIR = "error"
_LAYOUT_NAMES = frozenset({CLAIMED_DIR, DONE_DIR, ERROR_DIR})
ORPHAN_AFTER = dt.timedelta(minutes=10)
# Pairs a pass processes at once. 8: commits then hold several documents each (intake of a
# backlog ≈ 0.9 of raw SQLite's one-document commit rate, benchmarks/intake_rate.py, against
# ≈ 0.7 one pair at a time).
PAIRS_IN_FLIGHT = 8
# ... and at most this many bytes of their files (a document's bytes are copied a few times on
# their way to the queue): small documents go 8 at a time, large scans (up to 15 MiB) one or
# two at a time, a pair larger than this alone.
IN_FLIGHT_BYTES = 32 * 1024 * 1024
# No file larger than this is read: each format refuses much less (PDF 15 MiB, CDA 20 MiB, HL7
# 32 MiB, XDM archive 40 MiB), but only once the file is in memory.
MAX_FILE_BYTES = 64 * 1024 * 1024
TEMPORARY_SUFFIXES = frozenset({".tmp", ".part", ".crdownload", ".partial"})
SNIFF_BYTES = 4096
# An HPRIM file is read whole to find the PDF it names; larger ones are refused by the parser.
COMPANION_SCAN_LIMIT = 2 * 1024 * 1024
SUPPORTED_FR = ("un PDF accompagné de sa fiche JSON du même nom, un message HL7 (.hl7, .er7), "
                "un document CDA (.xml), une archive IHE XDM (.zip) ou un fichier HPRIM")


@dataclass(frozen=True)
class FolderLayout:
    """The inbox and its three sub-folders."""

    inbox: Path

    @property
    def claimed(self) -> Path:
        return self.inbox / CLAIMED_DIR

    @property
    def done(self) -> Path:
        return self.inbox / DONE_DIR

    @property
    def error(self) -> Path:
        return self.inbox / ERROR_DIR

    def create(self) -> None:
        for folder in (self.inbox, self.claimed, self.done, self.error):
            folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Outcome:
    """What happened to one pair of files (for the logs, the demo and tests)."""

    name: str
    accepted: bool
    job: Job | None = None
    duplicate: bool = False
    code: str = ""
    message_fr: str = ""
    jobs: tuple[Job, ...] = ()  # every job of a file set (an XDM archive may hold several)


# Commits an intake and returns (job, created); runs in a worker thread.
EnqueueFn = Callable[[Intake], Awaitable[tuple[Job, bool]]]


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/stem-2.ext`… when a previous file already has that name."""
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    counter = 2
    while target.exists():
        target = folder / f"{stem}-{counter}{suffix}"
        counter += 1
    return target


def _files(folder: Path) -> list[Path]:
    # A file named like one of our sub-folders is an obstacle in its place (folder_layout_unusable
    # says so), not a document.
    return [p for p in folder.iterdir() if p.is_file() and p.name.lower() not in _LAYOUT_NAMES]


def _group(entries: list[Path]) -> dict[str, dict[str, Path]]:
    """Files by base name, then by lower-case extension (practice software writes .PDF too).

    Temporary files of a writer (leading '.' or '~', or ending in .tmp / .part) are skipped: they
    will be renamed to their final name when complete.
    """
    by_stem: dict[str, dict[str, Path]] = {}
    for path in entries:
        if path.name.startswith((".", "~")) or path.suffix.lower() in TEMPORARY_SUFFIXES:
            continue
        by_stem.setdefault(path.stem, {})[path.suffix.lower()] = path
    return by_stem


def _pairs(folder: Path) -> dict[str, dict[str, Path]]:
    return _group(_files(folder))


def _size(paths: Iterable[Path]) -> int:
    """Bytes of the files (0 for one that cannot be read now: its step will say why)."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def _too_large(paths: list[Path]) -> IntakeRejected | None:
    """The refusal of the first file over MAX_FILE_BYTES (not read), if any."""
    for path in paths:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return IntakeRejected(
                f"Le fichier {path.name} fait {size // 2**20} Mo, bien plus que le plus gros "
                f"document que le DMP accepte : il n'a pas été lu (limite "
                f"{MAX_FILE_BYTES // 2**20} Mo). Vérifiez l'export du logiciel.",
                code="FILE_TOO_LARGE", event="folder_file_too_large")
    return None


class ByteBudget:
    """Lets holders share at most `limit` bytes at once. A holder asking for more than the
    limit waits until it can hold it all, so it runs alone; nothing waits for ever, since every
    holder gives its bytes back."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        size = min(size, self._limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self._held + size <= self._limit)
            self._held += size
        try:
            yield
        finally:
            async with self._changed:
                self._held -= size
                self._changed.notify_all()


def _fsync_dir(folder: Path) -> None:
    # Make a rename durable. Directories cannot be opened on Windows: there the rename is
    # journaled by NTFS and this step is skipped.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _move_all(moves: list[tuple[Path, Path]]) -> None:
    """Rename each source to its target, all or none: when one rename fails, those already done
    are put back (as far as the disk lets us) and the error is raised."""
    moved: list[tuple[Path, Path]] = []
    try:
        for source, target in moves:
            os.replace(source, target)
            moved.append((source, target))
    except OSError:
        for source, target in reversed(moved):
            with contextlib.suppress(OSError):
                os.replace(target, source)
        raise


# Keys of troubles that belong to no pair or set (file names never appear in a key that is
# logged, and keys are never logged).
_FOLDERS_KEY = "\0folders"
_CLAIMED_KEY = "\0claimed"


class FolderIntake:
    """Watches one export folder and turns complete pairs and file sets into queued jobs."""

    def __init__(
        self,
        inbox: Path,
        enqueue: EnqueueFn,
        *,
        stability: dt.timedelta,
        rescan_interval: float = 2.0,
        on_outcome: Callable[[Outcome], None] | None = None,
        matrix: Matrix | None = None,
        profile: FolderProfile | None = None,
        ignore: tuple[str, ...] = (),
        in_flight: int = PAIRS_IN_FLIGHT,
        in_flight_bytes: int = IN_FLIGHT_BYTES,
    ) -> None:
        if in_flight < 1 or in_flight_bytes < 1:
            raise ValueError("in_flight and in_flight_bytes must be at least 1")
        self.layout = FolderLayout(inbox)
        self._in_flight = in_flight
        self._in_flight_bytes = in_flight_bytes
        self._matrix = matrix  # when given, a document kind it does not know is refused
        self._profile = profile or FolderProfile()
        self._ignore = tuple(pattern.lower() for pattern in ignore)
        self._enqueue = enqueue
        self._stability = stability
        self._rescan = rescan_interval
        self._on_outcome = on_outcome
        # key → (signatures of the files, first time these signatures were seen)
        self._seen: dict[str, tuple[tuple[tuple[int, int], ...], dt.datetime]] = {}
        # keys of the pairs, sets and folders whose last file step failed (logged once)
        self._stuck: set[str] = set()
        self._wake = asyncio.Event()
        self._observer: BaseObserver | None = None

    # -- watching ---------------------------------------------------------------------------
    def _start_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        wake = self._wake

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                loop.call_soon_threadsafe(wake.set)

        observer = Observer()
        observer.schedule(_Handler(), str(self.layout.inbox), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def _stop_watchdog(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    async def run(self) -> None:
        """Scan until cancelled: on every file event, and at least every `rescan_interval`.

        Never ends on a file error: the first pass finishes what a crash left in `en-cours/`,
        and every pass retries what a failed file step left there.
        """
        try:
            self.layout.create()
        except OSError as exc:  # said again by every pass until it is fixed (see scan_once)
            self._trouble(_FOLDERS_KEY, "folder_layout_unusable", exc)
        try:
            self._start_watchdog(asyncio.get_running_loop())
        except OSError as exc:  # e.g. inotify limits: the periodic rescan still works
            log.warning("folder_watch_unavailable", error=type(exc).__name__)
        try:
            while True:
                try:
                    await self.scan_once()
                except OSError as exc:  # every file step is guarded: this is the last net
                    log.error("folder_scan_failed", error=type(exc).__name__)
                self._wake.clear()
                # Wait for an event, but never longer than the rescan interval, and at most the
                # stability window so a pair seen once is looked at again in time.
                timeout = min(self._rescan, max(self._stability.total_seconds(), 0.05))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        finally:
            self._stop_watchdog()

    # -- file errors ------------------------------------------------------------------------
    def _trouble(self, key: str, event: str, exc: OSError, **fields: str) -> None:
        """Log a failed file step: a warning the first time, then quietly while it lasts (it is
        retried on every pass). Only roles of folders and error kinds: file names may carry the
        patient's name, and `key` holds one."""
        emit = log.debug if key in self._stuck else log.warning
        self._stuck.add(key)
        emit(event, error=type(exc).__name__, errno=exc.errno, folder=self._role(exc.filename),
             target=self._role(exc.filename2), **fields)

    def _relieved(self, key: str, event: str, **fields: str) -> None:
        if key in self._stuck:
            self._stuck.discard(key)
            log.info(event, **fields)

    def _role(self, raw: object) -> str | None:
        """Which of our folders a failing path is (or is in): a role, never a file name."""
        if not isinstance(raw, str | os.PathLike):
            return None
        path = Path(raw)
        roles = {self.layout.inbox: "inbox", self.layout.claimed: CLAIMED_DIR,
                 self.layout.done: DONE_DIR, self.layout.error: ERROR_DIR}
        return roles.get(path) or roles.get(path.parent, "other")

    async def _guarded(self, key: str, stage: str,
                       step: Awaitable[Outcome | None]) -> Outcome | None:
        """One pair's or set's step; a file error (a file held open by an antivirus, a folder
        gone) leaves its files where they are: taken again at the next pass. So does any other
        error (a bug): logged once, it stops neither the other pairs nor the folder."""
        try:
            outcome = await step
        except OSError as exc:
            self._trouble(key, "folder_files_left_in_place", exc, stage=stage)
            return None
        except Exception as exc:  # a bug for this pair or set: not for the others, nor the folder
            emit = log.debug if key in self._stuck else log.error
            self._stuck.add(key)
            emit("folder_step_failed", error=type(exc).__name__, stage=stage)
            return None
        if outcome is not None:
            self._relieved(key, "folder_files_unblocked", stage=stage)
        return outcome

    def _ensure_folders(self) -> None:
        """Re-create a sub-folder someone deleted; say so (once) when one cannot be made."""
        try:
            for folder in (self.layout.claimed, self.layout.done, self.layout.error):
                folder.mkdir(exist_ok=True)
        except OSError as exc:  # e.g. a file named done: only the steps that need it wait
            self._trouble(_FOLDERS_KEY, "folder_layout_unusable", exc)
        else:
            self._relieved(_FOLDERS_KEY, "folder_layout_restored")

    # -- one pass ---------------------------------------------------------------------------
    def _ignored(self, path: Path) -> bool:
        name = path.name.lower()
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self._ignore)

    async def scan_once(self, now: dt.datetime | None = None) -> list[Outcome]:
        """Finish what waits in `en-cours/`, then look at the inbox once and process every pair
        and file set that is stable. A file error never escapes: the files stay where they are."""
        now = now or dt.datetime.now(dt.UTC)
        self._ensure_folders()
        outcomes, claimed_keys = await self._finish_claimed()
        try:
            entries = [p for p in _files(self.layout.inbox) if not self._ignored(p)]
        except OSError as exc:
            log.error("folder_unreadable", error=type(exc).__name__)
            return outcomes
        by_stem = _group(entries)
        by_name = {p.name.lower(): p for stem in by_stem.values() for p in stem.values()}
        keys: set[str] = set()
        reserved: set[Path] = set()
        for primary in sorted(_primaries(by_stem), key=lambda p: p.name):
            key = _set_key(primary)
            keys.add(key)
            outcome = await self._guarded(key, "inbox_set",
                                          self._consider_set(primary, by_name, reserved, now))
            if outcome is not None:
                outcomes.append(outcome)
        pairs: list[tuple[str, dict[str, Path]]] = []
        for stem, files in sorted(by_stem.items()):
            rest = {s: p for s, p in files.items() if p not in reserved
                    and not (s in PRIMARY_SUFFIXES and not _is_pair(files))}
            if rest:
                keys.add(stem)
                pairs.append((stem, rest))
        outcomes.extend(await self._pairs_in_flight(pairs, now))
        for gone in set(self._seen) - keys:
            del self._seen[gone]
        self._stuck &= keys | claimed_keys | {_FOLDERS_KEY, _CLAIMED_KEY}
        return outcomes

    async def _consider(
        self, stem: str, files: dict[str, Path], now: dt.datetime
    ) -> Outcome | None:
        pdf, sidecar = files.get(".pdf"), files.get(".json")
        unknown = [p for s, p in files.items() if s not in (".pdf", ".json")]
        if unknown and pdf is None and sidecar is None:
            # Give a writer that renames its files time to do so before calling them unsupported.
            if not self._waited_long(stem, now):
                return None
            return self._quarantine_unclaimed(
                unknown,
                "FILE_UNSUPPORTED",
                f"Le fichier {unknown[0].name} n'est pas d'un format pris en charge dans ce "
                f"dossier : déposez {SUPPORTED_FR}.",
            )
        if pdf is None or sidecar is None:
            return self._consider_incomplete(stem, pdf, sidecar, now)
        if not self._is_stable(stem, [pdf, sidecar], now):
            return None
        return await self._take(stem, pdf, sidecar)

    def _waited_long(self, key: str, now: dt.datetime) -> bool:
        """True once `key` has waited ORPHAN_AFTER since first seen (then forgotten)."""
        first_seen = self._seen.get(key, ((), now))[1]
        self._seen[key] = ((), first_seen)
        if now - first_seen < ORPHAN_AFTER:
            return False
        del self._seen[key]
        return True

    def _consider_incomplete(
        self, stem: str, pdf: Path | None, sidecar: Path | None, now: dt.datetime
    ) -> Outcome | None:
        """Half a pair waits for its other half, and is reported if it never comes."""
        lonely = pdf or sidecar
        if lonely is None or not self._waited_long(stem, now):
            return None
        missing = "la fiche JSON" if sidecar is None else "le PDF"
        return self._quarantine_unclaimed(
            [lonely],
            "PAIR_INCOMPLETE",
            f"{lonely.name} attend depuis plus de 10 minutes sans {missing} du même nom. "
            f"Déposez {missing} ({stem}{'.json' if sidecar is None else '.pdf'}), puis "
            "remettez les deux fichiers dans le dossier d'entrée.",
        )

    def _is_stable(self, key: str, paths: list[Path], now: dt.datetime) -> bool:
        """True once every file kept the same size and mtime for the stability window."""
        signatures = tuple(_signature(p) for p in paths)
        if any(sig is None for sig in signatures):
            return False
        current = tuple(sig for sig in signatures if sig is not None)
        previous = self._seen.get(key)
        if previous is None or previous[0] != current:
            self._seen[key] = (current, now)
            if self._stability > dt.timedelta(0):
                return False
        elif now - previous[1] < self._stability:
            return False
        del self._seen[key]
        return True

    # -- file sets (HL7, CDA, XDM, HPRIM) ---------------------------------------------------
    async def _consider_set(self, primary: Path, by_name: dict[str, Path], reserved: set[Path],
                            now: dt.datetime) -> Outcome | None:
        fmt, needed, own = await asyncio.to_thread(_describe, primary)
        if fmt is None:
            return None
        companions = _companions(primary, needed, own, by_name)
        reserved.update(companions)
        key = _set_key(primary)
        missing = [n for n in needed if n.lower() not in by_name]
        if missing:
            if not self._waited_long(key, now):
                return None  # the named PDF may still be on its way
            return await self._process_set(fmt, primary, companions, claimed=False)
        if not self._is_stable(key, [primary, *companions], now):
            return None
        # The starting file last: see _finish_claimed.
        claimed = self._claim([*companions, primary])
        if claimed is None:
            return None
        return await self._process_set(fmt, claimed[-1], claimed[:-1], claimed=True)

    async def _process_set(self, fmt: FolderFormat, primary: Path, companions: list[Path], *,
                           claimed: bool) -> Outcome | None:
        files = [*companions, primary]
        # An OSError here leaves the files where they are (see _guarded).
        if (refusal := _too_large(files)) is not None:
            return self._quarantine(files, primary.stem, refusal, pair=False)
        data = primary.read_bytes()
        extra = {p.name: p.read_bytes() for p in companions}
        try:
            documents = await asyncio.to_thread(
                read_file_set, fmt, primary.name, data, extra, profile=self._profile,
                matrix=self._matrix)
        except BridgeError as exc:
            return self._quarantine(files, primary.stem, exc, pair=False)
        except Exception as exc:  # a parser bug must not stop the folder, nor lose the files
            log.error("folder_set_parse_failed", error=type(exc).__name__, format=fmt.value)
            return self._quarantine(files, primary.stem, _internal_error(pair=False),
                                    pair=False)
        if not claimed:  # only a refusal may come from unclaimed files
            return None
        # Every document was checked above; they are now committed one by one. If a commit fails
        # half-way, the set is taken again later and the documents already queued are found by
        # their key (_set_intake), whatever the set's name then.
        jobs: list[Job] = []
        created_any = False
        for index, document in enumerate(documents):
            try:
                job, created = await self._enqueue(_set_intake(fmt, primary.name, index,
                                                               document))
            except Exception as exc:  # not committed: give the files back for a retry
                log.error("folder_enqueue_failed", error=type(exc).__name__,
                          documents_queued=len(jobs), documents=len(documents))
                await asyncio.to_thread(self._give_back, files)
                return None
            jobs.append(job)
            created_any = created_any or created
        self._to_done(files)
        outcome = Outcome(primary.stem, True, job=jobs[0], duplicate=not created_any,
                          jobs=tuple(jobs))
        log.info("folder_set_queued", format=fmt.value, documents=len(jobs),
                 duplicate=not created_any)
        self._report(outcome)
        return outcome

    # -- claiming and processing -----------------------------------------------------------
    def _claim(self, files: list[Path]) -> list[Path] | None:
        """Rename `files` into `en-cours/` in this order, all or none: an OSError when one cannot
        be moved (nothing moved then). None while a file of one of these names still waits
        there to be finished: it is never overwritten, and these files are taken at a later
        pass."""
        moves = [(path, self.layout.claimed / path.name) for path in files]
        if any(target.exists() for _, target in moves):
            log.debug("folder_claim_deferred")
            return None
        _move_all(moves)
        _fsync_dir(self.layout.claimed)
        return [target for _, target in moves]

    async def _pairs_in_flight(self, pairs: list[tuple[str, dict[str, Path]]],
                               now: dt.datetime) -> list[Outcome]:
        """Consider the pairs, up to `in_flight` at once; their outcomes in pair order.
        Each pair's own steps are as when alone (its files, its keys in `_seen`/`_stuck`)."""
        results: list[Outcome | None] = [None] * len(pairs)
        todo = iter(enumerate(pairs))
        budget = ByteBudget(self._in_flight_bytes)

        async def worker() -> None:
            for index, (stem, files) in todo:  # shared: each takes the next pair when free
                async with budget.hold(_size(files.values())):
                    results[index] = await self._guarded(stem, "inbox_pair",
                                                         self._consider(stem, files, now))

        # Errors are each pair's own (_guarded); a stop of the bridge cancels them together.
        async with asyncio.TaskGroup() as group:
            for _ in range(min(self._in_flight, len(pairs))):
                group.create_task(worker())
        return [outcome for outcome in results if outcome is not None]

    async def _take(self, stem: str, pdf: Path, sidecar: Path) -> Outcome | None:
        # Sidecar first: if we die between the two renames, the PDF alone stays in the inbox and
        # the sidecar waits in en-cours/, which _finish_claimed() reunites.
        claimed = self._claim([sidecar, pdf])
        if claimed is None:
            return None
        claimed_json, claimed_pdf = claimed
        return await self._process(stem, claimed_pdf, claimed_json)

    async def recover_claimed(self) -> list[Outcome]:
        """Finish pairs and file sets left in `en-cours/` by a crash or by a file step that
        failed (they may already be committed). `scan_once` does it first on every pass."""
        outcomes, _keys = await self._finish_claimed()
        return outcomes

    async def _finish_claimed(self) -> tuple[list[Outcome], set[str]]:
        """(outcomes, keys of the pairs and sets found in `en-cours/`)."""
        outcomes: list[Outcome] = []
        keys: set[str] = set()
        try:
            claimed = _pairs(self.layout.claimed)
        except OSError as exc:
            self._trouble(_CLAIMED_KEY, "folder_claimed_unreadable", exc)
            return outcomes, keys
        self._relieved(_CLAIMED_KEY, "folder_claimed_readable")
        if not claimed:
            return outcomes, keys
        by_name = {p.name.lower(): p for files in claimed.values() for p in files.values()}
        used: set[Path] = set()
        undescribed = False
        for primary in sorted(_primaries(claimed), key=lambda p: p.name):
            # The starting file is claimed last: when it is here, its companions are too.
            key = _set_key(primary)
            keys.add(key)
            try:
                fmt, needed, own = await asyncio.to_thread(_describe, primary)
            except OSError as exc:
                # Unreadable for now: its companions (unknown) must not be given back below.
                self._trouble(key, "folder_files_left_in_place", exc, stage="claimed_set")
                used.add(primary)
                undescribed = True
                continue
            if fmt is None:
                continue
            companions = _companions(primary, needed, own, by_name)
            used.update([primary, *companions])
            outcome = await self._guarded(key, "claimed_set", self._process_set(
                fmt, primary, companions, claimed=True))
            if outcome is not None:
                outcomes.append(outcome)
        try:
            inbox = _pairs(self.layout.inbox)
        except OSError:
            inbox = {}
        for stem, all_files in sorted(claimed.items()):
            files = {s: p for s, p in all_files.items() if p not in used}
            if not files:
                continue
            keys.add(stem)
            outcome = await self._guarded(stem, "claimed_pair", self._finish_pair(
                stem, files, inbox.get(stem, {}), give_back=not undescribed))
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes, keys

    async def _finish_pair(self, stem: str, files: dict[str, Path], in_inbox: dict[str, Path],
                           *, give_back: bool) -> Outcome | None:
        sidecar, pdf = files.get(".json"), files.get(".pdf")
        if sidecar is not None and pdf is None and ".pdf" in in_inbox:
            # Died between the two renames of _take(): bring the PDF next to its sidecar.
            pdf = self.layout.claimed / in_inbox[".pdf"].name
            os.replace(in_inbox[".pdf"], pdf)
        if sidecar is not None and pdf is not None:
            return await self._process(stem, pdf, sidecar)
        if give_back:
            # Half a pair, or the companions of a set whose starting file was not claimed: give
            # them back to the inbox, where they are seen again.
            _move_all([(path, _free_name(self.layout.inbox, path.name))
                       for path in files.values() if path.exists()])
        return None

    async def _process(self, stem: str, pdf: Path, sidecar: Path) -> Outcome | None:
        # An OSError here leaves the files where they are (see _guarded).
        if (refusal := _too_large([pdf, sidecar])) is not None:
            return self._quarantine([pdf, sidecar], stem, refusal)
        pdf_bytes = pdf.read_bytes()
        sidecar_bytes = sidecar.read_bytes()
        try:
            accept_pair(pdf_bytes, sidecar_bytes, pdf_name=pdf.name, sidecar_name=sidecar.name,
                        matrix=self._matrix)
        except BridgeError as exc:
            return self._quarantine([pdf, sidecar], stem, exc)
        except Exception as exc:  # a checker bug must not stop the folder, nor lose the files
            log.error("folder_pair_check_failed", error=type(exc).__name__)
            return self._quarantine([pdf, sidecar], stem, _internal_error(pair=True))
        pdf_sha256 = hashlib.sha256(pdf_bytes).digest()  # for the key and for the queue
        key = hashlib.sha256(
            b"folder\0"
            + os.fsencode(pdf.name)  # its bytes, even those that are not UTF-8 (Linux)
            + b"\0"
            + pdf_sha256
            + hashlib.sha256(sidecar_bytes).digest()
        ).hexdigest()
        intake = Intake(
            channel="folder",
            source_ref=pdf.name,
            idempotency_key=key,
            payload=pdf_bytes,
            metadata=sidecar_bytes,
            received_at=dt.datetime.now(dt.UTC),
            payload_sha256=pdf_sha256.hex(),
        )
        try:
            job, created = await self._enqueue(intake)
        except Exception as exc:  # the store could not commit: leave the files for a retry
            log.error("folder_enqueue_failed", error=type(exc).__name__)
            await asyncio.to_thread(self._give_back, [pdf, sidecar])
            return None
        # Committed: only now may the source files leave en-cours/.
        self._to_done([pdf, sidecar])
        outcome = Outcome(stem, True, job=job, duplicate=not created, jobs=(job,))
        log.info("folder_document_queued", job_id=job.id, duplicate=not created)
        self._report(outcome)
        return outcome

    def _to_done(self, files: list[Path]) -> None:
        """After the commit only. All or none: if one cannot move (held open by an antivirus,
        done/ gone), they all stay in en-cours/ and the next pass finds the job committed."""
        _move_all([(path, _free_name(self.layout.done, path.name)) for path in files])
        _fsync_dir(self.layout.done)

    def _give_back(self, files: list[Path]) -> None:
        """Back to the inbox under their own names: an HPRIM file names its PDF, a sidecar
        names its PDF by its stem. If a new file of one of these names arrived meanwhile, they
        stay in en-cours/ (finished at the next pass): a renamed sidecar could meet another
        PDF."""
        moves = [(path, self.layout.inbox / path.name) for path in files]
        if any(target.exists() for _, target in moves):
            log.info("folder_give_back_deferred", files=len(files))
            return
        _move_all(moves)

    def _quarantine(self, files: list[Path], stem: str, exc: BridgeError, *,
                    pair: bool = True) -> Outcome:
        moves = [(source, _free_name(self.layout.error, source.name)) for source in files]
        reason = _free_name(self.layout.error, f"{Path(moves[-1][1].name).stem}.reason.txt")
        # The reason first, so a file never sits in error/ without it; it goes again if the
        # files cannot follow (they then stay where they are, and are refused at a later pass).
        try:
            # A name with a byte that is not UTF-8 is written with its \udcXX escape.
            reason.write_text(_reason_text([target.name for _, target in moves], exc, pair=pair),
                              encoding="utf-8", errors="backslashreplace")
            _move_all(moves)
        except OSError:
            with contextlib.suppress(OSError):
                reason.unlink(missing_ok=True)
            raise
        _fsync_dir(self.layout.error)
        log.warning("folder_document_rejected", file_code=exc.code, event_detail=exc.event)
        outcome = Outcome(stem, False, code=exc.code, message_fr=exc.message_fr)
        self._report(outcome)
        return outcome

    def _quarantine_unclaimed(self, files: list[Path], code: str, message_fr: str) -> Outcome:
        return self._quarantine(files, files[0].stem, IntakeRejected(message_fr, code=code))

    def _report(self, outcome: Outcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)


def _internal_error(*, pair: bool) -> BridgeError:
    """The refusal of files a bug of dmp-bridge could not read (they go to error/, not lost)."""
    what = "ces fichiers : déposez-les de nouveau" if pair else "ce fichier : déposez-le de nouveau"
    return BridgeError(
        f"Erreur interne de dmp-bridge à la lecture de {what} plus tard ; si l'erreur persiste, "
        "contactez le support.",
        code="INTERNAL_ERROR", event=f"folder_{'pair' if pair else 'set'}_internal_error")


def _reason_text(names: list[str], exc: BridgeError, *, pair: bool) -> str:
    """NAME.reason.txt: what was refused, why, and what to do (French, for the practice)."""
    again = "le PDF et sa fiche JSON" if pair else "le fichier (et le PDF qui l'accompagne)"
    return (
        f"Document refusé par dmp-bridge le {dt.datetime.now().astimezone():%d/%m/%Y à %H:%M}"
        f"\n\nFichiers : {', '.join(names)}\n"
        f"Motif ({exc.code}) : {exc.message_fr}\n\n"
        f"Que faire : corrigez le problème indiqué, puis déposez de nouveau {again} dans le "
        "dossier d'entrée. Rien n'a été envoyé au DMP.\n"
    )


def _is_pair(files: dict[str, Path]) -> bool:
    return ".pdf" in files and ".json" in files


def _primaries(by_stem: dict[str, dict[str, Path]]) -> list[Path]:
    """The files that start a set (not the .txt of a PDF + JSON pair's stem)."""
    return [p for files in by_stem.values() for s, p in files.items()
            if s in PRIMARY_SUFFIXES and not _is_pair(files)]


def _set_key(primary: Path) -> str:
    return "\0set\0" + primary.name


def _companions(primary: Path, needed: tuple[str, ...], own: bool,
                by_name: dict[str, Path]) -> list[Path]:
    """The files of `by_name` (lower-case name → path) a starting file needs next to it."""
    wanted = [*needed, *([f"{primary.stem}.pdf"] if own else [])]
    return [by_name[n.lower()] for n in wanted
            if n.lower() in by_name and by_name[n.lower()] != primary]


def _describe(primary: Path) -> tuple[FolderFormat | None, tuple[str, ...], bool]:
    """The format of a starting file and the companions it needs (reads the file)."""
    with primary.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
    fmt = primary_format(primary.name, head)
    if fmt is None:
        return None, (), False
    data = head
    if fmt is FolderFormat.HPRIM_SANTE and primary.stat().st_size <= COMPANION_SCAN_LIMIT:
        data = primary.read_bytes()
    needed, own = companion_names(fmt, primary.name, data)
    return fmt, needed, own


def _set_intake(fmt: FolderFormat, name: str, index: int, document: FolderDocument) -> Intake:
    """The intake of the `index`-th document read from the file set started by `name`.

    Its idempotency key holds no file name, on purpose. A job is made of the payload and the
    metadata only (the name is just its label, `source_ref`), and `read_file_set` is pure: the
    metadata comes from the files' bytes and the folder's profile alone (identity traits a
    profile reads from a file name are in the metadata, so in the key). Two intakes with the
    same key would therefore put the very same document in the DMP twice: keyed by content, a
    set whose commit stopped half-way, or that comes back renamed (by a user, or by
    `_free_name`), finds the documents already queued instead of queuing them again. The format
    and the document's place in the set complete the key, as before.
    """
    payload_sha256 = hashlib.sha256(document.payload).digest()
    key = hashlib.sha256(
        b"folder-set\0" + fmt.value.encode() + b"\0"
        + str(index).encode() + b"\0" + payload_sha256
        + hashlib.sha256(document.metadata).digest()
    ).hexdigest()
    ref = name if document.label == name else f"{name} › {document.label}"
    return Intake(channel="folder", source_ref=ref[:200], idempotency_key=key,
                  payload=document.payload, metadata=document.metadata,
                  received_at=dt.datetime.now(dt.UTC), payload_sha256=payload_sha256.hex())
