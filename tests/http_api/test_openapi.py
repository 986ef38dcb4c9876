"""The OpenAPI description: served without the token, complete, and in step with the code."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from pydantic import BaseModel

from bridge.sidecar import AuthorIn, DocumentIn, PatientIn, SidecarIn
from connectors.http_api import HttpApi
from tests.http_api.conftest import url


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/")
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


async def test_openapi_is_served_without_the_token(api: HttpApi,
                                                   session: aiohttp.ClientSession) -> None:
    async with session.get(url(api, "/api/openapi.json")) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        document = json.loads(await response.read())
    assert document["openapi"] == "3.1.0"
    assert document["servers"][0]["variables"]["port"]["default"] == str(api.port)
    operations = {(path, method): op for path, item in document["paths"].items()
                  for method, op in item.items()}
    post = operations[("/api/v1/documents", "post")]
    get = operations[("/api/v1/documents/{id}", "get")]
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"202", "400", "401", "409", "413", "421", "503"} <= set(post["responses"])
    assert {"200", "401", "404"} <= set(get["responses"])
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"],
        "type": "http", "scheme": "bearer"}
    assert document["security"] == [{"bearerAuth": []}]
    assert operations[("/api/openapi.json", "get")]["security"] == []
    # Every reference resolves; every operation has an id and answers.
    for ref in _refs(document):
        assert _resolve(document, ref) is not None
    assert len({op["operationId"] for op in operations.values()}) == len(operations)


def _keys(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


async def test_sidecar_schema_matches_the_sidecar_model(api: HttpApi,
                                                        session: aiohttp.ClientSession) -> None:
    async with session.get(url(api, "/api/openapi.json")) as response:
        sidecar = (await response.json())["components"]["schemas"]["Sidecar"]
    assert set(sidecar["properties"]) == _keys(SidecarIn)
    for name, model in (("patient", PatientIn), ("document", DocumentIn), ("author", AuthorIn)):
        schema = sidecar["properties"][name]
        assert set(schema["properties"]) == _keys(model), name
        required = {k for k, f in model.model_fields.items() if f.is_required()}
        assert set(schema["required"]) == required, name
