"""Run one emulated card in vpcd: ``python -m tests.card.run_card CARD.json --port 35963``.

The card stays inserted until the process is stopped (SIGTERM); it reconnects by itself when
pcscd restarts. Port 35963 is reader "Virtual PCD 00 00", 35964 "Virtual PCD 00 01".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.card.emulator import CardSpec, CpsLikeCard
from tests.card.vpcd_client import VPCD_PORTS, serve_forever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Emulated CPS-like card for vpcd (tests only).")
    parser.add_argument("card", type=Path, help="card JSON (tests/card/emulator.py)")
    parser.add_argument("--port", type=int, default=VPCD_PORTS[0])
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    card = CpsLikeCard(CardSpec.load(args.card))
    print(f"card ready for vpcd on {args.host}:{args.port}", flush=True)
    serve_forever(card, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
