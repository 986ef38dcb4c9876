"""`dmp-bridge doctor`: checks an installation and says, in French, what to fix.

Each check gives one line, ✔ or ✘; a ✘ line says what to do. The integrity check opens the
queue read-only, the conservation count then opens it as `dmp-bridge status` does; doctor may run
while the service runs — and should, when the DMP is the embedded simulator, which only listens
while the service runs.

Checks: configuration; folders writable; queue file integrity (`PRAGMA integrity_check`) and
conservation; audit journal chain (always verified, against its witness: a deleted journal whose
witness remains is a ✘); card mode: PKCS#11 module present and PC/SC service reachable
(pyscard); certificate expiry (PEM/PKCS#12 of [credentials], the DMP's CA); DMP reachability
over mutual TLS (a real handshake with the configured certificates) and clock drift against the
server's HTTP `Date` header — in card mode, where our certificate is on the card, reachability
and the server's certificate only (the card's mutual TLS is checked by `dmp-bridge card
login`); free disk space. Every watched folder (the main one and each `[[intake.profiles]]`
folder) must be writable.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import shutil
import socket
import sqlite3
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from bridge.errors import BridgeError
from service.alerts import EXPIRY_WARNING
from service.config import BridgeConfig, ConfigError, load_config

OK, KO = "✔", "✘"
NETWORK_TIMEOUT_SECONDS = 10.0
# The DMP dates VIHF assertions and checks them; a practice PC must sync with a time server
# (spec/dmp-protocol.md, PRE_TPS). The HTTP Date header has a one-second resolution.
MAX_CLOCK_DRIFT = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class Check:
    ok: bool
    label: str  # what was checked
    detail: str  # what was found
    fix: str = ""  # what to do, when not ok

    @property
    def line(self) -> str:
        text = f"{OK if self.ok else KO} {self.label} : {self.detail}"
        return text if self.ok or not self.fix else f"{text}\n    → {self.fix}"


def _day(value: dt.datetime) -> str:
    return f"{value.astimezone(dt.UTC):%d/%m/%Y}"


# -- configuration and files ------------------------------------------------------------------


def check_config(path: Path) -> tuple[Check, BridgeConfig | None]:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return Check(False, "Configuration", exc.message_fr,
                     "corrigez le fichier (ou créez-en un avec « dmp-bridge init DOSSIER »), "
                     "puis relancez « dmp-bridge doctor »."), None
    return Check(True, "Configuration", f"{path} valide"), config


def _writable(label: str, folder: Path) -> Check:
    if not folder.is_dir():
        return Check(False, label, f"{folder} introuvable",
                     "créez-le, ou relancez « dmp-bridge init DOSSIER » (la configuration "
                     "existante est gardée).")
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".doctor-")
    except OSError as exc:
        return Check(False, label, f"{folder} n'est pas accessible en écriture ({exc.strerror})",
                     "donnez au compte du service le droit d'écrire dans ce dossier.")
    os.close(fd)
    Path(name).unlink()
    return Check(True, label, f"{folder} accessible en écriture")


def check_folders(config: BridgeConfig) -> list[Check]:
    """The data folder and every watched export folder (the main one, then each
    `[[intake.profiles]]` folder: the service moves files out of each)."""
    main, *others = config.intake.folders()
    return [
        _writable("Dossier des données", config.path(config.bridge.data_dir)),
        _writable("Dossier de dépôt", config.path(main.folder)),
        *(_writable(f"Dossier de dépôt « {profile.folder} »", config.path(profile.folder))
          for profile in others),
    ]


def check_store(config: BridgeConfig) -> Check:
    label = "File d'attente"
    path = config.store_path
    if not path.exists():
        return Check(True, label, "pas encore créée (elle le sera au premier démarrage)")
    fix = ("arrêtez le service, mettez ce fichier de côté et restaurez la dernière sauvegarde "
           "du dossier des données ; contactez le support si aucune sauvegarde n'existe.")
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return Check(False, label, f"{path.name} est endommagé ou n'est pas une base SQLite "
                     f"({exc})", fix)
    if [tuple(row) for row in rows] != [("ok",)]:
        return Check(False, label, f"{path.name} est endommagé (contrôle d'intégrité : "
                     f"{rows[0][0]})", fix)
    from bridge.jobs import conservation
    from connectors.sqlite_store import SqliteStore

    try:
        with SqliteStore.open(path) as store:
            counts, received = store.tally()
    except BridgeError as exc:
        return Check(False, label, exc.message_fr, fix)
    if not conservation(counts, received):
        return Check(False, label, f"intègre, mais {received} documents reçus ≠ "
                     f"{sum(counts.values())} dans la file", "lancez « dmp-bridge list » et "
                     "contactez le support (un document a peut-être été perdu).")
    return Check(True, label, f"intègre, {received} documents reçus, conservation vérifiée")


def check_audit(config: BridgeConfig) -> Check:
    from service.audit_trail import AuditTrail

    label = "Journal d'audit"
    trail = AuditTrail.for_config(config)
    result = trail.verify()  # always: a missing journal is only fine without a witness
    if result.ok or result.code == "AUDIT_TORN_TAIL":
        if not trail.journal_path.exists():
            return Check(True, label, "vide (rien n'a encore été envoyé)")
        return Check(True, label, f"intègre ({result.count} enregistrements)")
    if not trail.journal_path.exists():
        return Check(False, label, f"{trail.journal_path} a disparu alors que son dernier "
                     f"sceau ({trail.witness_path.name}) existe : le journal a été supprimé "
                     f"ou déplacé ({result.code})",
                     "restaurez le dossier « audit » depuis la sauvegarde du dossier des "
                     "données et signalez-le au responsable de la sécurité.")
    return Check(False, label, result.message_fr,
                 "lancez « dmp-bridge audit verify », gardez une copie du fichier et "
                 "signalez-le au responsable de la sécurité.")


def check_disk(config: BridgeConfig) -> Check:
    folder = config.path(config.bridge.data_dir)
    try:
        free = shutil.disk_usage(folder if folder.exists() else config.base_dir).free
    except OSError as exc:
        return Check(False, "Espace disque", f"illisible ({exc.strerror})")
    mib, limit = free // (1024 * 1024), config.alerts.low_disk_mb
    if mib < limit:
        return Check(False, "Espace disque", f"{mib} Mo libres (seuil {limit} Mo)",
                     "libérez de la place sur le disque des données.")
    return Check(True, "Espace disque", f"{mib} Mo libres")


# -- card ----------------------------------------------------------------------------------------


def check_card(config: BridgeConfig) -> list[Check]:
    if config.credentials.mode != "carte":
        return []
    checks = []
    if config.carte.acces == "pkcs11":
        module = config.path(config.carte.module)
        checks.append(
            Check(True, "Module PKCS#11", f"{module} présent") if module.is_file() else
            Check(False, "Module PKCS#11", f"{module} introuvable",
                  "installez la Cryptolib CPS de l'ANS (esante.gouv.fr), ou indiquez son "
                  "chemin dans carte.module."))
    checks.append(_check_pcsc())
    return checks


def _check_pcsc() -> Check:
    label = "Service PC/SC (lecteurs de carte)"
    try:
        from smartcard.System import readers
    except ImportError:
        return Check(False, label, "le module pyscard n'est pas installé",
                     "installez-le : pip install 'dmp-bridge[carte]' (sous Linux, d'abord : "
                     "apt install pcscd libpcsclite-dev swig).")
    try:
        found = readers()
    except Exception as exc:  # pyscard raises its own exception types for a missing service
        return Check(False, label, f"injoignable ({type(exc).__name__})",
                     "démarrez le service : sous Linux « systemctl start pcscd », sous Windows "
                     "le service « Carte à puce » (SCardSvr).")
    if not found:
        return Check(False, label, "joignable, mais aucun lecteur branché",
                     "branchez le lecteur de carte CPS.")
    return Check(True, label, f"joignable, {len(found)} lecteur(s)")


# -- certificates --------------------------------------------------------------------------------


def _certificates(config: BridgeConfig) -> Iterator[tuple[str, Path, x509.Certificate | str]]:
    """(role, path, certificate or the French reason it cannot be read)."""
    c = config.credentials
    wanted: list[tuple[str, Path, str]] = [("Autorité du DMP", config.path(config.dmp.server_ca),
                                            "pem")]
    if c.mode == "etablissement":
        wanted += [
            ("Certificat d'authentification (ORG AUTH_CLI)",
             config.path(c.tls_p12 or c.tls_cert), "p12" if c.tls_p12 else "pem"),
            ("Certificat de signature (ORG SIGN)",
             config.path(c.sign_p12 or c.sign_cert), "p12" if c.sign_p12 else "pem"),
        ]
    for role, path, kind in wanted:
        try:
            data = path.read_bytes()
            if kind == "pem":
                yield role, path, x509.load_pem_x509_certificate(data)
                continue
            phrase = (config.path(c.p12_passphrase_file).read_bytes().strip()
                      if c.p12_passphrase_file else None)
            cert = pkcs12.load_pkcs12(data, phrase).cert
            yield role, path, cert.certificate if cert else "aucun certificat dans le fichier"
        except FileNotFoundError:
            yield role, path, "fichier introuvable"
        except (OSError, ValueError) as exc:
            yield role, path, f"illisible ({exc})"


def check_certificates(config: BridgeConfig, now: dt.datetime) -> list[Check]:
    checks = []
    for role, path, cert in _certificates(config):
        if isinstance(cert, str):
            checks.append(Check(False, role, f"{path.name} : {cert}",
                                "vérifiez le chemin dans la configuration ([credentials] / "
                                "[dmp]) ; certificats de test : « dmp-bridge init --test-pki »."))
            continue
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        renew = "installez le nouveau certificat (IGC Santé : commande sur le site de l'ANS)."
        if end <= now:
            checks.append(Check(False, role, f"{path.name} a expiré le {_day(end)}", renew))
        elif start > now:
            checks.append(Check(False, role, f"{path.name} n'est valable qu'à partir du "
                                f"{_day(start)}", "vérifiez la date du poste, ou attendez."))
        elif end - now <= EXPIRY_WARNING:
            checks.append(Check(False, role, f"{path.name} expire le {_day(end)} (dans "
                                f"{(end - now).days} jours)", "demandez son renouvellement "
                                "maintenant : " + renew))
        else:
            checks.append(Check(True, role, f"{path.name} valable jusqu'au {_day(end)} "
                                f"({(end - now).days} jours)"))
    return checks


# -- the DMP: mutual TLS and the clock -----------------------------------------------------------


def _server_only(config: BridgeConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(config.path(config.dmp.server_ca)))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _tls_context(config: BridgeConfig) -> tuple[ssl.SSLContext | None, str, str | None]:
    """The context the bridge itself uses (with our client certificate) and its mode; when our
    certificates cannot be used, a server-only context and why (the DMP is still tried, to
    tell "unreachable" from "our certificate is the problem")."""
    try:
        from service.runner import load_credentials

        try:
            return load_credentials(config).ssl_context(), "TLS mutuel", None
        except (ConfigError, OSError, ssl.SSLError) as exc:
            reason = exc.message_fr if isinstance(exc, ConfigError) else str(exc)
            return _server_only(config), "serveur seulement", reason
    except (OSError, ssl.SSLError) as exc:
        return None, "", f"autorité du DMP illisible ({exc})"


@dataclass(frozen=True)
class _Probe:
    """What one HTTPS request to the DMP showed."""

    stage: str  # "unreachable", "handshake" (refused), "refused" (after it), "answered"
    reason: str = ""
    date_header: str | None = None
    local_epoch: float = 0.0  # local time in the middle of the request
    version: str | None = None  # TLS version


def _probe(host: str, port: int, path: str, context: ssl.SSLContext, timeout: float) -> _Probe:
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    try:
        try:
            connection.connect()  # TCP, then the TLS handshake
        except ssl.SSLError as exc:
            return _Probe("handshake", str(exc.reason or exc))
        except OSError as exc:
            return _Probe("unreachable", exc.strerror or type(exc).__name__)
        sent = time.time()
        try:
            connection.request("GET", path, headers={"User-Agent": "dmp-bridge doctor"})
            response = connection.getresponse()
            response.read()
        except (ssl.SSLError, OSError, http.client.HTTPException) as exc:
            # TLS 1.3: the server checks our certificate after the handshake, so its refusal
            # shows up here, as an alert or a closed connection.
            return _Probe("refused", str(exc.reason) if isinstance(exc, ssl.SSLError)
                          else type(exc).__name__)
        version = connection.sock.version() if connection.sock else None
        return _Probe("answered", date_header=response.getheader("Date"),
                      local_epoch=(sent + time.time()) / 2, version=version)
    finally:
        connection.close()


# A server that wants a client certificate and got none says so with one of these alerts
# (TLS 1.2: during the handshake, after the client has verified the server's certificate).
_CLIENT_CERT_WANTED = ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "BAD_CERTIFICATE",
                       "PEER_DID_NOT_RETURN_A_CERTIFICATE")


def _handshake(host: str, port: int, context: ssl.SSLContext, timeout: float) -> _Probe:
    """TCP, then the TLS handshake only (no request): what can be checked without our
    certificate. "answered" means the server's certificate verified against dmp.server_ca."""
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return _Probe("unreachable", exc.strerror or type(exc).__name__)
    try:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return _Probe("answered", version=tls.version())
    except ssl.SSLCertVerificationError as exc:
        return _Probe("handshake", exc.verify_message or str(exc.reason or exc))
    except ssl.SSLError as exc:
        reason = str(exc.reason or exc)
        if any(alert in reason.upper() for alert in _CLIENT_CERT_WANTED):
            return _Probe("refused", reason)  # verified, then asked for a client certificate
        return _Probe("handshake", reason)
    except OSError as exc:
        return _Probe("unreachable", exc.strerror or type(exc).__name__)
    finally:
        raw.close()


