"""Settings of the DMP simulator: where it listens, what it trusts, how strict it is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the simulator needs to start; the certificates come from `service.test_pki`."""

    db_path: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0: the OS picks a free port (tests); read it back from RunningSimulator.port
    strict: bool = True  # False: the "lenient" findings are logged, not refused
    clock_skew_seconds: int = 300  # tolerance on the VIHF IssueInstant / NotOnOrAfter
    max_body_bytes: int = 50 * 1024 * 1024  # a request larger than this is refused unread
