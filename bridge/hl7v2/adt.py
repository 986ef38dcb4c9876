"""PAM-FR ADT messages (A01, A04, A08, A28, A31): the patient's DMP choices from segment ZFA.

The hospital or practice identity manager (GAM) sends ADT messages that are not documents but
carry, in the French extension segment `ZFA` ("Statut DMP du patient", IHE PAM France 2.11),
what the patient said about their DMP. The bridge keeps only what its identity gate needs: the
opposition to feeding (nothing is ever sent for an opposed patient) and the consultation
consent, keyed by the INS of PID-3.

ZFA fields (positions CONFIRMED by the ANS PAM-FR examples, ansforge/hl7V2-exemples
`Vague 2/Consentement_DMP_PAMFR/*.er7`, and by a public PAM-FR segment schema; value tables
CONFIRMED only for the values those examples use, the others INFERRED from the schema's names):

- ZFA-1 DMP status: ACTIF, FERME, ARCHIVE, INEXISTANT, NC (only ACTIF seen; others INFERRED);
- ZFA-2 date the DMP status was collected; ZFA-3 date the DMP was closed;
- ZFA-4 valid access authorization for the establishment (Y/N); ZFA-5 its date;
- ZFA-6 / ZFA-7 oppositions to break-the-glass / emergency-centre access (Y/N, not used here);
  ZFA-8 their date;
- ZFA-9 information and opposition to FEEDING: INO informed, not opposed; IO informed, opposed;
  NA not collected; ZFA-10 its date;
- ZFA-11 information and consent to CONSULTATION: IC consents; INC refuses; NA not collected
  (the older 2.10 example writes INO here: read as "not opposed", i.e. consents); ZFA-12 its
  date.

ZFA-9 and ZFA-11 are CWE: the code is the first component (`INO^Informé et non opposé^…`).

Safety rule: an opposition is recorded whatever the identity status (holding documents is safe
and a person can undo it); lifting an opposition or recording a consent needs an identity whose
INS is trusted (PID-32 QUAL or VALI) — a provisional identity may carry another person's INS.
An ADT without ZFA is accepted and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from bridge.hl7_time import parse_hl7_ts
from bridge.hl7v2.errors import AppCode, ErrorCode, Location, rejected
from bridge.hl7v2.header import MessageHeader, decode_message, read_header
from bridge.hl7v2.message import check_envelope
from bridge.hl7v2.people import read_ins
from bridge.hl7v2.segments import Segment, comp, repetitions, split_segments, value

ADT_EVENTS = frozenset({"A01", "A04", "A08", "A28", "A31"})
_FEEDING = {"IO": True, "INO": False, "NA": None}
_CONSULTATION = {"IC": True, "INO": True, "INC": False, "IO": False, "NA": None}
_DMP_STATUSES = frozenset({"ACTIF", "FERME", "ARCHIVE", "INEXISTANT", "NC"})
TRUSTED_STATUSES = frozenset({"QUAL", "VALI"})


@dataclass(frozen=True)
class PatientUpdate:
    """What one ADT says about a patient's DMP (None: the message does not say)."""

    header: MessageHeader = field(repr=False)
    event: str  # MSH-9.2: A01, A04, A08, A28, A31
    ins: str | None = field(default=None, repr=False)  # matricule from PID-3 (health data)
    ins_oid: str | None = None
    identity_status: str | None = None  # PID-32
    has_zfa: bool = False
    dmp_status: str | None = None  # ZFA-1
    dmp_status_at: dt.datetime | None = None  # ZFA-2
    dmp_closed_at: dt.datetime | None = None  # ZFA-3
    access_authorized: bool | None = None  # ZFA-4
    feeding_opposition: bool | None = None  # ZFA-9: IO → True, INO → False, NA → None
    feeding_opposition_at: dt.datetime | None = None  # ZFA-10
    consultation_consent: bool | None = None  # ZFA-11: IC → True, INC → False, NA → None
    consultation_consent_at: dt.datetime | None = None  # ZFA-12

    @property
    def trusted_identity(self) -> bool:
        return self.identity_status in TRUSTED_STATUSES

    def registry_changes(self) -> RegistryChanges:
        """What the patient registry must record, after the safety rule (module docstring)."""
        opposition = self.feeding_opposition
        if opposition is False and not self.trusted_identity:
            opposition = None
        consent_at: dt.date | None = None
        withdrawn = False
        if self.trusted_identity and self.consultation_consent is True:
            when = self.consultation_consent_at or self.dmp_status_at
            consent_at = (when or self.header_time).date()
        elif self.consultation_consent is False:
            withdrawn = True  # a refusal is safe to record whatever the identity status
        return RegistryChanges(
            feeding_opposition=opposition,
            opposition_at=self.feeding_opposition_at if opposition else None,
            consultation_consent_at=consent_at,
            consent_withdrawn=withdrawn,
        )

    @property
    def header_time(self) -> dt.datetime:
        raw = self.header.raw(7)
        try:
            return parse_hl7_ts(raw)
        except ValueError:
            return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class RegistryChanges:
    """The registry write of one ADT (None / False: leave as it is)."""

    feeding_opposition: bool | None
    opposition_at: dt.datetime | None  # when the opposition was collected (ZFA-10)
    consultation_consent_at: dt.date | None
    consent_withdrawn: bool

    @property
    def empty(self) -> bool:
        return (self.feeding_opposition is None and self.consultation_consent_at is None
                and not self.consent_withdrawn)