def _unreachable(config: BridgeConfig, label: str, where: str, reason: str) -> Check:
    embedded = config.simulator.embedded and config.bridge.environment == "simulateur"
    return Check(False, label, f"{where} injoignable ({reason})",
                 "le simulateur intégré ne tourne qu'avec le service : lancez « dmp-bridge "
                 "run » (ou « dmp-bridge simulator ») puis relancez doctor." if embedded
                 else "vérifiez la connexion Internet du poste, le pare-feu et dmp.url.")


def check_dmp_card_mode(config: BridgeConfig) -> list[Check]:
    """Card mode: our TLS certificate is on the card, which doctor does not use (no PIN here).
    So: the DMP is reachable and its certificate verifies against dmp.server_ca; the mutual TLS
    with the card is checked when the card is logged in (`dmp-bridge card login`)."""
    url = urlsplit(config.dmp.url)
    host, port = url.hostname or "", url.port or 443
    label = _dmp_label(config)
    where = f"{host}:{port}"
    try:
        context = _server_only(config)
    except (OSError, ssl.SSLError) as exc:
        return [Check(False, label, f"connexion impossible : autorité du DMP illisible ({exc})",
                      "vérifiez dmp.server_ca dans la configuration.")]
    probe = _handshake(host, port, context,
                       min(NETWORK_TIMEOUT_SECONDS, config.dmp.timeout_seconds))
    if probe.stage == "unreachable":
        return [_unreachable(config, label, where, probe.reason)]
    if probe.stage == "handshake":
        return [Check(False, label, f"{where} : certificat du serveur non vérifié "
                      f"({probe.reason})", "vérifiez dmp.server_ca (l'autorité du DMP) et la "
                      "date du poste.")]
    return [Check(True, label, f"{where} joignable, certificat du serveur vérifié"
                  f"{f' ({probe.version})' if probe.version else ''} ; le TLS mutuel de la "
                  "carte est vérifié par « dmp-bridge card login »")]


