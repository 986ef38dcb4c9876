"""The known variants of real clients (spec §7): refused by the strict simulator, accepted by
`strict=False` ("--lenient") with one logged warning per variant.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from structlog.testing import capture_logs

from service.simulator import RunningSimulator
from tests.simulator.exchange import SUCCESS, Answer, post
from tests.simulator.flows import register, registry
from tests.simulator.pki_maker import SimPki
from tests.simulator.wire import WireSpec, build_iti41
from tests.simulator.wire57 import status_change
from tests.simulator.wire_base import APPROVED, ARCHIVED


def _paris_now() -> str:
    return dt.datetime.now(ZoneInfo("Europe/Paris")).strftime("%Y%m%d%H%M%S")


VARIANTS: list[tuple[str, dict[str, Any], str]] = [
    ("heure locale sans suffixe", {"submission_time": _paris_now()}, "XDSRegistryMetadataError"),
    ("heure avec décalage", {"submission_time": "20240105101600+0100"},
     "XDSRegistryMetadataError"),
    ("mustUnderstand sans espace de noms", {"bare_must_understand": True}, "DMP_SOAP_INVALIDE"),
    ("empreinte factice du lot", {"set_digest": b"\x00"}, "DMP_XADES_INVALIDE"),
    ("SHA-1 partout", {"vihf_sha1": True, "xades_sha1": True}, "DMP_VIHF_SIGNATURE"),
    ("contentTypeCode 1.2.250.1.213.2.2", {"content_type_system": "1.2.250.1.213.2.2"},
     "XDSRegistryMetadataError"),
    ("SubmissionSetStatus sur signs", {"status_on_signs": True}, "XDSRegistryMetadataError"),
    ("Authentification_mode", {"auth_mode_attribute": "Authentification_mode"},
     "DMP_VIHF_INVALIDE"),
    ("mode acces VIHF 2.0", {"purpose_system_name": "mode acces VIHF 2.0"}, "DMP_VIHF_INVALIDE"),
]


async def _send(session: aiohttp.ClientSession, pki: SimPki, sim: RunningSimulator,
                fields: dict[str, Any]) -> Answer:
    spec = WireSpec(to=f"{sim.base_url}/repository", **fields)
    return await post(session, pki, spec.to, build_iti41(pki, spec))


@pytest.mark.parametrize(("name", "fields", "code"), VARIANTS, ids=[v[0] for v in VARIANTS])
async def test_variant(simulator: RunningSimulator, lenient_simulator: RunningSimulator,
                       pki: SimPki, session: aiohttp.ClientSession, name: str,
                       fields: dict[str, Any], code: str) -> None:
    refused = await _send(session, pki, simulator, fields)
    assert code in refused.codes, name
    assert simulator.store.documents() == []
    with capture_logs() as logs:
        accepted = await _send(session, pki, lenient_simulator, fields)
    assert accepted.status == SUCCESS, accepted.codes
    warnings = [e for e in logs if e["event"] == "simulator_lenient_variant"]
    assert warnings and all(e["log_level"] == "warning" for e in warnings)
    assert len(lenient_simulator.store.documents()) == 2


async def test_octet_stream_for_iti57(simulator: RunningSimulator,
                                      lenient_simulator: RunningSimulator, pki: SimPki,
                                      session: aiohttp.ClientSession) -> None:
    for sim, ok in ((simulator, False), (lenient_simulator, True)):
        spec, doc = await register(session, pki, sim)
        request = status_change(pki, registry(sim), spec, doc.entry_uuid, APPROVED, ARCHIVED,
                                content_type="application/octet-stream")
        with capture_logs() as logs:
            answer = await post(session, pki, registry(sim), request)
        if ok:
            assert answer.status == SUCCESS, answer.codes
            assert any(e["event"] == "simulator_lenient_variant" for e in logs)
        else:
            assert answer.http_status == 500 and answer.fault_code == "DMP_SOAP_INVALIDE"
