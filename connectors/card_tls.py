"""Mutual TLS to the DMP with a key that stays on the CPS card (direct mode, EX_0.X-1040).

Python's `ssl` module needs the private key as a file, and a card key never leaves the card
(spec/card-auth.md B3, B5.12). So `CardTlsForwarder` is a small loopback forwarder: the DMP
client (aiohttp, `connectors.dmp_client`) speaks plain HTTP to 127.0.0.1:<port>, and for each
local connection the forwarder opens a TLS 1.2 connection to the real DMP with tlslite-ng (pure
Python), presents the card's certificate, and has the card sign the CertificateVerify. The key
object tlslite sees (`CardRsaKey`) holds only the public modulus and exponent; its `sign`
sends the DigestInfo to the card. Bytes are then pumped both ways unchanged, so one local
keep-alive connection keeps one TLS session, and the card signs once per new connection.

Why not stunnel + libp11 (the route tested in spec/card-auth.md B3): stunnel would need the
PIN in its configuration file (`engineCtrl = PIN:`) or a login of its own, while the PIN must
never be written anywhere and the card is already logged in by the bridge; it is one more
daemon to install, start, watch and stop; and it is not there on the Windows PCs of practices.

Choices, and why:
- TLS 1.2 only, client signatures rsa_pkcs1_sha256 only: a CPS card signs a SHA-256 DigestInfo
  with PKCS#1 v1.5 and nothing else on our card path. TLS 1.3 requires RSA-PSS for
  CertificateVerify, which this path does not offer. TLS 1.2 has one signature-algorithm list
  for both sides, so the DMP signs its key exchange with rsa_pkcs1_sha256 too (or ECDSA).
- The server is verified here, not by tlslite: its chain must lead to the configured authority
  (signatures and validity checked with `cryptography`) and its SubjectAltName must name the
  host of the DMP URL. Not one byte of the request leaves before that check passed. tlslite
  offers no hook before the client's CertificateVerify, so the check runs right after the
  handshake: the card has then signed this handshake's transcript, which is worthless for any
  other session, and TLS 1.2 sends the client certificate in clear anyway.
- The forwarder knows when a request cannot have reached the DMP (handshake refused, card
  withdrawn, server not trusted, DMP unreachable): it then answers the local request itself
  with a 502 marked by `GATEWAY_ERROR_HEADER`, which `DmpClient` turns into a TransportError
  with `maybe_delivered=False`. A connection cut after the request went out is simply closed,
  so the client sees it as possibly delivered.
- Blocking tlslite sockets run in threads that belong to each connection (never the default
  executor, which the store uses): portable, no fork. AES-GCM records are sealed and opened by
  `cryptography` once the handshake is done; tlslite's pure-Python AES would cap uploads at
  a few hundred kilobytes per second.
- `close_all()` (thread-safe) cuts every upstream session at once when the card is withdrawn;
  the next request makes a new handshake, which a withdrawn card refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import ExtendedKeyUsageOID

with warnings.catch_warnings():
    # tlslite's package __init__ imports its asyncore integration (deprecated since 3.11,
    # removed in 3.12, where tlslite skips it); we use none of it.
    warnings.filterwarnings("ignore", "The asyncore module", DeprecationWarning)
    from tlslite.api import X509, HandshakeSettings, TLSConnection, X509CertChain
    from tlslite.errors import BaseTLSException, TLSRemoteAlert
    from tlslite.utils.rsakey import RSAKey

from bridge.card_port import SHA256_DIGEST_INFO_PREFIX, CardAbsent, CardError
from bridge.errors import BridgeError
from connectors.dmp_client import GATEWAY_ERROR_HEADER

log = structlog.get_logger("dmp_bridge.card_tls")

SignDigestInfo = Callable[[bytes], bytes]
CHUNK = 64 * 1024
MAX_CHAIN_DEPTH = 6
_SHA256_DIGEST_INFO_LENGTH = len(SHA256_DIGEST_INFO_PREFIX) + 32
_CUT_BY_CARD_REMOVAL = (
    "carte retirée : la connexion sécurisée au DMP est coupée. Réinsérez la carte CPS et "
    "saisissez le code PIN ; les envois reprendront d'eux-mêmes."
)


class CardTlsError(BridgeError):
    """No TLS session to the DMP: `tls` is True for trust or card problems (the environment's),
    False when the DMP could not be reached at all. The request never left the machine."""

    code = "CARD_TLS"
    event = "card_tls_refused"

    def __init__(self, message_fr: str, *, tls: bool, reason: str) -> None:
        super().__init__(message_fr)
        self.tls = tls
        self.reason = reason  # an English key for the logs


class CardRsaKey(RSAKey):  # type: ignore[misc]  # tlslite is untyped
    """The RSA key tlslite signs the CertificateVerify with: the public half, and a card.

    tlslite hands `sign` the DigestInfo it built over the handshake hash (rsa_pkcs1_sha256);
    the card pads and signs it. Any other request (PSS, another hash) is refused, so a setting
    mistake fails loudly instead of asking the card for something it cannot do.
    """

    def __init__(self, public_key: rsa.RSAPublicKey, sign_digest_info: SignDigestInfo) -> None:
        # RSAKey.__init__ only raises NotImplementedError: set what its methods read.
        numbers = public_key.public_numbers()
        self.n = numbers.n
        self.e = numbers.e
        self.key_type = "rsa"
        self._key_hash = None
        self._sign_digest_info = sign_digest_info

    def hasPrivateKey(self) -> bool:
        return True  # it is on the card

    def acceptsPassword(self) -> bool:
        return False

    def write(self, password: str | None = None) -> str:
        raise NotImplementedError("la clé reste sur la carte : rien à écrire")

    def sign(self, data: bytearray, padding: str = "pkcs1", hashAlg: str | None = None,
             saltLen: int | None = None) -> bytearray:
        if padding.lower() != "pkcs1":
            raise ValueError(f"signature {padding} demandée : la carte ne fait que PKCS#1 v1.5")
        if hashAlg is not None:
            data = self.addPKCS1Prefix(data, hashAlg)
        digest_info = bytes(data)
        if (len(digest_info) != _SHA256_DIGEST_INFO_LENGTH
                or not digest_info.startswith(SHA256_DIGEST_INFO_PREFIX)):
            raise ValueError("la carte ne signe qu'un DigestInfo SHA-256")
        return bytearray(self._sign_digest_info(digest_info))

    def _rawPrivateKeyOp(self, message: int) -> int:
        raise NotImplementedError("la clé privée reste sur la carte")

    def _rawPublicKeyOp(self, ciphertext: int) -> int:
        return pow(ciphertext, self.e, self.n)


class _FastAesGcm:
    """tlslite's AEAD interface (seal/open) over `cryptography`'s AES-GCM (OpenSSL)."""

    isBlockCipher = False
    isAEAD = True
    nonceLength = 12
    tagLength = 16
    implementation = "cryptography"

    def __init__(self, key: bytes, name: str) -> None:
        self.key = key
        self.name = name
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, plaintext: bytes, data: bytes) -> bytearray:
        return bytearray(self._aead.encrypt(bytes(nonce), bytes(plaintext), bytes(data)))

    def open(self, nonce: bytes, ciphertext: bytes, data: bytes) -> bytearray | None:
        try:
            return bytearray(self._aead.decrypt(bytes(nonce), bytes(ciphertext), bytes(data)))
        except InvalidTag:
            return None  # tlslite's contract: None means a bad record MAC


def _accelerate(connection: TLSConnection) -> None:
    """Swap tlslite's pure-Python AES-GCM for OpenSSL's, same keys, once the handshake is over.

    Only when the objects look exactly as expected; otherwise tlslite's own code keeps working
    (slower, still correct).
    """
    layer = getattr(connection, "_recordLayer", None)
    for state_name in ("_writeState", "_readState"):
        state = getattr(layer, state_name, None)
        context = getattr(state, "encContext", None)
        key = getattr(context, "key", None)
        name = getattr(context, "name", "")
        if (state is not None and getattr(context, "implementation", None) == "python"
                and getattr(context, "isAEAD", False) and name in ("aes128gcm", "aes256gcm")
                and isinstance(key, bytes | bytearray)):
            state.encContext = _FastAesGcm(bytes(key), name)


def tls_settings() -> HandshakeSettings:
    """TLS 1.2, forward-secret AES suites, and only the signature a CPS card can make."""
    settings = HandshakeSettings()
    settings.minVersion = (3, 3)
    settings.maxVersion = (3, 3)
    settings.rsaSchemes = ["pkcs1"]  # TLS 1.3 would need RSA-PSS from the card
    settings.rsaSigHashes = ["sha256"]  # the card signs a SHA-256 DigestInfo
    settings.dsaSigHashes = []
    settings.cipherNames = ["aes256gcm", "aes128gcm", "aes256", "aes128"]
    settings.keyExchangeNames = ["ecdhe_rsa", "ecdhe_ecdsa", "dhe_rsa"]
    settings.use_heartbeat_extension = False
    return settings


# -- server verification -------------------------------------------------------------------

def load_authorities(path: Path) -> list[x509.Certificate]:
    """The authorities the DMP server certificate must chain to (PEM, one or more)."""
    try:
        authorities = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CardTlsError(
            f"Le certificat de l'autorité du DMP ({path}) est illisible : {exc}. Vérifiez "
            "le chemin dans la configuration.", tls=True, reason="authority_unreadable",
        ) from None
    return authorities


def _valid_now(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_authority(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _chain_is_trusted(leaf: x509.Certificate, presented: Sequence[x509.Certificate],
                      authorities: Sequence[x509.Certificate], now: dt.datetime) -> bool:
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        if any(_issued_by(current, ca) and _valid_now(ca, now) for ca in authorities):
            return True
        parent = next((c for c in presented if _is_authority(c) and _valid_now(c, now)
                       and _issued_by(current, c)), None)
        if parent is None:
            return False
        current = parent
    return False


def _names_host(cert: x509.Certificate, host: str) -> bool:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        wanted = host.rstrip(".").lower()
        return any(_dns_matches(name.lower(), wanted)
                   for name in names.get_values_for_type(x509.DNSName))
    return address in names.get_values_for_type(x509.IPAddress)


def _dns_matches(pattern: str, host: str) -> bool:
    """RFC 6125: exact, or a wildcard standing for the whole left-most label only."""
    if not pattern.startswith("*."):
        return pattern == host
    head, _, rest = host.partition(".")
    return bool(head) and rest == pattern[2:]


def _serves_tls(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return (ExtendedKeyUsageOID.SERVER_AUTH in usages
            or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages)


def verify_server(chain_der: Sequence[bytes], authorities: Sequence[x509.Certificate],
                  host: str, *, now: dt.datetime | None = None) -> None:
    """Raise CardTlsError unless the chain leads to an authority and its leaf names `host`."""
    when = now or dt.datetime.now(dt.UTC)
    try:
        certs = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError:
        certs = []
    if not certs:
        raise CardTlsError("Le serveur DMP n'a présenté aucun certificat lisible : connexion "
                           "refusée.", tls=True, reason="server_no_certificate")
    leaf = certs[0]
    if not _valid_now(leaf, when):
        raise CardTlsError(
            "Le certificat du serveur DMP n'est pas valide à cette date : connexion refusée. "
            "Vérifiez la date et l'heure de ce poste.", tls=True, reason="server_cert_expired")
    if not _chain_is_trusted(leaf, certs[1:], authorities, when):
        raise CardTlsError(
            "Le certificat du serveur DMP n'est pas signé par l'autorité de confiance "
            "configurée : connexion refusée. Vérifiez l'adresse du DMP et le certificat de "
            "l'autorité dans la configuration.", tls=True, reason="server_untrusted")
    if not _names_host(leaf, host):
        raise CardTlsError(
            f"Le certificat du serveur DMP n'est pas celui de l'adresse « {host} » : connexion "
            "refusée (possible usurpation). Vérifiez l'adresse du DMP dans la configuration.",
            tls=True, reason="server_name_mismatch")
    if not _serves_tls(leaf):
        raise CardTlsError(
            "Le certificat du serveur DMP n'est pas un certificat de serveur : connexion "
            "refusée.", tls=True, reason="server_cert_usage")


# -- one upstream connection ---------------------------------------------------------------

class _Upstream:
    """One TLS connection to the DMP, used from the threads of one local connection."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.tls: TLSConnection | None = None
        self.cut_by_card = False  # close_all() was called while it was open
        self._lock = threading.Lock()
        self._aborted = False

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self.sock = sock
            if self._aborted:
                self._shutdown(sock)

    def abort(self, *, card_removed: bool = False) -> None:
        """Wake every thread blocked on the socket (thread-safe, idempotent)."""
        with self._lock:
            self.cut_by_card = self.cut_by_card or card_removed
            self._aborted = True
            if self.sock is not None:
                self._shutdown(self.sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def read(self) -> bytes:
        """The next decrypted bytes; b"" once the connection is over, whatever the cause."""
        if self.tls is None:
            return b""
        try:
            return bytes(self.tls.recv(CHUNK))
        except (OSError, BaseTLSException):
            return b""

    def write(self, data: bytes) -> None:
        if self.tls is None:
            raise ConnectionError("pas de session TLS")
        try:
            self.tls.sendall(data)
        except BaseTLSException as exc:
            raise ConnectionError(str(exc)) from None

    def close(self) -> None:
        self.abort()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()


# -- the forwarder -------------------------------------------------------------------------

class CardTlsForwarder:
    """127.0.0.1:<ephemeral> in plain HTTP → the DMP in TLS 1.2 with the card's certificate.

    `certificate_chain`: the card's authentication certificate (DER) first, then any
    intermediate to send. `sign_digest_info`: PKCS#1 v1.5 over a SHA-256 DigestInfo by the
    card's authentication key (e.g. `CardCredentials.sign_tls`); it may raise CardAbsent.
    `connect_timeout` bounds each socket operation of the TCP connect and the handshake;
    `idle_timeout` (no byte either way) must stay above the DMP client's answer timeout.
    """

    def __init__(self, dmp_url: str, *, certificate_chain: Sequence[bytes],
                 sign_digest_info: SignDigestInfo, server_ca: Path,
                 connect_timeout: float = 15.0, idle_timeout: float = 120.0) -> None:
        parts = urlsplit(dmp_url)
        if parts.scheme != "https" or not parts.hostname:
            raise CardTlsError(f"L'adresse du DMP doit commencer par https:// (reçu : "
                               f"{dmp_url!r}).", tls=True, reason="bad_url")
        self.host = parts.hostname
        self.port = parts.port or 443
        if not certificate_chain:
            raise CardTlsError("Aucun certificat d'authentification de la carte.", tls=True,
                               reason="no_client_certificate")
        try:
            leaf = x509.load_der_x509_certificate(certificate_chain[0])
            self._chain = X509CertChain([_tlslite_certificate(der) for der in certificate_chain])
        except (ValueError, SyntaxError) as exc:
            raise CardTlsError(f"Le certificat d'authentification de la carte est illisible "
                               f"({exc}).", tls=True, reason="client_cert_unreadable") from None
        public_key = leaf.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise CardTlsError("Le certificat d'authentification de la carte n'est pas RSA.",
                               tls=True, reason="client_cert_not_rsa")
        self._public_key = public_key
        self._sign = sign_digest_info
        self._authorities = load_authorities(server_ca)
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._settings = tls_settings()
        self._server: asyncio.Server | None = None
        self._upstreams: set[_Upstream] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self.handshakes = 0  # completed and verified TLS sessions (each: one card signature)
        self.last_handshake_seconds: float | None = None
        self.local_url: str | None = None

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._upstreams)

    async def start(self) -> str:
        """Listen on 127.0.0.1 (a free port); returns the local base URL, http://127.0.0.1:N."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
            port = self._server.sockets[0].getsockname()[1]
            self.local_url = f"http://127.0.0.1:{port}"
            log.info("card_tls_started", port=port, upstream_port=self.port)
        assert self.local_url is not None
        return self.local_url

    def close_all(self) -> None:
        """Cut every TLS session to the DMP now (card withdrawn). Callable from any thread."""
        cut = self._cut(card_removed=True)
        log.info("card_tls_sessions_cut", sessions=cut)

    async def stop(self) -> None:
        """Stop listening, cut every session, and wait for the connections to wind down."""
        if self._server is not None:
            self._server.close()
        self._cut(card_removed=False)
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=max(self._connect_timeout, 5.0))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
            log.info("card_tls_stopped")

    def _cut(self, *, card_removed: bool) -> int:
        with self._lock:
            upstreams = list(self._upstreams)
        for upstream in upstreams:
            upstream.abort(card_removed=card_removed)
        return len(upstreams)

    async def __aenter__(self) -> CardTlsForwarder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- per connection ----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        upstream = _Upstream()
        with self._lock:
            self._upstreams.add(upstream)
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="card-tls")
        try:
            await self._serve(reader, writer, upstream, executor)
        except asyncio.CancelledError:
            pass  # the loop is closing: nobody awaits a connection handler
        finally:
            upstream.abort()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await writer.wait_closed()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.to_thread(_finish, executor, upstream)
            with self._lock:
                self._upstreams.discard(upstream)
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: _Upstream, executor: ThreadPoolExecutor) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._open, upstream)
        except CardTlsError as exc:
            log.warning("card_tls_refused", reason=exc.reason)
            await _answer_refusal(reader, writer, exc)
            return
        await self._pump(reader, writer, upstream, executor)

    def _open(self, upstream: _Upstream) -> None:
        """TCP connect, handshake with the card's key, verify the server. Runs in a thread."""
        started = time.perf_counter()
        try:
            sock = socket.create_connection((self.host, self.port),
                                            timeout=self._connect_timeout)
        except OSError as exc:
            raise CardTlsError(
                f"Le DMP ({self.host}:{self.port}) est injoignable : {exc.strerror or exc}.",
                tls=False, reason="connect_failed") from None
        upstream.attach(sock)
        connection = TLSConnection(sock)
        key = CardRsaKey(self._public_key, self._sign)
        try:
            connection.handshakeClientCert(self._chain, key, settings=self._settings,
                                           serverName=_sni(self.host))
        except Exception as exc:  # nothing left the machine yet: every cause is a refusal
            raise self._handshake_error(exc, upstream) from None
        session = connection.session
        chain = session.serverCertChain if session is not None else None
        verify_server([bytes(c.bytes) for c in (chain.x509List if chain else [])],
                      self._authorities, self.host)
        if upstream.cut_by_card:  # close_all() came during the handshake
            raise CardTlsError(_CUT_BY_CARD_REMOVAL, tls=True, reason="card_absent")
        sock.settimeout(None)  # the idle watchdog takes over; a timeout inside tlslite
        _accelerate(connection)  # would leave it mid-record
        upstream.tls = connection
        seconds = time.perf_counter() - started
        with self._lock:
            self.handshakes += 1
            self.last_handshake_seconds = seconds
        log.info("card_tls_connected", handshake_ms=round(seconds * 1000),
                 cipher=connection.getCipherName())

    def _handshake_error(self, exc: Exception, upstream: _Upstream) -> CardTlsError:
        if isinstance(exc, CardAbsent) or upstream.cut_by_card:
            return CardTlsError(_CUT_BY_CARD_REMOVAL, tls=True, reason="card_absent")
        if isinstance(exc, CardError):
            return CardTlsError(f"carte CPS inutilisable : {exc.message_fr}", tls=True,
                                reason="card_error")
        if isinstance(exc, TLSRemoteAlert):
            return CardTlsError(
                f"Le DMP a refusé la connexion sécurisée (alerte TLS {exc}). Vérifiez que la "
                "carte CPS est valide et reconnue par le DMP.", tls=True, reason="server_alert")
        if isinstance(exc, OSError):
            return CardTlsError(
                f"Le DMP ({self.host}:{self.port}) ne répond pas pendant l'établissement de la "
                f"connexion sécurisée ({exc.strerror or type(exc).__name__}).", tls=False,
                reason="handshake_io")
        return CardTlsError(f"La connexion sécurisée au DMP a échoué ({type(exc).__name__} : "
                            f"{exc}).", tls=True, reason="handshake_failed")

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    upstream: _Upstream, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        last = [loop.time()]

        async def outbound() -> None:
            while data := await reader.read(CHUNK):
                last[0] = loop.time()
                await loop.run_in_executor(executor, upstream.write, data)
                last[0] = loop.time()

        async def inbound() -> None:
            while data := await loop.run_in_executor(executor, upstream.read):
                last[0] = loop.time()
                writer.write(data)
                await writer.drain()

        async def watchdog() -> None:
            while (idle := loop.time() - last[0]) < self._idle_timeout:
                await asyncio.sleep(self._idle_timeout - idle)
            log.info("card_tls_idle_closed")

        tasks = [asyncio.create_task(job()) for job in (outbound, inbound, watchdog)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            upstream.abort()  # wakes the thread blocked in read
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _tlslite_certificate(der: bytes) -> X509:
    cert = X509()
    cert.parseBinary(bytearray(der))
    return cert


def _sni(host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None  # SNI carries host names only (RFC 6066 §3)


def _finish(executor: ThreadPoolExecutor, upstream: _Upstream) -> None:
    executor.shutdown(wait=True)
    upstream.close()


def _marker(error: CardTlsError) -> str:
    """The gateway header's value: the card itself, other TLS trouble, or the network."""
    if error.reason in ("card_absent", "card_error"):
        return "carte"
    return "tls" if error.tls else "network"


async def _answer_refusal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          error: CardTlsError) -> None:
    """Answer the local request ourselves: 502, marked, the French message as the body.

    The request may still be arriving; it is read and dropped until the client hangs up, so
    closing never resets a connection the client is still writing to.
    """
    body = error.message_fr.encode("utf-8")
    head = (
        "HTTP/1.1 502 Bad Gateway\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{GATEWAY_ERROR_HEADER}: {_marker(error)}\r\n"
        "Connection: close\r\n\r\n"
    )
    with contextlib.suppress(ConnectionError, OSError):
        writer.write(head.encode("ascii") + body)
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                while await reader.read(CHUNK):
                    pass
