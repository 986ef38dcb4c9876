"""The signed SOAP envelope of every DMP transaction: clock check, VIHF, signature, WS-Addressing.

One function for the dispatcher (ITI-41, ITI-18) and `connectors.dmp_transactions` (ITI-57,
TD0.2…), so the VIHF is built the same way whatever the transaction. Fresh ids are minted here;
the time comes from the caller's clock.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from bridge.credentials_port import Credentials
from bridge.domain import Author, Ins
from bridge.soap import build_envelope
from bridge.vihf import AccessMode, AuthMode, Software, VihfRequest, build_vihf, check_clock


@dataclass(frozen=True)
class CallerContext:
    """How the bridge speaks to the DMP: authentication and access modes (one per installation,
    from the configuration)."""

    auth_mode: AuthMode | None = None  # None: the credentials' own (card: DIRECTE)
    access_mode: AccessMode = AccessMode.NORMAL
    samu_regulator: bool = False  # a regulation centre's workstation: may use centre_15
    validity: dt.timedelta = dt.timedelta(minutes=10)


def certificate_validity(credentials: Credentials) -> tuple[dt.datetime, dt.datetime]:
    """(not before, not after) of the signing certificate, in UTC."""
    cert = x509.load_der_x509_certificate(credentials.signing_certificate.der)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def signed_envelope(
    credentials: Credentials,
    software: Software,
    *,
    author: Author,
    patient: Ins,
    action: str,
    to: str,
    body: etree._Element,
    now: dt.datetime,
    context: CallerContext | None = None,
) -> etree._Element:
    """`soap:Envelope` with WS-Addressing and the VIHF, signed by the credentials.

    Raises ClockSkew (environment error: pause, consume no attempt) when `now` is outside the
    signing certificate's validity or obviously wrong, and VihfRefused for a forbidden access
    mode — both before anything is signed.
    """
    context = context or CallerContext()
    not_before, not_after = certificate_validity(credentials)
    check_clock(now, certificate_not_before=not_before, certificate_not_after=not_after)
    assertion = build_vihf(
        VihfRequest(
            assertion_id=f"_{uuid.uuid4().hex}",
            issue_instant=now,
            issuer_dn=credentials.issuer_dn,
            author=credentials.sender(author),
            patient=patient,
            auth_mode=context.auth_mode or credentials.auth_mode,
            access_mode=context.access_mode,
            software=software,
            validity=context.validity,
            samu_regulator=context.samu_regulator,
        )
    )
    assertion = credentials.sign_vihf(assertion)
    return build_envelope(
        action=action,
        to=to,
        message_id=f"urn:uuid:{uuid.uuid4()}",
        assertion=assertion,
        body=body,
    )