def _dmp_label(config: BridgeConfig) -> str:
    return f"{'Simulateur du DMP' if config.bridge.environment == 'simulateur' else 'DMP'} (TLS)"


def check_dmp(config: BridgeConfig) -> list[Check]:
    """The DMP over TLS: mutual TLS with our certificates (`check_dmp_mutual_tls`); in card
    mode, reachability and the server's certificate only (`check_dmp_card_mode`)."""
    if config.credentials.mode == "carte":
        return check_dmp_card_mode(config)
    return check_dmp_mutual_tls(config)


def check_dmp_mutual_tls(config: BridgeConfig) -> list[Check]:
    """One HTTPS request to the DMP URL: the handshake proves TLS, the `Date` header the clock."""
    url = urlsplit(config.dmp.url)
    host, port = url.hostname or "", url.port or 443
    label = _dmp_label(config)
    where = f"{host}:{port}"
    context, mode, unusable = _tls_context(config)
    if context is None:
        return [Check(False, label, f"connexion impossible : {unusable}",
                      "vérifiez dmp.server_ca dans la configuration.")]
    probe = _probe(host, port, url.path or "/", context,
                   min(NETWORK_TIMEOUT_SECONDS, config.dmp.timeout_seconds))
    if probe.stage == "unreachable":
        return [_unreachable(config, label, where, probe.reason)]
    if unusable is not None:  # reachable, but we have no certificate to present
        return [Check(False, label, f"{where} joignable, mais TLS mutuel impossible : "
                      f"{unusable}", "corrigez d'abord les certificats ci-dessus.")]
    if probe.stage == "handshake":
        return [Check(False, label, f"{where} : poignée de main TLS refusée ({probe.reason})",
                      "vérifiez dmp.server_ca et les certificats de [credentials] (expirés ? "
                      "émis par la bonne autorité ?).")]
    if probe.stage == "refused":
        return [Check(False, label, f"{where} a refusé notre certificat ({probe.reason})",
                      "vérifiez le certificat d'authentification (émis par la bonne autorité ? "
                      "révoqué ? pour une autre structure ?).")]
    return [Check(True, label, f"{where} joignable ({mode}, {probe.version or 'TLS'})"),
            clock_check(probe.date_header, probe.local_epoch)]


