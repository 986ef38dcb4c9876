"""Ambiguous outcomes: the request may have reached the DMP, and only the DMP can tell.

Before anything is resent, the DMP is asked (ITI-18, TD3.1b by uniqueId) whether it holds the
document, with our bytes. Each job is asked about by ITS OWN document uniqueId and compared with
ITS OWN CDA's hash, so the jobs of a lot are resolved one by one (a lot is registered atomically:
they all end the same way, but none relies on another's answer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

from bridge.dmp_answer import Decision
from bridge.dmp_error_table import ErrorClass
from bridge.domain import Author
from bridge.ebrim import sha1_hex
from bridge.errors import BridgeError
from bridge.jobs import Job, JobState
from bridge.packaging import Package
from bridge.sidecar import DocumentRequest
from bridge.store_port import Store
from connectors.dmp_client import TransportError
from connectors.dmp_transactions import DmpTransactions
from service.lot_assembly import LotAssembler, stop_decision

Finish = Callable[[Job, Decision], Awaitable[None]]

NO_ANSWER = Decision(
    ErrorClass.AMBIGUOUS,
    JobState.AMBIGUOUS,
    "DMP_NO_ANSWER",
    "Vérification auprès du DMP impossible pour l'instant ; nouvel essai automatique.",
)


def own_cda(package: Package, document_unique_id: str) -> bytes | None:
    """The CDA bytes of one document of a package (the parts follow the uniqueIds' order)."""
    documents = [data for cid, data in package.parts if cid.startswith("doc-")]
    ids = package.document_unique_ids
    if document_unique_id not in ids or len(documents) != len(ids):
        return None
    return documents[ids.index(document_unique_id)]


class AmbiguityResolver:
    """Asks the DMP about documents whose submission may or may not have been registered."""

    def __init__(self, store: Store, lots: LotAssembler,
                 transactions: Callable[[Author], DmpTransactions | None], *,
                 lease: dt.timedelta) -> None:
        self._store = store
        self._lots = lots
        self._transactions = transactions
        self._lease = lease

    async def ask(self, request: DocumentRequest, package: Package,
                  document_unique_id: str) -> Decision | None:
        """Does the DMP hold this document, with our bytes? None when it cannot be told now."""
        transactions = self._transactions(request.author)
        if transactions is None:
            return None  # no credentials may ask for this author now (card out): still unknown
        try:
            entry = await transactions.find_entry(
                request.patient.ins, document_unique_id, author=request.author)
        except (BridgeError, TransportError):
            return None  # the DMP could not answer (or the clock is wrong): still unknown
        if entry is None:
            # Not there: the request never reached the registry; resend the same bytes.
            return Decision(ErrorClass.TRANSIENT, JobState.DEFERRED, "DMP_NOT_RECEIVED",
                            "Le DMP n'a pas reçu le document ; nouvel envoi automatique.")
        cda = own_cda(package, document_unique_id)
        if cda is not None and entry.hash == sha1_hex(cda):
            return Decision(None, JobState.DONE, "DMP_OK_CONFIRMED",
                            "Document enregistré dans le DMP (confirmé par une recherche).")
        return Decision(ErrorClass.PERMANENT, JobState.DEAD, "DMP_UNIQUEID_CONFLICT",
                        "Le DMP contient déjà un autre document avec le même identifiant. "
                        "Contactez le support de dmp-bridge.")

    async def resolve(self, job: Job, finish: Finish) -> None:
        """Lease one AMBIGUOUS job, ask the DMP, record the answer (no attempt is used)."""
        try:
            active = await asyncio.to_thread(
                self._store.transition, job.id, JobState.ACTIVE, code="RESOLVING",
                message_fr="Vérification auprès du DMP.", now=dt.datetime.now(dt.UTC),
                lease=self._lease)
        except BridgeError:
            return  # another worker took it
        try:
            request = await self._lots.request(active)
            stored = await asyncio.to_thread(self._store.package, active.id)
        except BridgeError as exc:
            await finish(active, stop_decision(exc))
            return
        if stored is None:
            # Nothing was ever packaged, so nothing can have been sent: process it normally.
            await finish(active, Decision(None, JobState.QUEUED, "NEVER_SENT",
                                          "Jamais envoyé : remis dans la file."))
            return
        package = Package.from_bytes(stored)
        own_id = active.document_unique_id or package.document_unique_id
        await finish(active, await self.ask(request, package, own_id) or NO_ANSWER)
