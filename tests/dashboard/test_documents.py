"""Documents: a held document shows why, and two clicks send it; the list's filters; the other
actions (cancel, replay, retry now) follow the job rules and wake the dispatcher; each action,
done or refused, is recorded in the audit journal as the dashboard's."""

from __future__ import annotations

import datetime as dt
import re

from bridge.audit import AuditAction
from bridge.jobs import JobState
from connectors.sqlite_store import SqliteStore
from service.audit_trail import AuditTrail
from service.dispatcher import Dispatcher
from service.simulator.server import RunningSimulator
from tests.dashboard.conftest import (
    CANARY_NAME,
    Visitor,
    Woken,
    canary_sidecar,
    queue,
    registered,
    to_confirm,
)
from tests.factories import make_sidecar_dict


async def press(visitor: Visitor, job_id: int, button: str) -> str:
    """A button of the document's page (its form's address ends with `button`): the page the
    user lands on, with the message of what happened."""
    csrf = await visitor.csrf(f"/documents/{job_id}")
    _, page = await visitor.post(f"/documents/{job_id}/{button}", {"csrf": csrf})
    return page


def state_of(store: SqliteStore, job_id: int) -> JobState | None:
    job = store.get(job_id)
    return None if job is None else job.state


async def test_a_held_document_shows_why_and_two_clicks_send_it_to_the_dmp(
        signed_in: Visitor, store: SqliteStore, dispatcher: Dispatcher,
        simulator: RunningSimulator, woken: Woken) -> None:
    job = queue(store, "a-confirmer", to_confirm())
    assert await dispatcher.run_once()  # the gate holds it: nothing reaches the DMP
    held = store.get(job.id)
    assert held is not None and held.state is JobState.HELD
    assert held.last_error_code == "CONFIRM_WITH_PATIENT"

    _, listing = await signed_in.get("/documents?etat=held")  # click 1: the list
    assert f"n° {job.id}" in listing and "PAT-TROIS DOMINIQUE" in listing
    _, page = await signed_in.get(f"/documents/{job.id}")
    assert "Pourquoi ce document attend" in page
    assert held.last_error_fr is not None and held.last_error_fr in page
    assert "Confirmé avec le patient : envoyer" in page
    assert "11506-3" in page  # the typeCode that will be sent

    csrf = await signed_in.csrf(f"/documents/{job.id}")  # click 2: the button
    response, page = await signed_in.post(f"/documents/{job.id}/confirmer", {"csrf": csrf})
    assert response.url.path == f"/documents/{job.id}"
    assert "information confirmée avec le patient" in page
    assert woken.count == 1
    assert state_of(store, job.id) is JobState.QUEUED
    assert [e.code for e in store.events(job.id)][-1] == "RELEASED_BY_USER"
    assert registered(simulator) == 0

    assert await dispatcher.run_once()
    done = store.get(job.id)
    assert done is not None and done.state is JobState.DONE
    assert registered(simulator) == 1
    _, page = await signed_in.get(f"/documents/{job.id}")
    assert "enregistré dans le DMP" in page and "Métadonnées envoyées au DMP" in page
    assert done.document_unique_id is not None and done.document_unique_id in page
    assert "Libérer : envoyer maintenant" not in page
    assert "Confirmé avec le patient : envoyer" not in page


async def test_an_unqualified_identity_offers_cancel_only_with_what_to_correct(
        signed_in: Visitor, store: SqliteStore, dispatcher: Dispatcher) -> None:
    sidecar = make_sidecar_dict()
    sidecar["patient"]["identity_status"] = "PROV"
    job = queue(store, "provisoire", sidecar)
    await dispatcher.run_once()
    _, page = await signed_in.get(f"/documents/{job.id}")
    assert "statut PROV" in page and "corrigez l'identité dans le logiciel" in page
    assert "Libérer : envoyer maintenant" not in page
    page = await press(signed_in, job.id, "annuler")
    assert "envoi annulé par l'utilisateur" in page
    assert state_of(store, job.id) is JobState.DEAD
    assert "Renvoyer au DMP" in page  # a cancelled document can still be sent later


async def test_a_dead_document_is_replayed_and_the_dispatcher_woken(
        signed_in: Visitor, store: SqliteStore, woken: Woken) -> None:
    job = queue(store, "refuse")
    store.transition(job.id, JobState.DEAD, code="XDSRegistryMetadataError",
                     message_fr="Le DMP a refusé les métadonnées.", now=dt.datetime.now(dt.UTC))
    _, page = await signed_in.get(f"/documents/{job.id}")
    assert "Motif du refus" in page and "Le DMP a refusé les métadonnées." in page
    page = await press(signed_in, job.id, "renvoyer")
    assert "il repart dans la file d'envoi" in page
    assert state_of(store, job.id) is JobState.QUEUED
    assert woken.count == 1


