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
# 13 to 15 characters that look like a NIR (Corsica included), wherever they stand — also glued
# to letters or underscores, as in a file name: masked in every string of the event.
_NIR = re.compile(r"(?<![0-9])[12378][0-9]{4}(?:[0-9]{2}|2A|2B)[0-9]{6}(?:[0-9]{2})?(?![0-9])")
REDACTED = "[retiré]"


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _NIR.sub("[nir masqué]", value)
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in FORBIDDEN_KEYS else _clean(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    return value


def redact(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: remove forbidden keys and mask NIR-like numbers, at any depth."""
    for key in list(event):
        event[key] = REDACTED if key.lower() in FORBIDDEN_KEYS else _clean(event[key])
    return event


def configure_logging(log_file: Path | None, level: str = "info", *, stderr: bool = True) -> None:
    """JSON lines to `log_file` (created readable by the owner only) and to stderr.

    Records of other libraries (aiohttp, asyncio…) that log through the standard `logging`
    module go through the same redaction and rendering as ours.
    """
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.touch(mode=0o600, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
