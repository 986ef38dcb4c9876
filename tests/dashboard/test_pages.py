"""Accueil, Matrice, Patients and Rapport: what each page tells the practice."""

from __future__ import annotations

import datetime as dt

import aiohttp

from bridge.jobs import JobState
from connectors.sqlite_patients import SqlitePatientRegistry
from connectors.sqlite_store import SqliteStore
from service.config import BridgeConfig
from service.matrix_loading import matrix_from_config
from service.sample_pdf import make_pdf
from tests.dashboard.conftest import CANARY_INS, CANARY_NAME, Visitor, canary_sidecar, queue
from tests.dashboard.panels import FixedAlerts, disk_alert
from tests.factories import make_sidecar_dict


def vaccination(day: dt.datetime) -> dict[str, object]:
    sidecar = make_sidecar_dict()
    sidecar["document"].update(kind="Note de vaccination", date=day.isoformat())
    return sidecar


def finish(store: SqliteStore, job_id: int, state: JobState) -> None:
    now = dt.datetime.now(dt.UTC)
    store.transition(job_id, JobState.ACTIVE, code="CLAIMED", message_fr="Pris en charge.",
                     now=now, lease=dt.timedelta(minutes=1))
    store.transition(job_id, state, code="TEST", message_fr="Fin du test.", now=now,
                     next_attempt_at=now + dt.timedelta(hours=1)
                     if state is JobState.DEFERRED else None)


async def test_home_counts_each_state_checks_conservation_and_shows_alerts_card_certificates(
        signed_in: Visitor, store: SqliteStore, alerts: FixedAlerts) -> None:
    first, second, third = (queue(store, name) for name in ("un", "deux", "trois"))
    finish(store, first.id, JobState.DONE)
    store.transition(second.id, JobState.HELD, code="PATIENT_OPPOSED", message_fr="Opposé.",
                     now=dt.datetime.now(dt.UTC))
    alerts.alerts.append(disk_alert())
    _, page = await signed_in.get("/")
    assert ("en attente d'une action</a></td><td><span class=\"nombre\">1</span></td>"
            "<td><span class=\"urgent\">à traiter") in page
    assert ("en attente d'envoi</a></td><td><span class=\"nombre\">1</span></td>"
            "<td><span class=\"urgent\"></span>") in page
    assert "Conservation vérifiée : 3 document(s) reçu(s)" in page
    assert f'href="/documents/{first.id}">n° {first.id}' in page  # the last success
    assert "Espace disque faible" in page and "critique" in page
    assert "Hélène SOIGNANTE (CPS) — code PIN à saisir" in page
    assert "signature (ORG SIGN)" in page and "valide" in page
    assert store.get(third.id) is not None


async def test_home_says_when_nothing_was_sent_yet_and_no_alert_is_open(
        signed_in: Visitor) -> None:
    _, page = await signed_in.get("/")
    assert "Aucun document n'a encore été enregistré dans le DMP." in page
    assert "Aucune alerte en cours." in page
    assert "Conservation vérifiée : 0 document(s)" in page


async def test_the_matrix_page_shows_the_active_matrix_and_its_origin(
        signed_in: Visitor, config: BridgeConfig) -> None:
    matrix = matrix_from_config(config)
    _, page = await signed_in.get("/matrice")
    assert f"version {matrix.version}" in page
    assert f"couches : {', '.join(matrix.layers)} ; {len(matrix.rows)} lignes." in page
    assert "IDE-02" in page and "11506-3" in page and "bretagne.toml" in page
    assert "Ségur (automatique)" in page


async def test_an_uploaded_pair_is_previewed_and_nothing_is_sent(
        signed_in: Visitor, store: SqliteStore) -> None:
    import json

    csrf = await signed_in.csrf("/matrice")
    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    form.add_field("fichiers", make_pdf(["Soins"]), filename="Dupont soins.pdf",
                   content_type="application/pdf")
    form.add_field("fichiers", json.dumps(canary_sidecar()).encode(), filename="autre-nom.json",
                   content_type="application/json")
    _, page = await signed_in.post("/matrice/apercu", form)
    assert "Verdict : envoyé." in page
    assert "typeCode            11506-3" in page and CANARY_INS in page
    assert "Aperçu seulement : rien n'a été envoyé." in page
    assert store.received() == 0

    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    form.add_field("fichiers", make_pdf(["Seul"]), filename="seul.pdf",
                   content_type="application/pdf")
    _, page = await signed_in.post("/matrice/apercu", form)
    assert "envoyez aussi sa fiche JSON" in page


async def test_patients_show_oppositions_and_the_consent_s_twelve_months(
        signed_in: Visitor, store: SqliteStore, config: BridgeConfig) -> None:
    queue(store, "canari", canary_sidecar())
    queue(store, "pat-trois")
    today = dt.date.today()
    with SqlitePatientRegistry(config.store_path) as registry:
        registry.record(CANARY_INS, now=dt.datetime.now(dt.UTC), feeding_opposition=True)
        registry.record("279035121518989", now=dt.datetime.now(dt.UTC),
                        consultation_consent_at=today - dt.timedelta(days=400))
        registry.record("185077512345608", now=dt.datetime.now(dt.UTC),
                        consultation_consent_at=today - dt.timedelta(days=350))
    _, page = await signed_in.get("/patients")
    assert CANARY_NAME in page and "OUI, depuis le" in page
    assert "expiré le" in page and "redemandez-le au patient" in page
    assert "(bientôt) : pensez à le renouveler" in page
    assert "<td>PAT-TROIS DOMINIQUE</td><td>279035121518989</td>" in page
    assert "<td>—</td><td>185077512345608</td>" in page  # no document of theirs any more


async def test_the_segur_report_counts_eligible_and_fed_per_month_and_exports_csv(
        signed_in: Visitor, store: SqliteStore) -> None:
    november = dt.datetime(2026, 11, 5, 10, tzinfo=dt.UTC)
    jobs = [queue(store, f"vaccin-{n}", vaccination(november), received_at=november)
            for n in range(3)]
    queue(store, "soins", received_at=november)  # not a Ségur automatic document
    finish(store, jobs[0].id, JobState.DONE)
    finish(store, jobs[1].id, JobState.DONE)
    _, page = await signed_in.get("/rapport")
    row = " ".join(page.split())
    assert "2026-11" in row and "87273-9 — Note de vaccination" in row
    assert "<td>3</td><td>2</td><td>67%</td>" in row and "non atteint" in row
    response, text = await signed_in.get("/rapport.csv")
    assert response.headers["Content-Disposition"] == 'attachment; filename="rapport-segur.csv"'
    assert response.content_type == "text/csv"
    lines = text.lstrip("\ufeff").splitlines()
    assert lines[0] == "mois;type;libellé;éligibles;alimentés;taux;objectif 90 % atteint"
    assert lines[1] == "2026-11;87273-9;Note de vaccination;3;2;67%;non"
