"""The audit journal's records and rules: append-only, hash-chained, verifiable (DESIGN.md §6).

Pure values and rules; `connectors.audit_journal` keeps them in a file. One record per submission
attempt, outcome and operator action: who, when, which job and document, which patient (as a
keyed pseudonym, never the INS), which result. No health data: the detail is a short text checked
for long digit runs (an INS/NIR is 13 to 15 digits).

Chain: `hash = SHA-256(previous_hash + canonical(fields))`, the first record links to
`GENESIS_HASH`. Any edit breaks the record's own hash; a deletion or a move breaks the sequence
(or the link) at the first record that no longer follows. A cut at the end leaves a valid chain:
only a hash witnessed earlier (`last_hash`) reveals it.

Retention: a purge replaces the purged head by one checkpoint record (action `purge`) whose
`previous_hash` is the hash of the last purged record and whose sequence is that record's. It
is sealed by its own hash but is *transparent* in the chain: the record after it links to its
`previous_hash`, so the kept records are never rewritten, and the journal's head hash does not
change with a purge. A checkpoint may only be the first record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum

from bridge.errors import BridgeError

GENESIS_HASH = "0" * 64  # what the first record of a journal links to
PSEUDONYM_LENGTH = 32  # hex characters kept from the HMAC (128 bits)
MAX_DETAIL = 200
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PSEUDONYM = re.compile(rf"[0-9a-f]{{{PSEUDONYM_LENGTH}}}")
_LONG_DIGITS = re.compile(r"\d{13,}")  # an INS/NIR, a phone number…: not in an audit detail


class AuditError(BridgeError):
    """An audit record cannot be built or read as it is."""

    code = "AUDIT_INVALID"
    event = "audit_invalid"


class AuditAction(StrEnum):
    """What happened (French words: they are shown to the operator as they are)."""

    ENVOI = "envoi"  # a submission attempt to the DMP
    RESULTAT = "resultat"  # the outcome of an attempt (or of an ambiguity resolved)
    LIBERATION = "liberation"  # a person released a held job
    ANNULATION = "annulation"  # a person cancelled a job
    RENVOI = "renvoi"  # a person replayed a dead job
    PURGE = "purge"  # retention checkpoint: the records before it were purged


def patient_pseudonym(ins_matricule: str, secret: bytes) -> str:
    """HMAC-SHA256 of the INS under a local secret, truncated: stable per secret, not the INS."""
    if len(secret) < 16:
        raise AuditError(
            "Le secret de pseudonymisation du journal d'audit est trop court (16 octets au moins).",
            code="AUDIT_WEAK_SECRET",
        )
    mac = hmac.new(secret, b"dmp-bridge-audit\0" + ins_matricule.encode(), hashlib.sha256)
    return mac.hexdigest()[:PSEUDONYM_LENGTH]


@dataclass(frozen=True)
class AuditFields:
    """What the caller says about an event; `chain` seals it."""

    sequence: int  # 1 for the first record ever; never reused, even after a purge
    at: datetime  # aware; stored in UTC
    actor: str  # "dispatcher", "operateur:<login>", "http"…
    action: AuditAction
    job_id: int | None = None
    document_unique_id: str | None = None
    patient_pseudonym: str | None = None  # `patient_pseudonym(...)`, never the INS
    outcome: str = "ok"  # "ok" or an error code
    detail: str = ""  # short, no health data
    purged_count: int | None = None  # checkpoints only: records removed by this purge


@dataclass(frozen=True)
class AuditRecord(AuditFields):
    """A sealed record: its fields, the hash it links to and its own hash."""

    previous_hash: str = GENESIS_HASH
    hash: str = ""

    @property
    def is_checkpoint(self) -> bool:
        return self.action is AuditAction.PURGE

    @property
    def link(self) -> str:
        """The hash the next record must carry as `previous_hash`."""
        return self.previous_hash if self.is_checkpoint else self.hash

    def fields(self) -> AuditFields:
        values = asdict(self)
        del values["previous_hash"], values["hash"]
        return AuditFields(**values)


@dataclass(frozen=True)
class VerificationResult:
    """`ok`, or the 1-based position (line) of the first problem with a French message."""

    ok: bool
    count: int  # records read
    position: int | None = None
    code: str = "AUDIT_OK"
    message_fr: str = "Le journal d'audit est intègre."


def _utc_text(at: datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise AuditError(
            "L'heure d'un enregistrement d'audit doit porter un fuseau.", code="AUDIT_NAIVE_TIME"
        )
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _field_dict(fields: AuditFields) -> dict[str, object]:
    return {
        "sequence": fields.sequence,
        "at": _utc_text(fields.at),
        "actor": fields.actor,
        "action": str(fields.action),
        "job_id": fields.job_id,
        "document_unique_id": fields.document_unique_id,
        "patient_pseudonym": fields.patient_pseudonym,
        "outcome": fields.outcome,
        "detail": fields.detail,
        "purged_count": fields.purged_count,
    }


def _canonical(values: dict[str, object]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_hash(previous_hash: str, fields: AuditFields) -> str:
    text = previous_hash + _canonical(_field_dict(fields))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check(fields: AuditFields, previous_hash: str) -> None:
    if fields.sequence < 1 or not fields.actor or not fields.outcome:
        raise AuditError(
            "Enregistrement d'audit incomplet : numéro, acteur et résultat sont obligatoires.",
            code="AUDIT_INCOMPLETE",
        )
    if not _HEX64.fullmatch(previous_hash):
        raise AuditError(
            "Le sceau précédent d'un enregistrement d'audit est invalide.", code="AUDIT_BAD_LINK"
        )
    if fields.patient_pseudonym is not None and not _PSEUDONYM.fullmatch(fields.patient_pseudonym):
        raise AuditError(
            "Le journal d'audit n'accepte qu'un pseudonyme de patient, jamais l'INS.",
            code="AUDIT_NOT_PSEUDONYM",
        )
    if len(fields.detail) > MAX_DETAIL or _LONG_DIGITS.search(fields.detail):
        raise AuditError(
            "Le détail d'un enregistrement d'audit doit être court et sans "
            "donnée de santé ni identifiant de patient.",
            code="AUDIT_BAD_DETAIL",
        )
    if (fields.purged_count is not None) != (fields.action is AuditAction.PURGE):
        raise AuditError(
            "Seul un point de purge porte un nombre d'enregistrements purgés.",
            code="AUDIT_BAD_CHECKPOINT",
        )


def chain(previous_hash: str, fields: AuditFields) -> AuditRecord:
    """Seal `fields` after the record whose link is `previous_hash`."""
    _check(fields, previous_hash)
    values = asdict(fields)
    return AuditRecord(
        **values, previous_hash=previous_hash, hash=compute_hash(previous_hash, fields)
    )


def checkpoint(
    last_purged: AuditRecord, *, purged_count: int, at: datetime, actor: str
) -> AuditRecord:
    """The record that stands for the purged head: the remainder verifies from it."""
    fields = AuditFields(
        sequence=last_purged.sequence,
        at=at,
        actor=actor,
        action=AuditAction.PURGE,
        outcome="ok",
        detail=f"{purged_count} enregistrements purgés",
        purged_count=purged_count,
    )
    return chain(last_purged.link, fields)


def to_line(record: AuditRecord) -> bytes:
    """One canonical JSON line (sorted keys, no spaces, UTF-8), newline included."""
    values = _field_dict(record)
    values["previous_hash"] = record.previous_hash
    values["hash"] = record.hash
    return (_canonical(values) + "\n").encode("utf-8")


def _opt(values: dict[str, object], key: str, kind: type) -> object:
    value = values.get(key)
    if value is not None and (type(value) is not kind):
        raise AuditError(f"Champ « {key} » illisible.", code="AUDIT_UNREADABLE")
    return value


def parse_line(line: bytes) -> AuditRecord:
    """Read one line back; anything not byte-for-byte canonical is refused."""
    try:
        values = json.loads(line.decode("utf-8"))
        if not isinstance(values, dict):
            raise TypeError
        sequence, at_text = values["sequence"], values["at"]
        actor, action = values["actor"], values["action"]
        outcome, detail = values["outcome"], values["detail"]
        previous_hash, hash_ = values["previous_hash"], values["hash"]
        if type(sequence) is not int or not all(
            isinstance(v, str)
            for v in (at_text, actor, action, outcome, detail, previous_hash, hash_)
        ):
            raise TypeError
        job_id = _opt(values, "job_id", int)
        document = _opt(values, "document_unique_id", str)
        pseudonym = _opt(values, "patient_pseudonym", str)
        purged = _opt(values, "purged_count", int)
        record = AuditRecord(
            sequence=sequence,
            at=datetime.fromisoformat(at_text),
            actor=actor,
            action=AuditAction(action),
            job_id=job_id if isinstance(job_id, int) else None,
            document_unique_id=document if isinstance(document, str) else None,
            patient_pseudonym=pseudonym if isinstance(pseudonym, str) else None,
            outcome=outcome,
            detail=detail,
            purged_count=purged if isinstance(purged, int) else None,
            previous_hash=previous_hash,
            hash=hash_,
        )
        canonical = to_line(record)
    # RecursionError: a line rewritten as "[[[[…" deeper than the JSON parser recurses.
    except (ValueError, TypeError, KeyError, RecursionError, AuditError) as exc:
        raise AuditError("Ligne du journal d'audit illisible.", code="AUDIT_UNREADABLE") from exc
    if canonical != line.rstrip(b"\n") + b"\n":
        raise AuditError(
            "Ligne du journal d'audit non canonique : elle a été réécrite.", code="AUDIT_UNREADABLE"
        )
    return record


def failure(position: int, count: int, code: str, message_fr: str) -> VerificationResult:
    return VerificationResult(
        ok=False, count=count, position=position, code=code, message_fr=message_fr
    )


def _checkpoint_problem(
    position: int, n: int, record: AuditRecord, anchor: str | None
) -> VerificationResult | None:
    if position != 1:
        return failure(
            position,
            n,
            "AUDIT_MISPLACED_CHECKPOINT",
            f"Journal d'audit altéré : point de purge inattendu à la ligne {position}.",
        )
    if anchor is not None and record.previous_hash != anchor:
        return failure(
            position,
            n,
            "AUDIT_BROKEN_LINK",
            "Journal d'audit altéré : le point de purge ne part pas du sceau attendu.",
        )
    return None


def verify(
    records: Sequence[AuditRecord], *, anchor: str | None = None, last_hash: str | None = None
) -> VerificationResult:
    """Check the chain; positions are 1-based (the line number in the journal file).

    `anchor`: the hash the journal must start from (default: `GENESIS_HASH`, or the first
    record's `previous_hash` when it is a purge checkpoint). `last_hash`: a head hash witnessed
    earlier; it must still be in the chain (records appended since are normal), else the end
    was cut. A witness older than the last purge cannot be checked any more: take one after
    each purge (a purge does not change the head hash).
    """
    n = len(records)
    expected_prev = GENESIS_HASH if anchor is None else anchor
    expected_seq = 1
    links = {expected_prev}
    for position, record in enumerate(records, start=1):
        if compute_hash(record.previous_hash, record.fields()) != record.hash:
            return failure(
                position,
                n,
                "AUDIT_EDITED",
                f"Journal d'audit altéré : l'enregistrement de la ligne {position} "
                "a été modifié (son sceau ne correspond plus à son contenu).",
            )
        if record.is_checkpoint:
            problem = _checkpoint_problem(position, n, record, anchor)
            if problem is not None:
                return problem
            expected_prev, expected_seq = record.previous_hash, record.sequence + 1
            links = {expected_prev}
            continue
        if record.sequence != expected_seq:
            return failure(
                position,
                n,
                "AUDIT_SEQUENCE",
                f"Journal d'audit altéré à la ligne {position} : enregistrement "
                f"n°{expected_seq} attendu, n°{record.sequence} trouvé (un "
                "enregistrement a été supprimé ou déplacé).",
            )
        if record.previous_hash != expected_prev:
            return failure(
                position,
                n,
                "AUDIT_BROKEN_LINK",
                f"Journal d'audit altéré à la ligne {position} : le chaînage avec "
                "l'enregistrement précédent est rompu.",
            )
        expected_prev, expected_seq = record.hash, expected_seq + 1
        links.add(record.hash)
    if last_hash is not None and last_hash not in links:
        return failure(
            n + 1,
            n,
            "AUDIT_TRUNCATED",
            f"Journal d'audit tronqué : le dernier sceau connu est absent, des "
            f"enregistrements ont été supprimés à la fin (après la ligne {n}).",
        )
    return VerificationResult(ok=True, count=n)


def purge_split(records: Sequence[AuditRecord], before: datetime) -> int:
    """How many leading records a purge before `before` removes (checkpoint included).

    Only a head is ever purged: the cut stops at the first record at/after `before`, so one
    late-dated record never lets a later one go.
    """
    limit = datetime.fromisoformat(_utc_text(before))
    cut = 0
    for record in records:
        if record.at.astimezone(UTC) >= limit and not record.is_checkpoint:
            break
        cut += 1
    return cut
