"""The keys that decide which documents may travel together in one submission set.

A lot (one ITI-41, one VIHF, one XAdES) holds documents of ONE patient written by ONE author in
ONE structure (the set's author is the documents' author, and the credentials must be allowed to
send for that structure). The keys are computed once, when the job is committed, from the
sidecar, and stored with the job so the store can find a job's companions with one indexed
query; a job without keys (unreadable sidecar, or received before keys existed) is never grouped.

The patient key is a hash, not the INS: it is stored in clear next to the job row and may appear
in diagnostics, which must carry no health data (DESIGN.md §6).
"""

from __future__ import annotations

import dataclasses
import hashlib

from bridge.cda_passthrough import looks_like_cda
from bridge.errors import BridgeError
from bridge.jobs import Intake
from bridge.sidecar import DocumentRequest, parse_sidecar


def patient_key(request: DocumentRequest) -> str:
    """A pseudonymous key of the patient (same INS and OID → same key)."""
    ins = request.patient.ins
    digest = hashlib.sha256(f"dmp-bridge-patient\0{ins.oid.value}\0{ins.matricule}".encode())
    return digest.hexdigest()[:32]


def author_key(request: DocumentRequest) -> str:
    """Who wrote it, for whom: RPPS and structure (Struct_IdNat)."""
    return f"{request.author.rpps}@{request.author.structure_id}"


def with_lot_keys(intake: Intake) -> Intake:
    """The intake with its keys, when its metadata is a readable sidecar (else unchanged).

    A received CDA (sent as it is, `bridge.cda_passthrough`) gets none: it always goes alone.
    """
    if looks_like_cda(intake.payload):
        return intake
    try:
        request = parse_sidecar(intake.metadata, file_name=intake.source_ref)
    except BridgeError:
        return intake  # the dispatcher will refuse it with the reason; it is never grouped
    return dataclasses.replace(intake, patient_key=patient_key(request),
                               author_key=author_key(request))
