"""What decides whether a document may go: the matrix, the target, the patient registry."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.identity_gate import PatientRegistry, Target
from mappings.matrix import Matrix


@dataclass(frozen=True)
class Gatekeeping:
    """What decides whether a document may go: the matrix, the target, the patient registry."""

    matrix: Matrix
    target: Target = Target.SIMULATOR
    registry: PatientRegistry | None = None
