"""Authentification_Mode against the TLS certificate, and centre_15, on real mutual TLS."""

from __future__ import annotations

import aiohttp

from service.simulator import RunningSimulator
from tests.simulator.exchange import SUCCESS, post
from tests.simulator.pki_maker import CPS_RPPS, SimPki
from tests.simulator.wire import WireSpec, build_iti41


def _spec(sim: RunningSimulator, **fields: object) -> WireSpec:
    spec = WireSpec(to=f"{sim.base_url}/repository")
    for name, value in fields.items():
        setattr(spec, name, value)
    return spec


async def test_direct_mode_with_a_cps_card(simulator: RunningSimulator, pki: SimPki,
                                           session: aiohttp.ClientSession) -> None:
    spec = _spec(simulator, auth_mode="DIRECTE", name_id=CPS_RPPS)
    answer = await post(session, pki, spec.to, build_iti41(pki, spec), cert=pki.cps)
    assert answer.status == SUCCESS, answer.codes
    assert CPS_RPPS in (simulator.store.documents()[0].tls_dn or "")


async def test_direct_mode_needs_the_card_holder_as_user(
    simulator: RunningSimulator, pki: SimPki, session: aiohttp.ClientSession
) -> None:
    spec = _spec(simulator, auth_mode="DIRECTE", name_id="899700999999")
    answer = await post(session, pki, spec.to, build_iti41(pki, spec), cert=pki.cps)
    assert answer.codes == {"DMP_MODE_AUTHENTIFICATION"}


async def test_indirect_mode_refuses_a_cps_card(simulator: RunningSimulator, pki: SimPki,
                                                session: aiohttp.ClientSession) -> None:
    spec = _spec(simulator)
    answer = await post(session, pki, spec.to, build_iti41(pki, spec), cert=pki.cps)
    assert answer.codes == {"DMP_MODE_AUTHENTIFICATION"}


async def test_centre_15_for_a_regulating_doctor(simulator: RunningSimulator, pki: SimPki,
                                                 session: aiohttp.ClientSession) -> None:
    spec = _spec(simulator, profession="10", second_role="SM59", purpose="centre_15")
    answer = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert answer.status == SUCCESS, answer.codes
    general = _spec(simulator, profession="10", purpose="centre_15")
    refused = await post(session, pki, general.to, build_iti41(pki, general))
    assert refused.codes == {"DMP_VIHF_INVALIDE"}
