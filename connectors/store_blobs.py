"""Reading a job's bytes back, with their integrity checked — the same rule for every store.

A store only says how to fetch (bytes, recorded SHA-256) for a column; this mixin decides what a
missing or mismatching blob means: a payload or metadata that is gone or altered is
`CorruptPayload`, a package that is absent simply was never built.
"""

from __future__ import annotations

from bridge.store_port import CorruptPayload
from connectors.sqlite_schema import sha256_hex


class BlobChecks:
    """`payload`, `metadata` and `package` of the Store port, on top of `_blob`."""

    def _blob(self, job_id: int, column: str) -> tuple[bytes | None, str | None]:
        raise NotImplementedError

    def payload(self, job_id: int) -> bytes:
        data, sha = self._blob(job_id, "payload")
        if data is None or sha is None or sha256_hex(data) != sha:
            raise CorruptPayload(job_id, "payload")
        return bytes(data)

    def metadata(self, job_id: int) -> bytes:
        data, _ = self._blob(job_id, "metadata")
        if data is None:
            raise CorruptPayload(job_id, "metadata")
        return bytes(data)

    def package(self, job_id: int) -> bytes | None:
        data, sha = self._blob(job_id, "package")
        if data is None:
            return None
        if sha is None or sha256_hex(data) != sha:
            raise CorruptPayload(job_id, "package")
        return bytes(data)