async def test_a_deferred_document_can_be_retried_now(
        signed_in: Visitor, store: SqliteStore, woken: Woken) -> None:
    job = queue(store, "plus-tard")
    now = dt.datetime.now(dt.UTC)
    store.transition(job.id, JobState.ACTIVE, code="CLAIMED", message_fr="Pris en charge.",
                     now=now, lease=dt.timedelta(minutes=1))
    store.transition(job.id, JobState.DEFERRED, code="XDSRegistryBusy",
                     message_fr="Le DMP est occupé.", now=now,
                     next_attempt_at=now + dt.timedelta(hours=1))
    _, page = await signed_in.get(f"/documents/{job.id}")
    assert "Prochain essai automatique" in page
    page = await press(signed_in, job.id, "reessayer")
    assert "nouvel essai demandé par l'utilisateur" in page
    assert state_of(store, job.id) is JobState.QUEUED
    assert woken.count == 1
    assert store.claim(dt.datetime.now(dt.UTC), dt.timedelta(minutes=1)) is not None


async def test_an_action_the_state_no_longer_allows_changes_nothing(
        signed_in: Visitor, store: SqliteStore, woken: Woken, audit: AuditTrail) -> None:
    job = queue(store, "deja-parti")
    csrf = await signed_in.csrf(f"/documents/{job.id}")
    for action in ("liberer", "confirmer", "annuler", "renvoyer", "reessayer"):
        _, page = await signed_in.post(f"/documents/{job.id}/{action}", {"csrf": csrf})
        assert "rien à faire" in page, action
    assert state_of(store, job.id) is JobState.QUEUED
    assert [e.code for e in store.events(job.id)] == ["RECEIVED"]
    assert woken.count == 0
    response, _ = await signed_in.post(f"/documents/{job.id}/supprimer", {"csrf": csrf})
    assert response.status == 404
    refusals = [(r.action.value, r.job_id, r.outcome) for r in audit.records()]
    assert refusals == [("liberation", job.id, "NOT_HELD"), ("liberation", job.id, "NOT_HELD"),
                        ("annulation", job.id, "NOT_HELD"), ("renvoi", job.id, "NOT_DEAD"),
                        ("renvoi", job.id, "NOT_DEFERRED")]


def held_by_opposition(store: SqliteStore) -> int:
    job = queue(store, "oppose")
    store.transition(job.id, JobState.HELD, code="PATIENT_OPPOSED",
                     message_fr="Le patient s'est opposé.", now=dt.datetime.now(dt.UTC))
    return job.id


async def test_a_release_from_the_dashboard_is_recorded_in_the_audit_journal(
        signed_in: Visitor, store: SqliteStore, audit: AuditTrail) -> None:
    job_id = held_by_opposition(store)
    before = dt.datetime.now(dt.UTC)
    page = await press(signed_in, job_id, "liberer")
    assert "libéré par l'utilisateur" in page
    [record] = audit.records()
    assert record.actor == "tableau-de-bord" and record.action is AuditAction.LIBERATION
    assert record.job_id == job_id and record.outcome == "ok"
    assert "held → queued (RELEASED_BY_USER)" in record.detail
    assert before - dt.timedelta(seconds=1) <= record.at <= dt.datetime.now(dt.UTC)
    assert audit.verify().ok


async def test_an_action_the_journal_cannot_record_stands_and_the_user_is_told(
        signed_in: Visitor, store: SqliteStore, audit: AuditTrail, woken: Woken) -> None:
    job_id = held_by_opposition(store)
    audit.directory.parent.mkdir(parents=True, exist_ok=True)
    audit.directory.write_text("un fichier à la place du dossier du journal", encoding="utf-8")
    page = await press(signed_in, job_id, "liberer")
    assert "libéré par l'utilisateur" in page
    assert "l'action n'a pas pu être inscrite au journal d'audit" in page
    assert 'class="alerte erreur"' in page
    assert state_of(store, job_id) is JobState.QUEUED
    assert woken.count == 1


async def test_the_list_filters_by_state_type_channel_and_date(
        signed_in: Visitor, store: SqliteStore) -> None:
    old = queue(store, "ancien", received_at=dt.datetime(2026, 1, 10, 9, tzinfo=dt.UTC))
    by_http = queue(store, "api", canary_sidecar(), channel="http")
    held = queue(store, "retenu")
    store.transition(held.id, JobState.HELD, code="PATIENT_OPPOSED",
                     message_fr="Le patient s'est opposé.", now=dt.datetime.now(dt.UTC))

    def shown(page: str) -> set[int]:
        return {int(n) for n in re.findall(r'href="/documents/([0-9]+)"', page)}

    _, page = await signed_in.get("/documents")
    assert shown(page) == {old.id, by_http.id, held.id}
    _, page = await signed_in.get("/documents?etat=held")
    assert shown(page) == {held.id}
    _, page = await signed_in.get("/documents?canal=http")
    assert shown(page) == {by_http.id} and CANARY_NAME in page
    _, page = await signed_in.get("/documents?du=2026-01-01&au=2026-01-31")
    assert shown(page) == {old.id}
    _, page = await signed_in.get("/documents?type=11506-3&du=2026-02-01")
    assert shown(page) == {by_http.id, held.id}
    _, page = await signed_in.get("/documents?type=34133-9")
    assert shown(page) == set() and "Aucun document ne correspond" in page
    _, page = await signed_in.get("/documents?du=pas-une-date&etat=inconnu")
    assert shown(page) == {old.id, by_http.id, held.id}


async def test_an_unknown_document_is_a_french_404(signed_in: Visitor) -> None:
    response, page = await signed_in.get("/documents/999")
    assert response.status == 404 and "Aucun document n° 999" in page
