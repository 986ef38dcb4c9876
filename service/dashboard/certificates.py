"""The structure's software certificates as the home page shows them: who, until when.

Only the public certificate files are read (never a key, never a PKCS#12 container, whose
passphrase the dashboard does not hold).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from service.config import BridgeConfig

EXPIRY_WARNING = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertificateView:
    """One certificate: its role, its name, its end of validity and a French verdict."""

    role: str
    subject: str
    not_after: dt.datetime | None
    verdict: str
    ok: bool


def _read(role: str, path: Path, now: dt.datetime) -> CertificateView:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return CertificateView(role, path.name, None,
                               f"Certificat illisible ({path}) : vérifiez le chemin dans la "
                               "configuration.", ok=False)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else cert.subject.rfc4514_string()
    not_after = cert.not_valid_after_utc
    if not_after <= now:
        verdict, ok = "EXPIRÉ : les envois sont refusés. Installez le nouveau certificat.", False
    elif not_after - now <= EXPIRY_WARNING:
        days = (not_after - now).days
        verdict, ok = f"expire dans {days} jour(s) : commandez son renouvellement.", False
    else:
        verdict, ok = "valide", True
    return CertificateView(role, subject, not_after, verdict, ok)


def certificate_views(config: BridgeConfig, now: dt.datetime) -> list[CertificateView]:
    """The establishment certificates of the configuration (none in card mode)."""
    section = config.credentials
    if section.mode != "etablissement":
        return []
    views = []
    for role, pem, p12 in (("authentification (ORG AUTH_CLI)", section.tls_cert, section.tls_p12),
                           ("signature (ORG SIGN)", section.sign_cert, section.sign_p12)):
        if p12 is not None:
            views.append(CertificateView(role, config.path(p12).name, None,
                                         "conteneur PKCS#12 configuré (validité non lue ici)",
                                         ok=True))
        else:
            views.append(_read(role, config.path(pem), now))
    return views
