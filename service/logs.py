"""Structured operational logs: JSON lines, and never health data.

The redaction processor runs last, before rendering: it drops keys that could carry identity or
content and masks anything in a value that looks like a NIR/INS. Health data belongs in the store
and the audit journal only (DESIGN.md §6).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

# Keys whose values are never written, whoever logs them.
FORBIDDEN_KEYS = frozenset(
    {
        "ins",
        "nir",
        "matricule",
        "name",
        "nom",
        "prenom",
        "given_name",
        "family_name",
        "birth_date",
        "date_naissance",
        "patient",
        "content",
        "pdf",
        "document",
        "pin",
        "title",
        "titre",
        "file",
        "filename",
        "sidecar",
    }
)
# 13 to 15 characters that look like a NIR (Corsica included): masked wherever they appear.
_NIR = re.compile(r"\b[12378]\d{4}(?:\d{2}|2A|2B)\d{6}(?:\d{2})?\b")


def redact(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: remove forbidden keys, mask NIR-like numbers in string values."""
    for key in list(event):
        if key.lower() in FORBIDDEN_KEYS:
            event[key] = "[retiré]"
        elif isinstance(event[key], str):
            event[key] = _NIR.sub("[nir masqué]", event[key])
    return event


def configure_logging(log_file: Path | None, level: str = "info", *, stderr: bool = True) -> None:
    """JSON lines to `log_file` (created readable by the owner only) and to stderr."""
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.touch(mode=0o600, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
