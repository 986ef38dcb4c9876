"""Journal d'audit: the page says first whether the sealed chain is intact (✔ with the number of
records) or where it was tampered with (✘, the line and what was found), then lists the
records, newest first, 100 a page, filtered by action and by document number; patients appear
only as their pseudonym. A document's page lists its own lines of the journal."""

from __future__ import annotations

import datetime as dt
import json
import re

from bridge.audit import AuditAction
from bridge.jobs import Job, JobState
from connectors.sqlite_store import SqliteStore
from service.audit_trail import AuditTrail
from service.dashboard import DashboardServer
from tests.dashboard.conftest import (
    CANARY_GIVEN,
    CANARY_INS,
    CANARY_NAME,
    Visitor,
    canary_sidecar,
    queue,
)
from tests.dashboard.test_privacy import concrete_paths

WINTER = dt.datetime(2026, 1, 10, 8, 0, tzinfo=dt.UTC)  # 09:00 in Paris (UTC+1)
SUMMER = dt.datetime(2026, 7, 14, 8, 30, tzinfo=dt.UTC)  # 10:30 in Paris (UTC+2)
RPPS = "10101010101"
AUDIT_TABLE = re.compile(r'<table class="audit">(.*?)</table>', re.S)


def rows(page: str) -> list[list[str]]:
    """The audit table's lines as a person reads them: one list of cell texts per line."""
    found = AUDIT_TABLE.search(page)
    if found is None:
        return []
    body = found.group(1).split("<tbody>", 1)[1]
    return [[" ".join(re.sub(r"<[^>]+>", " ", cell).split())
             for cell in re.findall(r"<td>(.*?)</td>", line, re.S)]
            for line in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def column(page: str, name: str) -> list[str]:
    index = ("Ligne", "Date", "Acteur", "Action", "Document", "Patient", "Résultat",
             "Détail").index(name)
    return [row[index] for row in rows(page)]


def lot(store: SqliteStore, jobs: list[Job], submission: str) -> None:
    """Package `jobs` as one submission set, as the dispatcher does before sending a lot."""
    for n, job in enumerate(jobs, start=1):
        store.save_package(job.id, f"{submission}.{n}", submission, b"<paquet signe>")


def send_and_answer(audit: AuditTrail, jobs: list[Job], submission: str, at: dt.datetime,
                    ins: str = CANARY_INS) -> None:
    """One attempt for the lot, then each document's outcome, as the dispatcher writes them."""
    audit.attempt([job.id for job in jobs], submission, RPPS, ins, "ITI-41", at=at)
    for n, job in enumerate(jobs, start=1):
        audit.outcome(job.id, JobState.DONE, "REGISTERED",
                      document_unique_id=f"{submission}.{n}", at=at + dt.timedelta(seconds=n))


async def test_the_verdict_comes_first_then_the_records_newest_first_in_paris_time(
        signed_in: Visitor, store: SqliteStore, audit: AuditTrail) -> None:
    canary = queue(store, "canari", canary_sidecar())
    lot(store, [canary], "1.2.250.1.999.7.1")
    send_and_answer(audit, [canary], "1.2.250.1.999.7.1", WINTER)
    audit.operator_action("operateur:marie", AuditAction.RENVOI, canary.id, "NOT_DEAD",
                          detail="renvoyer : refusé, document done", at=SUMMER)

    _, page = await signed_in.get("/audit")
    verdict = page.index("✔ Chaînage intact : 3 enregistrement(s) vérifié(s)")
    assert verdict < page.index('<table class="audit">')
    assert column(page, "Ligne") == ["3", "2", "1"]
    assert column(page, "Date") == ["14/07/2026 10:30:00", "10/01/2026 09:00:01",
                                    "10/01/2026 09:00:00"]
    assert column(page, "Acteur") == ["opérateur « marie »", "service d'envoi",
                                      "service d'envoi"]
    assert column(page, "Action") == ["renvoi par une personne", "résultat de l'envoi",
                                      "envoi au DMP"]
    assert column(page, "Document") == [f"n° {canary.id}", f"n° {canary.id} 1.2.250.1.999.7.1.1",
                                        f"n° {canary.id} 1.2.250.1.999.7.1"]
    assert column(page, "Résultat") == ["NOT_DEAD", "réussi", "réussi"]
    assert column(page, "Détail") == ["renvoyer : refusé, document done",
                                      "état done (REGISTERED)",
                                      f"ITI-41 ; auteur RPPS {RPPS} ; 1 document"]
    assert f'href="/documents/{canary.id}"' in page
    assert '<a href="/audit" aria-current="page">Journal d\'audit</a>' in page


async def test_a_patient_appears_only_as_the_pseudonym_stored(
        signed_in: Visitor, store: SqliteStore, audit: AuditTrail) -> None:
    canary = queue(store, "canari", canary_sidecar())
    lot(store, [canary], "1.2.250.1.999.7.2")
    send_and_answer(audit, [canary], "1.2.250.1.999.7.2", WINTER)
    [attempt] = [r for r in audit.records() if r.action is AuditAction.ENVOI]
    assert attempt.patient_pseudonym is not None

    for path in ("/audit", f"/audit?document={canary.id}", "/audit?action=envoi"):
        _, page = await signed_in.get(path)
        assert attempt.patient_pseudonym in page, path
        for canary_text in (CANARY_NAME, CANARY_GIVEN, CANARY_INS, "30/06/1985"):
            assert canary_text.lower() not in page.lower(), (path, canary_text)
        assert not re.search(r"\b[0-9]{13,}\b", page), path  # nothing shaped like an INS
        assert "//" not in page.replace("<!DOCTYPE html>", ""), path  # nothing from elsewhere
    _, document_page = await signed_in.get(f"/documents/{canary.id}")
    assert CANARY_NAME in document_page  # the same visitor may see the patient elsewhere


async def test_an_edited_record_shows_a_cross_with_its_line_and_what_was_found(
        signed_in: Visitor, store: SqliteStore, audit: AuditTrail) -> None:
    jobs = [queue(store, f"doc-{n}") for n in range(3)]
    for n, job in enumerate(jobs, start=1):
        send_and_answer(audit, [job], f"1.2.250.1.999.8.{n}", WINTER + dt.timedelta(hours=n))
    content = audit.journal_path.read_bytes().splitlines(keepends=True)
    record = json.loads(content[3])
    record["outcome"] = "XDSRegistryError"  # someone rewrites a result
    content[3] = (json.dumps(record, sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False) + "\n").encode()
    audit.journal_path.write_bytes(b"".join(content))

    _, page = await signed_in.get("/audit")
    assert "✘ Journal d'audit ALTÉRÉ (ligne 4)." in page
    assert "l'enregistrement de la ligne 4 a été modifié" in page
    assert "Constat : un enregistrement a été MODIFIÉ." in page and "AUDIT_EDITED" in page
    assert "gardez une copie du fichier" in page and str(audit.journal_path) in page
    assert "✔" not in page
    assert column(page, "Ligne")[2] == "4 ✘"  # the line is marked in the list as well
    assert "XDSRegistryError" in column(page, "Résultat")


async def test_a_deleted_record_is_named_with_its_line(
        signed_in: Visitor, store: SqliteStore, audit: AuditTrail) -> None:
    jobs = [queue(store, f"doc-{n}") for n in range(3)]
    for n, job in enumerate(jobs, start=1):
        send_and_answer(audit, [job], f"1.2.250.1.999.8.{n}", WINTER + dt.timedelta(hours=n))
    content = audit.journal_path.read_bytes().splitlines(keepends=True)
    del content[2]
    audit.journal_path.write_bytes(b"".join(content))

    _, page = await signed_in.get("/audit")
    assert "✘ Journal d'audit ALTÉRÉ (ligne 3)." in page
    assert "enregistrement n°3 attendu, n°4 trouvé" in page
    assert "SUPPRIMÉ ou DÉPLACÉ" in page and "AUDIT_SEQUENCE" in page


async def test_an_unreadable_line_is_named_and_the_page_still_answers(
        signed_in: Visitor, store: SqliteStore, audit: AuditTrail) -> None:
    job = queue(store, "doc")
    send_and_answer(audit, [job], "1.2.250.1.999.8.1", WINTER)
    audit.operator_action("operateur:marie", AuditAction.RENVOI, job.id, "NOT_DEAD", at=SUMMER)
    content = audit.journal_path.read_bytes().splitlines(keepends=True)
    content[1] = b"{pas du json}\n"
    audit.journal_path.write_bytes(b"".join(content))

    response, page = await signed_in.get("/audit")
    assert response.status == 200
    assert "✘ Journal d'audit ALTÉRÉ (ligne 2)." in page and "illisible" in page
    assert "Les enregistrements ne peuvent pas être affichés" in page
    assert rows(page) == []


async def test_a_journal_folder_that_cannot_be_reached_is_said_not_ticked(
        signed_in: Visitor, audit: AuditTrail) -> None:
    audit.directory.parent.mkdir(parents=True, exist_ok=True)
    audit.directory.write_text("un fichier à la place du dossier du journal", encoding="utf-8")
    response, page = await signed_in.get("/audit")
    assert response.status == 200
    assert "✘ Le journal d'audit" in page and "ne peut pas être lu" in page
    assert "✔" not in page


async def test_filters_keep_one_action_or_one_document_and_its_lot(
        signed_in: Visitor, store: SqliteStore, audit: AuditTrail) -> None:
    first, second, alone = (queue(store, name) for name in ("premier", "second", "seul"))
    lot(store, [first, second], "1.2.250.1.999.9.1")
    lot(store, [alone], "1.2.250.1.999.9.2")
    send_and_answer(audit, [first, second], "1.2.250.1.999.9.1", WINTER)
    send_and_answer(audit, [alone], "1.2.250.1.999.9.2", SUMMER)
    audit.operator_action("operateur:marie", AuditAction.LIBERATION, alone.id, "NOT_HELD",
                          document_unique_id="1.2.250.1.999.9.2.1", at=SUMMER)

    _, page = await signed_in.get("/audit?action=envoi")
    assert column(page, "Action") == ["envoi au DMP", "envoi au DMP"]
    assert '<option value="envoi" selected>' in page
    _, page = await signed_in.get(f"/audit?document={second.id}")
    # The lot's attempt (it names the first job, and the submission set both share) counts.
    assert column(page, "Ligne") == ["3", "1"]
    assert column(page, "Document") == [f"n° {second.id} 1.2.250.1.999.9.1.2",
                                        f"n° {first.id} 1.2.250.1.999.9.1"]
    _, page = await signed_in.get(f"/audit?document={alone.id}&action=liberation")
    assert column(page, "Ligne") == ["6"] and column(page, "Résultat") == ["NOT_HELD"]
    _, page = await signed_in.get("/audit?document=999&action=resultat")
    assert rows(page) == [] and "Aucun enregistrement ne correspond." in page
    assert "✔ Chaînage intact : 6 enregistrement(s)" in page  # the verdict is for the whole

    _, page = await signed_in.get("/audit?document=douze&action=inconnue")
    assert "Numéro de document « douze » illisible" in page
    assert len(rows(page)) == 6


async def test_records_come_a_hundred_a_page_newest_first(
        signed_in: Visitor, audit: AuditTrail) -> None:
    for n in range(205):
        action = AuditAction.RENVOI if n % 2 else AuditAction.LIBERATION
        audit.operator_action("operateur:marie", action, n + 1, "ok",
                              at=WINTER + dt.timedelta(minutes=n))
    _, page = await signed_in.get("/audit")
    lines = column(page, "Ligne")
    assert len(lines) == 100 and lines[0] == "205" and lines[-1] == "106"
    assert "Enregistrements 1 à 100 sur 205 (page 1 sur 3)." in page
    assert 'href="/audit?page=2"' in page and "plus récents" not in page

    _, page = await signed_in.get("/audit?page=3")
    assert column(page, "Ligne") == [str(n) for n in range(5, 0, -1)]
    assert 'href="/audit?page=2">← plus récents' in page and "plus anciens" not in page
    _, page = await signed_in.get("/audit?page=40")  # past the end: the last page
    assert "(page 3 sur 3)" in page

    _, page = await signed_in.get("/audit?action=renvoi&page=2")
    assert set(column(page, "Action")) == {"renvoi par une personne"}
    assert len(rows(page)) == 2  # 102 replays: 100 + 2
    assert 'href="/audit?action=renvoi">← plus récents' in page


async def test_a_document_page_lists_its_own_lines_of_the_journal(
        signed_in: Visitor, store: SqliteStore, audit: AuditTrail) -> None:
    first, second = queue(store, "premier"), queue(store, "second")
    lot(store, [first, second], "1.2.250.1.999.9.1")
    send_and_answer(audit, [first, second], "1.2.250.1.999.9.1", WINTER)
    held = queue(store, "retenu")
    store.transition(held.id, JobState.HELD, code="PATIENT_OPPOSED",
                     message_fr="Le patient s'est opposé.", now=dt.datetime.now(dt.UTC))
    csrf = await signed_in.csrf(f"/documents/{held.id}")
    await signed_in.post(f"/documents/{held.id}/liberer", {"csrf": csrf})

    _, page = await signed_in.get(f"/documents/{second.id}")
    assert "<h2>Journal d'audit</h2>" in page
    assert column(page, "Ligne") == ["1", "3"]  # oldest first, like its history
    assert column(page, "Action") == ["envoi au DMP", "résultat de l'envoi"]
    _, page = await signed_in.get(f"/documents/{held.id}")
    assert column(page, "Acteur") == ["tableau de bord"]
    assert column(page, "Action") == ["libération par une personne"]
    assert column(page, "Détail") == ["liberer : held → queued (RELEASED_BY_USER)"]
    other = queue(store, "sans-trace")
    _, page = await signed_in.get(f"/documents/{other.id}")
    assert "Aucune ligne du journal d'audit pour ce document." in page


async def test_the_journal_page_is_behind_the_sign_in_and_in_the_privacy_scan(
        dashboard: DashboardServer, visitor: Visitor, signed_in_other: Visitor) -> None:
    assert ("GET", "/audit") in concrete_paths(dashboard.app, 1)
    response, _ = await visitor.get("/audit", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/connexion"
    _, page = await signed_in_other.get("/")
    assert '<a href="/audit">Journal d\'audit</a>' in page
    _, page = await signed_in_other.get("/audit")
    assert "✔ Journal d'audit vide : rien n'y a encore été inscrit." in page
