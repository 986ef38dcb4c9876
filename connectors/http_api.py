"""The local HTTP API: practice software POSTs a PDF and its sidecar; 202 only after the commit.

Life of one `POST /api/v1/documents`:
1. the Host header must name this listener (127.0.0.1, localhost or [::1] with our port): a page
   served from a rebound DNS name reaches 127.0.0.1 but says another Host, and is refused (421);
2. the bearer token (file readable by the service account only) is compared in constant time;
3. the body is read within `max_body_bytes` (413 beyond), decoded (multipart or JSON,
   `connectors.http_api_body`) and judged like a pair of files in the export folder
   (`accept_pair`: PDF, sidecar, kind known to the matrix): a refusal is a 400 problem with the
   folder channel's French reason;
4. the intake is committed through the injected `enqueue`; only when it returned is 202 sent,
   with the job's link. If the process dies before, the client gets no 202 and sends again; the
   idempotency key (its Idempotency-Key header, or the content hash) makes the second commit a
   no-op and the client gets the same answer, without a second job. If the store cannot commit,
   503 + Retry-After: nothing was kept, the client keeps the document and retries.

Slow or stuck clients cannot hold the service (DESIGN.md §6):
- the request line and headers must arrive within `header_timeout` seconds of the connection
  (or of the previous answer on a kept-alive connection), else aiohttp closes the connection
  (its keep-alive timer runs until a request's headers are complete);
- the body must arrive within `body_timeout` seconds of its headers, else 408 with a French
  problem: nothing was read to the end, so nothing is queued; the connection is then closed
  (after aiohttp's lingering read of what still comes, 10 s at most);
- at most `max_uploads` POST bodies are read at once: one more gets 503 + Retry-After at once,
  without its body being read, and nothing is kept;
- header lines and fields stay within aiohttp's bounds (8190 bytes, 128 headers): 400 beyond.

`GET /api/v1/documents/{id}` tells the job's state and timeline, without any patient data.
Logs carry event keys, codes and job ids; never a header value, a name, an INS or content.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from bridge.errors import BridgeError
from bridge.folder_document import accept_pair
from bridge.jobs import Intake, Job, JobEvent, JobState
from bridge.store_port import Store
from connectors import http_api_problems as problems
from connectors.http_api_body import (
    Submission,
    intake_key,
    parse_idempotency_key,
    read_submission,
)
from connectors.http_api_openapi import openapi_document
from connectors.loopback_server import LoopbackServer
from mappings.matrix import Matrix

log = structlog.get_logger("dmp_bridge.http")

# Commits an intake and returns (job, created); must not block the event loop.
EnqueueFn = Callable[[Intake], Awaitable[tuple[Job, bool]]]
# A job and its timeline, or None when unknown; synchronous (called in a worker thread).
LookupFn = Callable[[int], tuple[Job, list[JobEvent]] | None]

MAX_BODY_BYTES = 20 * 1024 * 1024
BODY_TIMEOUT_SECONDS = 60.0
HEADER_TIMEOUT_SECONDS = 30.0
MAX_UPLOADS = 8
BUSY_RETRY_AFTER_SECONDS = 5
# Statuses whose French title http_api_problems does not have yet.
EXTRA_TITLES_FR: Mapping[int, str] = {408: "Délai dépassé"}
OPENAPI_PATH = "/api/openapi.json"
DOCUMENTS_PATH = "/api/v1/documents"
MIN_TOKEN_LENGTH = 32
# A NIR/INS shape in a timeline text (defence in depth: messages are written without patient
# data, but a message built from another channel's file name could carry one).
_NIR = re.compile(r"(?<![0-9])[12378][0-9]{4}(?:[0-9]{2}|2A|2B)[0-9]{6}(?:[0-9]{2})?(?![0-9])")


@dataclass(frozen=True)
class HttpOutcome:
    """What happened to one POST (for the logs, the demo and tests)."""

    accepted: bool
    job: Job | None = None
    duplicate: bool = False
    code: str = ""
    message_fr: str = ""


def store_lookup(store: Store) -> LookupFn:
    """The `lookup` of a store: its job and timeline (call it from a worker thread)."""
    def lookup(job_id: int) -> tuple[Job, list[JobEvent]] | None:
        job = store.get(job_id)
        return None if job is None else (job, store.events(job_id))
    return lookup


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def _masked(text: str) -> str:
    return _NIR.sub("[INS masqué]", text)


def _problem(status: int, code: str, detail_fr: str) -> web.Response:
    """`problems.problem`, for a status whose French title is in EXTRA_TITLES_FR."""
    body = {"type": problems.TYPE_PREFIX + code, "title": EXTRA_TITLES_FR[status],
            "status": status, "detail": detail_fr, "code": code}
    return web.json_response(body, status=status, content_type=problems.PROBLEM_TYPE,
                             dumps=problems.dumps, headers=dict(problems.COMMON_HEADERS))


class HttpApi:
    """aiohttp server on loopback; `await start()`, then `await stop()` (or `run()`)."""

    def __init__(
        self,
        enqueue: EnqueueFn,
        lookup: LookupFn,
        *,
        token: str,
        matrix: Matrix | None,
        labels: Mapping[JobState, str],
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = MAX_BODY_BYTES,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
        header_timeout: float = HEADER_TIMEOUT_SECONDS,
        max_uploads: int = MAX_UPLOADS,
        on_outcome: Callable[[HttpOutcome], None] | None = None,
    ) -> None:
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError("the API token must be at least 32 characters long")
        if body_timeout <= 0 or header_timeout <= 0 or max_uploads < 1:
            raise ValueError("timeouts must be positive and max_uploads at least 1")
        missing = set(JobState) - set(labels)
        if missing:
            raise ValueError(f"no French label for {sorted(missing)}")
        self._enqueue = enqueue
        self._lookup = lookup
        self._token = token.encode("utf-8")
        self._matrix = matrix  # when given, a document kind it does not know is refused
        self._labels = dict(labels)
        self.host = host
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.header_timeout = header_timeout
        self.max_uploads = max_uploads
        self._uploads = 0
        self._on_outcome = on_outcome
        # aiohttp's keep-alive timer also runs from the connection until the first request's
        # headers are complete (then between requests): it is the header deadline.
        self._server = LoopbackServer(host, port, keepalive_timeout=header_timeout)
        self._allowed_hosts: frozenset[str] = frozenset()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self._server.port

    @property
    def started(self) -> bool:
        """Whether it listens."""
        return self._server.started

    @property
    def uploads_in_progress(self) -> int:
        """POST bodies being read or judged right now (at most `max_uploads`)."""
        return self._uploads

    def _app(self) -> web.Application:
        app = web.Application(
            # aiohttp's own bound on request.read(); the body readers check it again (413).
            client_max_size=self.max_body_bytes,
            middlewares=[self._errors, self._host_check, self._auth],
        )
        app.router.add_get(OPENAPI_PATH, self._openapi, allow_head=False)
        app.router.add_post(DOCUMENTS_PATH, self._post_document)
        app.router.add_get(DOCUMENTS_PATH + r"/{job_id:[0-9]{1,18}}", self._get_document,
                           allow_head=False)
        return app

    async def start(self) -> None:
        await self._server.start(self._app())
        port = self.port
        self._allowed_hosts = frozenset({
            f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}",
            f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}",
        })
        log.info("http_listening", host=self.host, port=port)

    async def stop(self) -> None:
        await self._server.stop()

    async def run(self) -> None:
        """Serve until cancelled."""
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.stop()

    # -- middlewares (outermost first) -------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        """Every answer is JSON with the common headers; aiohttp's own errors become problems."""
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            response = problems.not_found()
        except web.HTTPMethodNotAllowed:
            response = problems.method_not_allowed()
        except web.HTTPRequestEntityTooLarge:
            response = problems.rejection(problems.too_large(self.max_body_bytes))
        except web.HTTPException as exc:
            response = problems.problem(exc.status, "HTTP_ERROR", "Requête refusée.")
        except Exception as exc:  # a bug must not leak a traceback (or content) to the client
            log.error("http_request_failed", error=type(exc).__name__)
            response = problems.internal_error()
        for name, value in problems.COMMON_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @web.middleware
    async def _host_check(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        """DNS rebinding: the Host must name this listener, whatever the path."""
        host = request.headers.get("Host", "").strip().lower()
        if host not in self._allowed_hosts:
            log.warning("http_host_refused")
            return problems.host_refused()
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if request.path == OPENAPI_PATH:
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        supplied = given.strip().encode("utf-8", errors="replace")
        # Constant time whatever the token given (only its length may show).
        valid = hmac.compare_digest(supplied, self._token)
        if scheme.lower() != "bearer" or not valid:
            log.warning("http_unauthorized")
            return problems.unauthorized()
        return await handler(request)

    # -- handlers ----------------------------------------------------------------------------
    async def _openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(self.port), dumps=problems.dumps)

    async def _post_document(self, request: web.Request) -> web.Response:
        if self._uploads >= self.max_uploads:
            log.warning("http_uploads_full", limit=self.max_uploads)
            self._emit(HttpOutcome(False, code="HTTP_TOO_MANY_UPLOADS"))
            return self._busy()
        self._uploads += 1
        try:
            return await self._receive(request)
        finally:
            self._uploads -= 1

    async def _receive(self, request: web.Request) -> web.Response:
        try:
            header_key = parse_idempotency_key(request.headers.get("Idempotency-Key"))
            try:
                async with asyncio.timeout(self.body_timeout):
                    submission = await read_submission(request, self.max_body_bytes)
            except TimeoutError:
                log.warning("http_body_timeout", limit_seconds=self.body_timeout)
                self._emit(HttpOutcome(False, code="HTTP_BODY_TIMEOUT"))
                return self._body_timeout()
            # In a worker thread, as the MLLP channel parses: hashing and checking a 20 MiB
            # document must not stall the other connections.
            content, payload_sha256 = await asyncio.to_thread(self._judge, submission)
        except BridgeError as exc:
            log.warning("http_document_rejected", reason_code=exc.code, reason_event=exc.event)
            self._emit(HttpOutcome(False, code=exc.code, message_fr=exc.message_fr))
            return problems.rejection(exc)
        intake = Intake(
            channel="http",
            # The content hash, not a client file name (which may name the patient): it also
            # tells a replay (same key, same content) from a reused key (409).
            source_ref=f"http:{content}",
            idempotency_key=intake_key(header_key, content),
            payload=submission.payload,
            metadata=submission.metadata,
            received_at=dt.datetime.now(dt.UTC),
            payload_sha256=payload_sha256,  # hashed by _judge, in the worker thread
        )
        try:
            job, created = await self._enqueue(intake)
        except Exception as exc:  # not committed: nothing kept, the client must send again
            log.error("http_enqueue_failed", error=type(exc).__name__)
            self._emit(HttpOutcome(False, code="STORE_UNAVAILABLE"))
            return problems.store_unavailable()
        # Committed (or already known): only now may the client be told it was accepted.
        if not created and job.source_ref != intake.source_ref:
            log.warning("http_idempotency_key_reused", job_id=job.id)
            self._emit(HttpOutcome(False, job=job, code="IDEMPOTENCY_KEY_REUSED"))
            return problems.key_reused()
        log.info("http_document_queued", job_id=job.id, duplicate=not created)
        self._emit(HttpOutcome(True, job=job, duplicate=not created))
        link = f"{DOCUMENTS_PATH}/{job.id}"
        body = {"id": job.id, "etat": job.state.value, "libelle": self._labels[job.state],
                "lien": link}
        headers = {"Location": link, **({} if created else {"Idempotent-Replayed": "true"})}
        return web.json_response(body, status=202, headers=headers, dumps=problems.dumps)

    def _body_timeout(self) -> web.Response:
        """408: the body did not arrive in time; nothing was queued; no keep-alive after it."""
        seconds = f"{self.body_timeout:g}"
        response = _problem(
            408, "HTTP_BODY_TIMEOUT",
            f"Le corps de la requête n'est pas arrivé en entier en {seconds} secondes : rien "
            "n'a été enregistré. Vérifiez la connexion du logiciel au poste, puis renvoyez le "
            "document.")
        response.force_close()
        return response

    def _busy(self) -> web.Response:
        """503 + Retry-After: too many documents being received at once; nothing was kept."""
        return problems.problem(
            503, "HTTP_TOO_MANY_UPLOADS",
            f"dmp-bridge reçoit déjà {self.max_uploads} documents en même temps : celui-ci n'a "
            f"pas été lu et rien n'a été enregistré. Renvoyez-le dans "
            f"{BUSY_RETRY_AFTER_SECONDS} secondes (en-tête Retry-After).",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)})

    def _judge(self, submission: Submission) -> tuple[str, str]:
        """(content hash, PDF hash) of a submission the folder channel would accept; else
        BridgeError."""
        accept_pair(submission.payload, submission.metadata, pdf_name=submission.pdf_name,
                    sidecar_name=submission.sidecar_name, matrix=self._matrix)
        return submission.digests()

    async def _get_document(self, request: web.Request) -> web.Response:
        job_id = int(request.match_info["job_id"])
        try:
            found = await asyncio.to_thread(self._lookup, job_id)
        except Exception as exc:
            log.error("http_lookup_failed", error=type(exc).__name__)
            return problems.store_unavailable()
        if found is None:
            return problems.not_found(job_id)
        job, events = found
        return web.json_response(self._status(job, events), dumps=problems.dumps)

    def _status(self, job: Job, events: list[JobEvent]) -> dict[str, Any]:
        """What the practice may know of a job: states, codes, French reasons; no patient."""
        reason = None
        if job.last_error_code is not None:
            reason = {"code": job.last_error_code, "message": _masked(job.last_error_fr or "")}
        return {
            "id": job.id,
            "etat": job.state.value,
            "libelle": self._labels[job.state],
            "canal": job.channel,
            "recu_le": _time(job.received_at),
            "mis_a_jour_le": _time(job.updated_at),
            "tentatives": job.attempts,
            "prochain_essai": _time(job.next_attempt_at),
            "motif": reason,
            "historique": [
                {
                    "date": _time(e.at),
                    "de": None if e.from_state is None else e.from_state.value,
                    "vers": e.to_state.value,
                    "code": e.code,
                    "message": _masked(e.message_fr),
                }
                for e in events
            ],
            "lien": f"{DOCUMENTS_PATH}/{job.id}",
        }

    def _emit(self, outcome: HttpOutcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)
