"""A private PC/SC stack for tests: pcscd + vpcd + emulated CPS-like cards (Linux, root).

    env = PcscEnvironment(workdir)          # or the `pcsc` fixture of tests/card/conftest.py
    env.start()
    card = make_test_card(tmp_path, pki_dir=pki_dir, pin="1234")
    handle = env.insert(card.json_path, reader=0)     # reader "Virtual PCD 00 00"
    subprocess.run([...bridge...], env={**os.environ, **env.env})
    env.remove(handle); env.restart_pcscd(); env.stop()

Isolation (spec/card-auth.md B5):
- vpcd listens on 0.0.0.0:35963/35964, so pcscd and the emulators run in a named network
  namespace of their own (`ip netns add`); the namespace outlives pcscd, so a restarted pcscd
  and the running emulators still meet on its loopback.
- pcsc-lite 1.9.9's pcscd does NOT honour `PCSCLITE_CSOCK_NAME` (checked: it always serves
  /run/pcscd/pcscd.comm), but its client library does. So pcscd runs in a private mount
  namespace where a directory of ours is bind-mounted on /run/pcscd; its socket and PID file
  land in that directory, and clients reach it with ``PCSCLITE_CSOCK_NAME=<dir>/pcscd.comm``.
  A system pcscd is never touched. `start()` sets that variable in this process's environment
  (pyscard in the test process) and `env` gives it to subprocesses.
- libpcsclite reads the variable once per process, at its first use: the socket directory is
  therefore fixed per process, and at most one environment runs at a time in a process. Test
  packages share it through `shared_environment` (the session fixture does).
- pcscd runs with ``-f`` only: never ``-a`` or debug, which log the PIN.
- Processes are started so that the PID we hold is the real pcscd / emulator (each launcher
  execs the next) and are stopped by that PID; readiness is polled, never slept for.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from smartcard import scard

from bridge.card_identity import Situation
from service.test_pki import generate_test_pki, issue_card_certificate
from tests.card.emulator import pin_record
from tests.card.vpcd_client import VPCD_PORTS

REPO_ROOT = Path(__file__).resolve().parents[2]
READERS = ("Virtual PCD 00 00", "Virtual PCD 00 01")
VPCD_DRIVER_CONF = Path("/etc/reader.conf.d/vpcd")
READY_TIMEOUT = 20.0
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_names = itertools.count(1)


class PcscSetupError(RuntimeError):
    """The machine cannot run the PC/SC test stack (what is missing and how to install it)."""


@dataclass
class CardHandle:
    """One emulated card inserted in one reader."""

    reader_index: int
    reader: str
    card_json: Path
    process: subprocess.Popen[bytes]
    log: Path


@dataclass(frozen=True)
class EmulatedCard:
    """The files of a test card made by `make_test_card`."""

    json_path: Path
    national_id: str
    auth_cert: x509.Certificate
    sign_cert: x509.Certificate


def make_test_card(
    directory: Path,
    *,
    pki_dir: Path,
    pin: str,
    national_id: str = "899700366240",
    family_name: str = "INFIRMIERE",
    given_name: str = "CLAIRE",
    kind: str = "CPS",
    profession_code: str = "60",
    specialty_code: str | None = None,
    situations: tuple[Situation, ...] = (
        Situation(1, "499700366240007", "CABINET INFIRMIER DEMO", "SA07"),
    ),
    max_tries: int = 3,
) -> EmulatedCard:
    """Write a card JSON, its two RSA-2048 keys and their certificates under `directory`.

    The certificates are issued by the test authority in `pki_dir` (created if needed), so the
    project's DMP simulator trusts them. The PIN is stored only as a salted hash.
    """
    layout = generate_test_pki(pki_dir)
    card_dir = directory / f"card-{national_id}-{next(_names)}"
    card_dir.mkdir(parents=True)
    certs: dict[str, x509.Certificate] = {}
    for stem, authentication in (("auth", True), ("sign", False)):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = issue_card_certificate(
            layout, key.public_key(), national_id=national_id, family_name=family_name,
            given_name=given_name, authentication=authentication,
        )
        (card_dir / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
        (card_dir / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        certs[stem] = cert
    description = {
        "national_id": national_id,
        "family_name": family_name,
        "given_name": given_name,
        "kind": kind,
        "profession_code": profession_code,
        "specialty_code": specialty_code,
        "situations": [vars(s) for s in situations],
        "pin": pin_record(pin),
        "max_tries": max_tries,
        "authentication": {"key": "auth.key", "cert": "auth.pem"},
        "signature": {"key": "sign.key", "cert": "sign.pem"},
    }
    json_path = card_dir / "card.json"
    json_path.write_text(json.dumps(description, indent=2, ensure_ascii=False), "utf-8")
    return EmulatedCard(json_path, national_id, certs["auth"], certs["sign"])


def _which(program: str) -> str:
    found = shutil.which(program, path=os.environ.get("PATH", "") + ":" + _SYSTEM_PATH)
    if found is None:
        raise PcscSetupError(
            f"`{program}` is missing: install pcscd, vsmartcard-vpcd, iproute2 and util-linux "
            "(scripts/bootstrap.sh test does it)."
        )
    return found


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT,
                explain: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s. {explain()}")
        time.sleep(0.05)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "Log tail:\n" + "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


@dataclass(eq=False)
class PcscEnvironment:
    """pcscd with the two vpcd readers in a private network and mount namespace.

    `env`: the environment variables a subprocess needs to reach this pcscd.
    `readers`: the two reader names, index 0 (port 35963) and 1 (port 35964).
    """

    workdir: Path  # logs of pcscd and of the emulators
    readers: tuple[str, str] = field(default=READERS, init=False)
    _netns: str = field(default="", init=False)
    _run_dir: Path = field(init=False, default_factory=lambda: Path(tempfile.gettempdir())
                           / f"dmpb-pcscd-{os.getpid()}")
    _pcscd: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _cards: dict[int, CardHandle] = field(default_factory=dict, init=False)

    @property
    def socket_path(self) -> Path:
        return self._run_dir / "pcscd.comm"

    @property
    def env(self) -> dict[str, str]:
        return {"PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    @property
    def pcscd_log(self) -> Path:
        return self.workdir / "pcscd.log"

    @property
    def pcscd_pid(self) -> int | None:
        return self._pcscd.pid if self._pcscd is not None else None

    def start(self) -> None:
        """Create the namespace, start pcscd, wait until both readers are listed."""
        if os.name != "posix" or os.geteuid() != 0:
            raise PcscSetupError("The PC/SC test stack needs Linux and root (namespaces).")
        for path in (Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so"), VPCD_DRIVER_CONF):
            if not path.exists():
                raise PcscSetupError(f"{path} is missing: install the vsmartcard-vpcd package.")
        for program in ("ip", "pcscd", "unshare", "mount"):
            _which(program)
        current = os.environ.get("PCSCLITE_CSOCK_NAME")
        if current not in (None, str(self.socket_path)):
            raise PcscSetupError(
                f"PCSCLITE_CSOCK_NAME is already {current} in this process; libpcsclite reads "
                "it once, so only one PcscEnvironment may run per process."
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._run_dir.mkdir(mode=0o700, exist_ok=True)
        self._netns = f"dmpb-pcsc-{os.getpid()}-{next(_names)}"
        subprocess.run([_which("ip"), "netns", "add", self._netns], check=True)
        atexit.register(self.stop)
        subprocess.run([_which("ip"), "-n", self._netns, "link", "set", "lo", "up"], check=True)
        os.environ["PCSCLITE_CSOCK_NAME"] = str(self.socket_path)
        self._start_pcscd()

    def insert(self, card_json: Path, reader: int = 0) -> CardHandle:
        """Start the emulator of `card_json` in reader `reader` (0 or 1); wait until present."""
        if reader in self._cards:
            raise ValueError(f"{self.readers[reader]} already holds a card: remove it first")
        log = self.workdir / f"card-{reader}-{next(_names)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [_which("ip"), "netns", "exec", self._netns, sys.executable, "-m",
                 "tests.card.run_card", str(card_json), "--port", str(VPCD_PORTS[reader])],
                cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            )
        handle = CardHandle(reader, self.readers[reader], card_json, process, log)
        self._cards[reader] = handle
        self._wait_for_card(handle, present=True)
        return handle

    def remove(self, handle: CardHandle) -> None:
        """Pull the card out (stop its emulator) and wait until the reader is empty."""
        _stop_process(handle.process)
        self._cards.pop(handle.reader_index, None)
        if self._pcscd is not None and self._pcscd.poll() is None:
            self._wait_for_card(handle, present=False)

    def remove_all(self) -> None:
        for handle in list(self._cards.values()):
            self.remove(handle)

    def stop_pcscd(self) -> None:
        """Stop pcscd (the cards stay in their readers, waiting for it)."""
        if self._pcscd is not None:
            _stop_process(self._pcscd)
            self._pcscd = None

    def restart_pcscd(self) -> None:
        """Stop pcscd, start it again, wait until every inserted card is seen again."""
        self.stop_pcscd()
        self._start_pcscd()
        for handle in self._cards.values():
            self._wait_for_card(handle, present=True)

    def stop(self) -> None:
        """Stop every emulator and pcscd, delete the namespace (idempotent)."""
        for handle in list(self._cards.values()):
            _stop_process(handle.process)
        self._cards.clear()
        self.stop_pcscd()
        if self._netns:
            subprocess.run([_which("ip"), "netns", "delete", self._netns], check=False)
            self._netns = ""
        shutil.rmtree(self._run_dir, ignore_errors=True)
        with contextlib.suppress(ValueError):
            atexit.unregister(self.stop)

    def written_files(self) -> list[Path]:
        """Every file this environment wrote (logs), for leak scans."""
        return sorted(p for p in self.workdir.rglob("*") if p.is_file())

    def card_present(self, reader: str) -> bool:
        """Whether pcscd currently sees a card in `reader` (False when pcscd is unreachable)."""
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            return False
        try:
            hresult, states = scard.SCardGetStatusChange(
                context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
            if hresult != scard.SCARD_S_SUCCESS:
                return False
            return bool(states[0][1] & scard.SCARD_STATE_PRESENT)
        finally:
            scard.SCardReleaseContext(context)

    def listed_readers(self) -> list[str]:
        """The readers pcscd lists ([] when it is unreachable)."""
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            return []
        try:
            hresult, readers = scard.SCardListReaders(context, [])
            return list(readers) if hresult == scard.SCARD_S_SUCCESS else []
        finally:
            scard.SCardReleaseContext(context)

    def _wait_for_card(self, handle: CardHandle, *, present: bool) -> None:
        def reached() -> bool:
            if present and handle.process.poll() is not None:
                self._cards.pop(handle.reader_index, None)
                raise PcscSetupError(f"The card emulator stopped. {_tail(handle.log)}")
            return self.card_present(handle.reader) == present

        state = "a card" if present else "no card"
        _wait_until(reached, f"{state} in {handle.reader}", explain=lambda: _tail(handle.log))

    def _start_pcscd(self) -> None:
        # ip execs unshare, which execs sh, which execs pcscd: the Popen PID is pcscd's.
        script = 'mkdir -p /run/pcscd && mount --bind "$1" /run/pcscd && exec pcscd -f'
        with self.pcscd_log.open("ab") as out:
            self._pcscd = subprocess.Popen(
                [_which("ip"), "netns", "exec", self._netns, _which("unshare"), "--mount",
                 "--propagation", "private", "sh", "-c", script, "sh", str(self._run_dir)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={"PATH": _SYSTEM_PATH, "LANG": "C.UTF-8"},
            )
        pcscd = self._pcscd
        _wait_until(
            lambda: pcscd.poll() is not None or set(self.readers) <= set(self.listed_readers()),
            "pcscd with the vpcd readers", explain=lambda: _tail(self.pcscd_log),
        )
        if pcscd.poll() is not None:
            raise PcscSetupError(f"pcscd stopped at start. {_tail(self.pcscd_log)}")
        comm = Path(f"/proc/{pcscd.pid}/comm").read_text().strip()
        if comm != "pcscd":
            raise PcscSetupError(f"PID {pcscd.pid} is {comm!r}, not pcscd (pitfall B5.4)")


class _Shared:
    """The process's environment and how many fixtures use it."""

    environment: PcscEnvironment | None = None
    users = 0


@contextlib.contextmanager
def shared_environment(workdir: Path) -> Iterator[PcscEnvironment]:
    """The process's PcscEnvironment, started by the first user and stopped by the last.

    Use it from session fixtures of several test packages (tests/card, tests/e2e, …): they get
    the same pcscd, since only one can run per process. `workdir` is used by the first caller.
    """
    if _Shared.environment is None:
        environment = PcscEnvironment(workdir)
        try:
            environment.start()
        except BaseException:
            environment.stop()
            raise
        _Shared.environment = environment
    _Shared.users += 1
    try:
        yield _Shared.environment
    finally:
        _Shared.users -= 1
        if _Shared.users == 0:
            _Shared.environment.stop()
            _Shared.environment = None