def clock_check(date_header: str | None, local_epoch: float) -> Check:
    label = "Horloge du poste"
    if not date_header:
        return Check(False, label, "le serveur n'a pas donné l'heure (en-tête Date absent)",
                     "vérifiez que le poste se synchronise avec un serveur de temps.")
    with contextlib.suppress(TypeError, ValueError):
        server = parsedate_to_datetime(date_header)
        local = dt.datetime.fromtimestamp(local_epoch, dt.UTC)
        drift = (local - server).total_seconds()
        if abs(drift) > MAX_CLOCK_DRIFT.total_seconds():
            way = "en avance" if drift > 0 else "en retard"
            return Check(False, label, f"{abs(drift):.0f} s {way} sur le serveur",
                         "réglez la date et l'heure du poste (synchronisation automatique "
                         "avec un serveur de temps) : le DMP refuse les dates fausses.")
        return Check(True, label, f"écart de {abs(drift):.0f} s avec le serveur")
    return Check(False, label, f"en-tête Date illisible ({date_header!r})",
                 "vérifiez que dmp.url désigne bien le DMP.")


# -- all of it -----------------------------------------------------------------------------------


def run_checks(config_path: Path, *, now: dt.datetime | None = None) -> list[Check]:
    first, config = check_config(config_path)
    if config is None:
        return [first]
    now = now or dt.datetime.now(dt.UTC)
    return [
        first,
        *check_folders(config),
        check_store(config),
        check_audit(config),
        *check_card(config),
        *check_certificates(config, now),
        *check_dmp(config),
        check_disk(config),
    ]


def report(checks: list[Check]) -> tuple[str, int]:
    """The text to print and the exit code (1 if any ✘)."""
    failed = sum(1 for check in checks if not check.ok)
    summary = ("Tout est en ordre." if not failed else
               f"{failed} problème(s) à corriger : suivez les indications (→) ci-dessus.")
    return "\n".join([*(check.line for check in checks), "", summary]), 1 if failed else 0
