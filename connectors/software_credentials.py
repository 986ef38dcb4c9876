"""Establishment software certificates (indirect mode): "ORG AUTH_CLI" authenticates the
structure in mutual TLS, "ORG SIGN" (certificat de cachet) signs the VIHF and the XAdES.

They come either as the two PKCS#12 (.p12) files the IGC Santé delivers, opened with a passphrase
kept alone in a file readable by the service account only, or as PEM certificate + key pairs (the
test PKI). This module is the only place that holds the keys; the core sees a `sign(bytes) ->
bytes` operation and the certificate's public data, so a CPS card (PKCS#11) can take its place
without the core noticing.

The passphrase is read, used to open the two files, and forgotten: it is never written, logged
or put in an error message. Python's `ssl` loads a client key from a file only; for .p12
credentials, `ssl_context()` writes the ORG AUTH_CLI certificate chain and its key to a temporary
file created private (0600) in `work_dir` (the data folder), loads it and deletes it at once. The
key in that file is itself encrypted with a random one-time password that lives only in memory,
so even that short-lived file never holds the key in clear (portable: no POSIX-only call).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import ssl
import stat
import tempfile
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from lxml import etree

from bridge.cert_expiry import CertificateValidity, ExpiryCheck, expiry_warnings
from bridge.domain import Author
from bridge.errors import BridgeError
from bridge.vihf import AuthMode
from bridge.xades import SigningCertificate
from connectors.vihf_signature import sign_vihf

_DN_LABELS = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.TITLE: "title",
}

# "Le certificat {role}" in messages.
_AUTH_ROLE = "d'authentification (ORG AUTH_CLI)"
_SIGN_ROLE = "de signature (ORG SIGN)"
_PEM = serialization.Encoding.PEM


class CredentialsError(BridgeError):
    """The certificates cannot be used: missing, unreadable, not matching, expired."""

    code = "CREDENTIALS"
    event = "credentials_unusable"


def subject_dn(cert: x509.Certificate) -> str:
    """The DN as the VIHF Issuer shows it: 'C=FR, O=…, OU=…, CN=…' in certificate order."""
    return ", ".join(
        f"{_DN_LABELS.get(attr.oid, attr.oid.dotted_string)}={attr.value!s}"
        for rdn in cert.subject.rdns
        for attr in rdn
    )


def _structure_id(cert: x509.Certificate) -> str | None:
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(values[0].value) if len(values) == 1 else None


@dataclass(frozen=True)
class _KeyPair:
    cert: x509.Certificate
    cert_pem: bytes  # the certificate alone (the VIHF's X509Data)
    chain_pem: bytes  # the certificate then the authorities the .p12 carries (sent in TLS)
    key: rsa.RSAPrivateKey
    renewal_fr: str  # what to do when it nears its end (cert_expiry)


def _matches(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(_PEM, spki) == cert.public_key().public_bytes(_PEM, spki)


def _check_validity(cert: x509.Certificate, file: Path, role: str, renewal_fr: str) -> None:
    """Refuse a certificate outside its validity now: the DMP would refuse every request."""
    now = dt.datetime.now(dt.UTC)
    if now < cert.not_valid_before_utc:
        raise CredentialsError(
            f"Le certificat {role} ({file.name}) n'est valable qu'à partir du "
            f"{cert.not_valid_before_utc:%d/%m/%Y à %H:%M} UTC. Vérifiez la date et l'heure du "
            "poste ; si le certificat a été renouvelé en avance, gardez l'ancien jusqu'à cette "
            "date."
        )
    if now > cert.not_valid_after_utc:
        raise CredentialsError(
            f"Le certificat {role} ({file.name}) a expiré le "
            f"{cert.not_valid_after_utc:%d/%m/%Y à %H:%M} UTC. {renewal_fr} Si la date du poste "
            "est fausse, corrigez-la."
        )


def _load_pair(cert_path: Path, key_path: Path, role: str) -> _KeyPair:
    try:
        cert_pem = cert_path.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise CredentialsError(
            f"Le certificat {role} ({cert_path.name}) ou sa clé est illisible : {exc}. "
            "Vérifiez les chemins dans la configuration, ou régénérez les certificats de test "
            "avec « dmp-bridge init --test-pki »."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialsError(f"La clé du certificat {role} n'est pas une clé RSA.")
    if not _matches(key, cert):
        raise CredentialsError(
            f"La clé {key_path.name} ne correspond pas au certificat {cert_path.name} ({role})."
        )
    renewal = (
        "Renouvelez-le auprès de l'IGC Santé (ANS), remplacez "
        f"{cert_path} et {key_path} par les nouveaux fichiers, puis redémarrez le service."
    )
    _check_validity(cert, cert_path, role, renewal)
    return _KeyPair(cert, cert.public_bytes(_PEM), cert_pem, key, renewal)


def read_passphrase(path: Path) -> bytes:
    """The .p12 passphrase: the file's content less one trailing line end (and a leading UTF-8
    BOM, as Windows Notepad writes). The file must be readable by the service account only."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CredentialsError(
            f"Le fichier de la phrase de passe des certificats ({path}) est introuvable : "
            "créez-le avec, seule sur une ligne, la phrase de passe remise par l'IGC Santé avec "
            f"les fichiers .p12, puis restreignez-le avec « chmod 600 {path} »."
        ) from None
    except OSError as exc:
        raise CredentialsError(
            f"Le fichier de la phrase de passe des certificats ({path}) est illisible "
            f"({exc.strerror}) : vérifiez que le compte du service peut le lire."
        ) from None
    # POSIX only: on Windows the mode bits say nothing of who may read the file (ACLs do, and
    # the installer gives the data folder to the service account alone).
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"Le fichier de la phrase de passe des certificats ({path}) est accessible à "
            "d'autres comptes que celui du service : restreignez-le avec "
            f"« chmod 600 {path} », puis redémarrez le service."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(
            f"Le fichier de la phrase de passe des certificats ({path}) est illisible "
            f"({exc.strerror}) : vérifiez que le compte du service peut le lire."
        ) from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    data = data[:-2] if data.endswith(b"\r\n") else data.removesuffix(b"\n")
    if not data:
        raise CredentialsError(
            f"Le fichier de la phrase de passe des certificats ({path}) est vide : écrivez-y la "
            "phrase de passe remise par l'IGC Santé avec les fichiers .p12."
        )
    return data


