"""WS-Addressing (spec §2.2, §8.3): MessageID, To and Action present; Action served here."""

from __future__ import annotations

from service.simulator.envelope import SoapRequest
from service.simulator.invented_codes import InventedCode
from service.simulator.problems import Problem


def check_addressing(request: SoapRequest, allowed_actions: frozenset[str]) -> list[Problem]:
    """Missing headers first (nothing else can be judged without them), then the Action."""
    missing = [name for name in ("MessageID", "To", "Action") if request.wsa(name) is None]
    if missing:
        return [Problem(InventedCode.WSA_MANQUANT, f"wsa:{name}",
                        f"En-tête WS-Addressing obligatoire absent : wsa:{name}.")
                for name in missing]
    if request.wsa("Action") not in allowed_actions:
        return [Problem(InventedCode.WSA_ACTION, "wsa:Action",
                        "Action SOAP non prise en charge sur ce service.")]
    return []
