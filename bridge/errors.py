"""The error root of the core: every rejection is a value a user can act on.

Each error carries a stable `code` (for the store, the audit and tests), a French `message_fr`
that says what is wrong and what to do, and an English `event` key for the logs. Messages never
contain health data: they name fields, files and rules, not patients.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error raised by the core."""

    code: str = "BRIDGE_ERROR"
    event: str = "bridge_error"

    def __init__(self, message_fr: str, *, code: str | None = None, event: str | None = None):
        super().__init__(message_fr)
        self.message_fr = message_fr
        if code is not None:
            self.code = code
        if event is not None:
            self.event = event


class IntakeRejected(BridgeError):
    """An input (file, message, request) cannot become a job; it goes to quarantine."""

    code = "INTAKE_REJECTED"
    event = "intake_rejected"


class IdentityRejected(BridgeError):
    """The patient's identity cannot be sent to the DMP as it is."""

    code = "IDENTITY_REJECTED"
    event = "identity_rejected"


class MappingRejected(BridgeError):
    """The document cannot be classified for the DMP."""

    code = "MAPPING_REJECTED"
    event = "mapping_rejected"


class HeldForPerson(BridgeError):
    """The document is fine but must wait for a person's decision (job `held`)."""

    code = "HELD"
    event = "job_held"
