"""POST /api/v1/documents: accepted only after the commit, refused in French otherwise."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp

from bridge.jobs import Intake, Job, JobState
from bridge.pdf import check_pdf
from bridge.sidecar import parse_sidecar
from connectors.http_api import HttpApi
from connectors.sqlite_store import SqliteStore
from mappings.matrix import Matrix
from tests.factories import make_sidecar_dict
from tests.http_api.conftest import (
    AUTH,
    PDF,
    assert_problem,
    json_body,
    multipart,
    running,
    sidecar_bytes,
    store_enqueue,
    url,
)


async def test_202_only_after_the_commit(store: SqliteStore, matrix: Matrix,
                                         session: aiohttp.ClientSession) -> None:
    gate = asyncio.Event()
    committed: list[int] = []
    enqueue = store_enqueue(store)

    async def slow_enqueue(intake: Intake) -> tuple[Job, bool]:
        await gate.wait()  # the commit is slow (fsync)
        job, created = await enqueue(intake)
        committed.append(job.id)
        return job, created

    async with running(store, matrix, enqueue=slow_enqueue) as api:
        post = asyncio.create_task(session.post(url(api), data=multipart(), headers=AUTH))
        await asyncio.sleep(0.3)
        assert not post.done()  # no answer while the commit has not returned
        assert store.received() == 0
        gate.set()
        async with await post as response:
            assert response.status == 202
            body = await response.json()
            # The job exists, durably, when the answer arrives.
            assert committed == [body["id"]]
            job = store.get(body["id"])
            assert job is not None and job.channel == "http"
    assert body == {"id": job.id, "etat": "queued", "libelle": "en attente d'envoi",
                    "lien": f"/api/v1/documents/{job.id}"}
    assert response.headers["Location"] == f"/api/v1/documents/{job.id}"
    assert store.payload(job.id) == PDF


async def test_multipart_and_json_store_identical_bytes(
        api: HttpApi, store: SqliteStore, session: aiohttp.ClientSession) -> None:
    async with session.post(url(api), data=multipart(),
                            headers={**AUTH, "Idempotency-Key": "a"}) as first:
        assert first.status == 202
        one = (await first.json())["id"]
    async with session.post(url(api), json=json_body(),
                            headers={**AUTH, "Idempotency-Key": "b"}) as second:
        assert second.status == 202
        two = (await second.json())["id"]
    assert one != two
    assert store.payload(one) == store.payload(two) == PDF
    assert store.metadata(one) == store.metadata(two)
    # The metadata the queue holds is the sidecar, readable as the folder channel's.
    request = parse_sidecar(store.metadata(one), file_name="x")
    assert request.kind == make_sidecar_dict()["document"]["kind"]
    check_pdf(store.payload(two), file_name="x")


async def test_without_a_key_the_same_content_is_one_job_whatever_the_encoding(
        api: HttpApi, store: SqliteStore, session: aiohttp.ClientSession) -> None:
    async with session.post(url(api), data=multipart(), headers=AUTH) as first:
        assert first.status == 202
        body = await first.json()
    async with session.post(url(api), json=json_body(), headers=AUTH) as again:
        assert again.status == 202
        assert await again.json() == body
        assert again.headers["Idempotent-Replayed"] == "true"
    assert store.received() == 1


async def test_idempotency_key_replay_gives_the_same_answer_and_no_second_job(
        api: HttpApi, store: SqliteStore, session: aiohttp.ClientSession) -> None:
    headers = {**AUTH, "Idempotency-Key": "4f1c2a9e-0d3b-4a57-9a51-cabinet-0001"}
    async with session.post(url(api), json=json_body(), headers=headers) as first:
        assert first.status == 202
        body, location = await first.read(), first.headers["Location"]
    for _ in range(2):
        async with session.post(url(api), json=json_body(), headers=headers) as again:
            assert again.status == 202
            assert await again.read() == body
            assert again.headers["Location"] == location
    assert store.received() == 1
    assert [o.duplicate for o in api.outcomes] == [False, True, True]  # type: ignore[attr-defined]


async def test_idempotency_key_reused_for_another_document_is_a_409(
        api: HttpApi, store: SqliteStore, session: aiohttp.ClientSession) -> None:
    headers = {**AUTH, "Idempotency-Key": "cle-1"}
    async with session.post(url(api), json=json_body(), headers=headers) as first:
        assert first.status == 202
    other_pdf = json_body(pdf=PDF.replace(b"Pansement", b"Injection"))
    async with session.post(url(api), json=other_pdf, headers=headers) as response:
        await assert_problem(response, 409, "IDEMPOTENCY_KEY_REUSED")
    other_sidecar = make_sidecar_dict()
    other_sidecar["document"]["title"] = "Autre titre"
    async with session.post(url(api), json=json_body(sidecar=other_sidecar),
                            headers=headers) as response:
        await assert_problem(response, 409, "IDEMPOTENCY_KEY_REUSED")
    assert store.received() == 1


async def test_bad_idempotency_key(api: HttpApi, session: aiohttp.ClientSession) -> None:
    async with session.post(url(api), json=json_body(),
                            headers={**AUTH, "Idempotency-Key": "x" * 300}) as response:
        await assert_problem(response, 400, "IDEMPOTENCY_KEY_INVALID")


async def test_bad_json_body(api: HttpApi, store: SqliteStore,
                             session: aiohttp.ClientSession) -> None:
    async with session.post(url(api), data=b'{"pdf_base64": "JVBER',
                            headers={**AUTH, "Content-Type": "application/json"}) as response:
        body = await assert_problem(response, 400, "HTTP_JSON_INVALID")
    assert "JSON" in body["detail"]
    # A number of more than 4300 digits: Python's JSON parser raises a plain ValueError.
    async with session.post(url(api), data=b'{"pdf_base64": ' + b"9" * 4301 + b"}",
                            headers={**AUTH, "Content-Type": "application/json"}) as response:
        await assert_problem(response, 400, "HTTP_JSON_INVALID")
    async with session.post(url(api), json={"pdf": "x"}, headers=AUTH) as response:
        await assert_problem(response, 400, "HTTP_JSON_SHAPE")
    bad = json_body()
    bad["pdf_base64"] = "ceci n'est pas du base64 !"
    async with session.post(url(api), json=bad, headers=AUTH) as response:
        await assert_problem(response, 400, "HTTP_BASE64_INVALID")
    assert store.received() == 0


async def test_not_a_pdf_gets_the_folder_channel_reason(
        api: HttpApi, session: aiohttp.ClientSession) -> None:
    async with session.post(url(api), data=multipart(pdf=b"GIF89a..."),
                            headers=AUTH) as response:
        body = await assert_problem(response, 400, "PDF_NOT_PDF")
    assert body["detail"] == ("Le fichier « file » n'est pas un PDF (il ne commence pas par "
                              "« %PDF- »). Exportez le document au format PDF.")
    async with session.post(url(api), json=json_body(pdf=b""), headers=AUTH) as response:
        await assert_problem(response, 400, "PDF_EMPTY")


async def test_invalid_sidecar(api: HttpApi, session: aiohttp.ClientSession) -> None:
    sidecar = make_sidecar_dict()
    del sidecar["author"]["rpps"]
    async with session.post(url(api), json=json_body(sidecar=sidecar), headers=AUTH) as response:
        body = await assert_problem(response, 400, "SIDECAR_INVALID")
    assert "« author.rpps » (auteur RPPS) est manquant" in body["detail"]
    async with session.post(url(api), data=multipart(metadata=b"{pas du json"),
                            headers=AUTH) as response:
        body = await assert_problem(response, 400, "SIDECAR_JSON")
    assert body["detail"].startswith("Le fichier « metadata » n'est pas un JSON valide")
    async with session.post(url(api), data=multipart(metadata=b'{"a": ' + b"9" * 4301 + b"}"),
                            headers=AUTH) as response:
        body = await assert_problem(response, 400, "SIDECAR_JSON")
    assert "nombre bien trop long" in body["detail"]
    # Deeper than Python's JSON parser recurses, within the size limit: refused, not a 500.
    async with session.post(url(api), data=multipart(metadata=b"[" * 30_000 + b"]" * 30_000),
                            headers=AUTH) as response:
        body = await assert_problem(response, 400, "SIDECAR_JSON")
    assert "imbriquées bien trop profondément" in body["detail"]


async def test_kind_unknown_to_the_matrix(api: HttpApi, store: SqliteStore,
                                          session: aiohttp.ClientSession) -> None:
    sidecar = make_sidecar_dict()
    sidecar["document"]["kind"] = "recette de cuisine"
    async with session.post(url(api), data=multipart(metadata=sidecar_bytes(sidecar)),
                            headers=AUTH) as response:
        body = await assert_problem(response, 400, "KIND_UNKNOWN")
    assert "n'est pas prévu pour l'auteur" in body["detail"]
    assert store.received() == 0


async def test_multipart_with_a_missing_or_unknown_part(
        api: HttpApi, session: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData()
    form.add_field("file", PDF, filename="a.pdf", content_type="application/pdf")
    async with session.post(url(api), data=form, headers=AUTH) as response:
        body = await assert_problem(response, 400, "HTTP_MULTIPART_INVALID")
    assert "« metadata » manque" in body["detail"]
    form = multipart()
    form.add_field("extra", b"x", filename="x.bin")
    async with session.post(url(api), data=form, headers=AUTH) as response:
        await assert_problem(response, 400, "HTTP_MULTIPART_INVALID")
    headers = {**AUTH, "Content-Type": "multipart/form-data"}  # no boundary
    async with session.post(url(api), data=b"--x\r\n", headers=headers) as response:
        await assert_problem(response, 400, "HTTP_MULTIPART_INVALID")


async def test_unsupported_content_type(api: HttpApi, session: aiohttp.ClientSession) -> None:
    async with session.post(url(api), data=PDF,
                            headers={**AUTH, "Content-Type": "application/pdf"}) as response:
        await assert_problem(response, 415, "HTTP_UNSUPPORTED_MEDIA_TYPE")


async def test_413_beyond_the_body_limit(store: SqliteStore, matrix: Matrix,
                                         session: aiohttp.ClientSession) -> None:
    big = PDF + b"%" + b"0" * 200_000 + b"\n%%EOF\n"
    async with running(store, matrix, max_body_bytes=100_000) as api:
        # Announced by Content-Length, JSON or multipart.
        async with session.post(url(api), json=json_body(pdf=big), headers=AUTH) as response:
            body = await assert_problem(response, 413, "HTTP_BODY_TOO_LARGE")
        assert "97 Ko" in body["detail"]
        async with session.post(url(api), data=multipart(pdf=big), headers=AUTH) as response:
            await assert_problem(response, 413, "HTTP_BODY_TOO_LARGE")

        # Chunked (no Content-Length): counted while reading.
        async def chunks(data: bytes) -> AsyncIterator[bytes]:
            for start in range(0, len(data), 16_384):
                yield data[start:start + 16_384]

        boundary = "frontiere-de-test"
        raw_form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"
                    .encode() + big + f"\r\n--{boundary}--\r\n".encode())
        for payload, kind in (
            (json.dumps(json_body(pdf=big)).encode(), "application/json"),
            (raw_form, f"multipart/form-data; boundary={boundary}"),
        ):
            async with session.post(url(api), data=chunks(payload),
                                    headers={**AUTH, "Content-Type": kind}) as response:
                await assert_problem(response, 413, "HTTP_BODY_TOO_LARGE")
        # Below the limit, the same server accepts.
        async with session.post(url(api), json=json_body(), headers=AUTH) as response:
            assert response.status == 202
    assert store.received() == 1


async def test_store_that_cannot_commit_gives_503_and_no_job(
        store: SqliteStore, matrix: Matrix, session: aiohttp.ClientSession) -> None:
    async def failing(intake: Intake) -> tuple[Job, bool]:
        raise OSError(28, "No space left on device")

    async with (running(store, matrix, enqueue=failing) as api,
                session.post(url(api), json=json_body(), headers=AUTH) as response):
        body = await assert_problem(response, 503, "STORE_UNAVAILABLE")
        assert response.headers["Retry-After"] == "30"
        assert "Location" not in response.headers
    assert "renvoyez" in body["detail"].lower()
    assert store.received() == 0
    assert store.counts()[JobState.QUEUED] == 0