def _check_header(h: MessageHeader) -> None:
    if h.message_type != "ADT":
        raise rejected(f"Type de message « {h.message_type or 'vide'} » : ADT attendu (MSH-9).",
                       ErrorCode.MESSAGE_TYPE, Location("MSH", 1, 9), resend=True)
    if h.trigger_event not in ADT_EVENTS:
        raise rejected(
            f"Événement ADT^{h.trigger_event or '?'} non pris en charge (MSH-9) : dmp-bridge ne "
            "lit que les ADT A01, A04, A08, A28 et A31 (statut DMP du patient, segment ZFA).",
            ErrorCode.EVENT, Location("MSH", 1, 9, 2), resend=True)
    check_envelope(h, expected_versions="2.5 (PAM-FR)")


def _coded(zfa: Segment, n: int, table: dict[str, bool | None], meaning: str,
           header: MessageHeader) -> bool | None:
    reps = repetitions(zfa.field(n), header.delimiters)
    code = comp(reps[0], 1, header.delimiters).upper() if reps else ""
    if not code:
        return None
    if code not in table:
        expected = ", ".join(sorted(table))
        raise rejected(f"Valeur « {code} » inconnue pour {meaning} (ZFA-{n}) : attendu "
                       f"{expected}.", ErrorCode.TABLE_VALUE, zfa.at(n))
    return table[code]


def parse_adt(data: bytes) -> PatientUpdate:
    """The DMP choices of one PAM-FR ADT, or HL7Rejected with the ACK's code and reason."""
    header = read_header(data)
    _check_header(header)
    d = header.delimiters
    segments = split_segments(decode_message(data, header), d)
    by_name = {s.name: s for s in reversed(segments)}
    pid, zfa = by_name.get("PID"), by_name.get("ZFA")
    if pid is None:
        raise rejected("Le segment PID (patient) est absent.", ErrorCode.SEGMENT_SEQUENCE,
                       Location("PID"))
    if zfa is None:
        return PatientUpdate(header=header, event=header.trigger_event)
    if not repetitions(pid.field(3), d):
        raise rejected("Les identifiants du patient (PID-3) sont absents.",
                       ErrorCode.REQUIRED_FIELD, pid.at(3))
    found = read_ins(pid, d)
    if found is None:
        raise rejected(
            "L'INS du patient est absent (PID-3, identifiant de type INS) : sans lui, son "
            "opposition ou son consentement au DMP ne peut pas être enregistré. Récupérez l'INS "
            "par le téléservice INSi, puis renvoyez le message.",
            ErrorCode.APPLICATION, pid.at(3), app_code=AppCode.INS_MISSING)
    ins, oid = found
    statuses = [comp(r, 1, d).upper() for r in repetitions(pid.field(32), d)]
    status = next((s for s in statuses if s), None)
    dmp_status = value(zfa, 1, d).upper() or None
    if dmp_status is not None and dmp_status not in _DMP_STATUSES:
        raise rejected(f"Statut du DMP « {dmp_status} » inconnu (ZFA-1) : attendu ACTIF, FERME, "
                       "ARCHIVE, INEXISTANT ou NC.", ErrorCode.TABLE_VALUE, zfa.at(1))
    authorized = value(zfa, 4, d).upper()
    return PatientUpdate(
        header=header,
        event=header.trigger_event,
        ins=ins,
        ins_oid=oid,
        identity_status=status,
        has_zfa=True,
        dmp_status=dmp_status,
        dmp_status_at=_timestamp(zfa, 2, header),
        dmp_closed_at=_timestamp(zfa, 3, header),
        access_authorized={"Y": True, "N": False}.get(authorized),
        feeding_opposition=_coded(zfa, 9, _FEEDING, "l'opposition à l'alimentation", header),
        feeding_opposition_at=_timestamp(zfa, 10, header),
        consultation_consent=_coded(zfa, 11, _CONSULTATION,
                                    "le consentement à la consultation", header),
        consultation_consent_at=_timestamp(zfa, 12, header),
    )


def _timestamp(zfa: Segment, n: int, header: MessageHeader) -> dt.datetime | None:
    raw = value(zfa, n, header.delimiters)
    if not raw:
        return None
    try:
        return parse_hl7_ts(raw)
    except ValueError:
        raise rejected(f"Date « {raw} » invalide en ZFA-{n} : format attendu AAAAMMJJ[HHMM[SS]].",
                       ErrorCode.DATA_TYPE, zfa.at(n)) from None