def _load_p12(path: Path, passphrase: bytes, passphrase_file: Path, role: str,
              setting: str) -> _KeyPair:
    """One IGC Santé .p12: its RSA key, the certificate of that key, and the authorities."""
    where = f"Le fichier du certificat {role} ({path})"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(
            f"{where} est illisible ({exc.strerror}) : vérifiez « {setting} » dans la section "
            "[credentials] de la configuration."
        ) from None
    try:
        key, cert, authorities = pkcs12.load_key_and_certificates(data, passphrase)
    except ValueError:
        # Neither the cause's text nor the passphrase goes in the message.
        if not data.startswith(b"\x30"):  # not DER at all: a PEM, a .cer, a text file…
            raise CredentialsError(
                f"{where} n'est pas un fichier PKCS#12 (.p12) : indiquez dans « {setting} » le "
                "fichier .p12 remis par l'IGC Santé (pas le certificat .cer ou .pem seul)."
            ) from None
        raise CredentialsError(
            f"{where} ne s'ouvre pas avec la phrase de passe de {passphrase_file} : vérifiez "
            "que ce fichier contient exactement la phrase de passe remise avec ce certificat "
            "par l'IGC Santé, ou que le .p12 n'est pas endommagé (téléchargez-le à nouveau)."
        ) from None
    if key is None:
        raise CredentialsError(
            f"{where} ne contient pas de clé privée : exportez à nouveau le certificat AVEC sa "
            "clé privée (fichier .p12 complet) depuis le poste où il a été retiré."
        )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialsError(
            f"{where} contient une clé qui n'est pas une clé RSA, or le DMP exige des "
            "signatures RSA-SHA256 : demandez à l'IGC Santé un certificat à clé RSA."
        )
    if cert is None or not _matches(key, cert):
        raise CredentialsError(
            f"{where} ne contient pas le certificat qui correspond à sa clé privée (il ne "
            f"contient que {len(authorities)} autre(s) certificat(s)) : exportez à nouveau le "
            "certificat avec sa clé depuis le poste où il a été retiré."
        )
    renewal = (
        "Renouvelez-le sur le portail IGC Santé de l'ANS (certificat logiciel de personne "
        f"morale), remplacez {path} par le nouveau fichier .p12 (ou indiquez son chemin dans "
        f"« {setting} » de la section [credentials]), mettez sa phrase de passe dans "
        f"{passphrase_file}, puis redémarrez le service."
    )
    _check_validity(cert, path, role, renewal)
    chain = b"".join(c.public_bytes(_PEM) for c in (cert, *authorities))
    return _KeyPair(cert, cert.public_bytes(_PEM), chain, key, renewal)


