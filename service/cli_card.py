"""`dmp-bridge card …`: the CPS card (readers, PIN, situation d'exercice)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from service.cli_commands import Handler


def register(sub: Any, config_arg: Callable[[argparse.ArgumentParser], None]) -> dict[str, Handler]:
    """Adds this module's subcommands to `sub` (argparse subparsers); their handlers by name."""
    return {}
