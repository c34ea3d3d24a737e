"""The proxy's OpenAPI description names every route of the app, and its references resolve."""

from __future__ import annotations

import json
from typing import Any

from ppd.proxy.app import build_app
from ppd.proxy.config import ProxyConfig
from ppd.proxy.openapi import openapi_description


def refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if "$ref" in value else []
        return found + [ref for item in value.values() for ref in refs(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in refs(item)]
    return []


def test_every_app_route_is_described_with_its_method() -> None:
    app = build_app(ProxyConfig("replication", replica_urls=("http://r:1",)))
    described = openapi_description(1000)
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    paths = {(path, method) for path, operations in described["paths"].items() for method in operations}
    assert routes == paths


def test_references_resolve_and_it_is_json() -> None:
    described = openapi_description(1000)
    json.dumps(described)
    schemas = described["components"]["schemas"]
    assert {ref.rsplit("/", 1)[1] for ref in refs(described)} <= set(schemas)
    assert described["openapi"].startswith("3.0")
    assert "1000 bytes" in described["info"]["description"]