class SoftwareCredentials:
    """ORG AUTH_CLI + ORG SIGN, and the CA that the DMP server must present.

    Built from PEM pairs (`SoftwareCredentials(...)`) or from the IGC Santé .p12 files
    (`SoftwareCredentials.from_pkcs12(...)`).
    """

    def __init__(
        self, *, tls_cert: Path, tls_key: Path, sign_cert: Path, sign_key: Path, server_ca: Path
    ) -> None:
        self._setup(
            _load_pair(tls_cert, tls_key, _AUTH_ROLE),
            _load_pair(sign_cert, sign_key, _SIGN_ROLE),
            server_ca,
            tls_files=(tls_cert, tls_key),
            work_dir=None,
        )

    @classmethod
    def from_pkcs12(
        cls,
        *,
        tls_p12: Path,
        sign_p12: Path,
        passphrase_file: Path,
        server_ca: Path,
        work_dir: Path | None = None,
    ) -> SoftwareCredentials:
        """Open the two .p12 files with the passphrase of `passphrase_file` (one for both).

        `work_dir` (the data folder) receives the short-lived file `ssl_context()` needs; the
        system's temporary folder when None.
        """
        passphrase = read_passphrase(passphrase_file)
        auth = _load_p12(tls_p12, passphrase, passphrase_file, _AUTH_ROLE, "tls_p12")
        sign = _load_p12(sign_p12, passphrase, passphrase_file, _SIGN_ROLE, "sign_p12")
        self = cls.__new__(cls)
        self._setup(auth, sign, server_ca, tls_files=None, work_dir=work_dir)
        return self

    def _setup(
        self,
        auth: _KeyPair,
        sign: _KeyPair,
        server_ca: Path,
        *,
        tls_files: tuple[Path, Path] | None,
        work_dir: Path | None,
    ) -> None:
        self._auth, self._sign = auth, sign
        self._tls_files, self._work_dir = tls_files, work_dir
        self._server_ca = server_ca
        if not server_ca.is_file():
            raise CredentialsError(
                f"Le certificat de l'autorité du DMP ({server_ca}) est introuvable."
            )

    @property
    def issuer_dn(self) -> str:
        """DN of the certificate that signs the VIHF."""
        return subject_dn(self._sign.cert)

    @property
    def signing_certificate(self) -> SigningCertificate:
        cert = self._sign.cert
        return SigningCertificate(
            der=cert.public_bytes(serialization.Encoding.DER),
            issuer_name=cert.issuer.rfc4514_string(),
            serial_number=cert.serial_number,
        )

    def sign(self, data: bytes) -> bytes:
        """RSA PKCS#1 v1.5 with SHA-256 over `data` (the XAdES SignedInfo)."""
        return self._sign.key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def sign_vihf(self, assertion: etree._Element) -> etree._Element:
        """Enveloped XML-DSig of the assertion (exc-c14n, RSA-SHA256), replacing its placeholder."""
        return sign_vihf(assertion, self._sign.key, self._sign.cert)

    @property
    def structure_ids(self) -> frozenset[str]:
        """Struct_IdNat of the structure, from the OU of BOTH certificates (IGC Santé
        personne-morale DN); empty when they do not name the same one."""
        tls, signer = (_structure_id(pair.cert) for pair in (self._auth, self._sign))
        return frozenset({tls}) if tls is not None and tls == signer else frozenset()

    @property
    def auth_mode(self) -> AuthMode:
        return AuthMode.INDIRECTE

    def sender(self, author: Author) -> Author:
        """The document's author, as the source described them."""
        return author

    def may_send_as(self, author: Author) -> bool:
        """Establishment certificates send only for their own structure: the TLS identity and
        the VIHF/XAdES signer must both be the author's structure."""
        return author.structure_id in self.structure_ids

    def certificate_validities(self) -> tuple[CertificateValidity, CertificateValidity]:
        """(role, end of validity, what to do) of ORG AUTH_CLI then ORG SIGN."""
        def validity(role: str, pair: _KeyPair) -> CertificateValidity:
            return CertificateValidity(
                f"certificat {role}", pair.cert.not_valid_after_utc, pair.renewal_fr
            )

        return validity(_AUTH_ROLE, self._auth), validity(_SIGN_ROLE, self._sign)

    def expiry_warnings(self, now: dt.datetime, announced: Set[str]) -> ExpiryCheck:
        """Expiry warnings newly due for the two certificates (see bridge.cert_expiry)."""
        return expiry_warnings(self.certificate_validities(), now, announced)

    def ssl_context(self) -> ssl.SSLContext:
        """TLS 1.2+ client context: our ORG AUTH_CLI certificate, and only the DMP's CA trusted."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self._server_ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self._tls_files is not None:
            context.load_cert_chain(str(self._tls_files[0]), str(self._tls_files[1]))
        else:
            self._load_tls_identity(context)
        return context

    def _load_tls_identity(self, context: ssl.SSLContext) -> None:
        """Give `context` the in-memory ORG AUTH_CLI key through a file that lives for one call:
        created 0600 (mkstemp), the key encrypted with a one-time password, deleted at once."""
        one_time = secrets.token_urlsafe(32).encode("ascii")
        key_pem = self._auth.key.private_bytes(
            _PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(one_time),
        )
        try:
            fd, name = tempfile.mkstemp(prefix=".org-auth-cli-", suffix=".pem", dir=self._work_dir)
        except OSError as exc:
            raise CredentialsError(
                f"Impossible de préparer le certificat d'authentification pour la connexion TLS "
                f"dans {self._work_dir or tempfile.gettempdir()} ({exc.strerror}) : vérifiez que "
                "le dossier de données existe et que le compte du service peut y écrire."
            ) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self._auth.chain_pem + key_pem)
            context.load_cert_chain(name, password=one_time)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
