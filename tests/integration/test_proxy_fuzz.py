"""Property-based fuzzing of `ppd proxy` driven by its own OpenAPI description (GET /openapi.json).

Hypothesis draws requests for every described operation: bodies that follow the schema (token
limits kept small so engines answer fast), bodies with fields replaced by arbitrary JSON, wrong
methods, unknown paths and odd headers. The property: the proxy never answers 5xx of its own; every
non-200 answer is OpenAI-style JSON; a 200 on a JSON endpoint has the fields its schema requires.
A 502 is allowed only when it says which engine answered 5xx (the engine's fault, passed on).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TOKEN = "s3cret"
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
SMALL_TOKEN_LIMIT = st.integers(min_value=1, max_value=8)
LIKELY_VALUES = {"model": ["llama"] * 4, "role": ["user", "assistant", "system"]}
PATH_TEXT = st.text(min_size=1, max_size=10).map(lambda text: quote(text, safe=""))


def from_schema(schema: dict[str, Any], components: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """Values that follow a (small subset of) JSON Schema, as the proxy's description uses it."""
    if "$ref" in schema:
        return from_schema(components[schema["$ref"].rsplit("/", 1)[1]], components, name)
    if "oneOf" in schema:
        return st.one_of([from_schema(option, components, name) for option in schema["oneOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        if name.startswith("max_"):
            return SMALL_TOKEN_LIMIT
        return st.integers(min_value=schema.get("minimum"), max_value=10_000)
    if kind == "string" and name in LIKELY_VALUES:
        return st.sampled_from(LIKELY_VALUES[name]) | st.text(max_size=8)  # mostly past the engine's checks
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 40))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        items = from_schema(schema.get("items", {}), components, name)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=4)
    if kind == "object":
        return _object(schema, components)
    return ANY_JSON


def _object(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    fixed = {key: from_schema(value, components, key) for key, value in properties.items() if key in required}
    optional = {
        key: from_schema(value, components, key) for key, value in properties.items() if key not in required
    }
    return st.fixed_dictionaries(fixed, optional=optional)


def mutated(body: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A schema-valid body with one field replaced by arbitrary JSON, or dropped, or garbage."""

    def mutate(value: Any, key: str, replacement: Any, drop: bool) -> Any:
        if not isinstance(value, dict) or not value:
            return replacement
        key = sorted(value)[hash(key) % len(value)]
        changed = dict(value)
        if drop:
            changed.pop(key)
        else:
            changed[key] = replacement
        return changed

    return st.builds(mutate, body, st.text(max_size=4), ANY_JSON, st.booleans())


def operations(description: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, methods in description["paths"].items()
        for method, operation in methods.items()
    ]


def request_strategy(description: dict[str, Any]) -> st.SearchStrategy[tuple[str, str, Any, dict[str, str]]]:
    components = description["components"]["schemas"]
    strategies = []
    for path, method, operation in operations(description):
        concrete = st.just(path)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                value = st.sampled_from(parameter["schema"]["enum"]) | PATH_TEXT
                concrete = value.map(lambda v, p=path, n=parameter["name"]: p.replace("{" + n + "}", v))
        body: st.SearchStrategy[Any] = st.none()
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            valid = from_schema(content["application/json"]["schema"], components)
            body = valid | mutated(valid) | ANY_JSON
        strategies.append(st.tuples(st.just(method.upper()), concrete, body, HEADERS))
    wrong = st.tuples(
        st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
        st.sampled_from([path for path, _, _ in operations(description)]) | PATH_TEXT.map("/x/".__add__),
        st.none() | ANY_JSON,
        HEADERS,
    )
    return st.one_of([*strategies, wrong])


HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "X-Session-ID": st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30),
        "Authorization": st.sampled_from([f"Bearer {TOKEN}", "Bearer wrong", "Basic eDp5", ""]),
        "X-Request-Id": st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30),
    },
)


def send(base: str, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, str, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


@pytest.fixture(scope="module")
def proxy() -> Any:
    from helpers import start_ppd

    engine = start_ppd("sim", "--time-scale", "0.02", "--port", "0")
    proxy = start_ppd("proxy", "--mode", "ppd", "--prefill", engine.url, "--decode", engine.url,
                      "--port", "0", "--admin-token", TOKEN)  # fmt: skip
    yield proxy.url
    proxy.stop()
    engine.stop()


def test_openapi_description_is_served(proxy: str) -> None:
    status, content_type, body = send(proxy, "GET", "/openapi.json", None, {})
    description = json.loads(body)
    assert status == 200 and content_type.startswith("application/json")
    assert {"/v1/completions", "/v1/chat/completions", "/mode/{mode}"} <= set(description["paths"])


def test_fuzzed_requests_never_get_a_5xx_of_the_proxys_own(proxy: str) -> None:
    description = json.loads(send(proxy, "GET", "/openapi.json", None, {})[2])
    schemas = description["components"]["schemas"]

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(request_strategy(description))
    def property_holds(request: tuple[str, str, Any, dict[str, str]]) -> None:
        method, path, body, headers = request
        status, content_type, payload = send(proxy, method, path, body, headers)
        if status == 200:
            check_ok(description, schemas, method, path, content_type, payload)
            return
        error = json.loads(payload)["error"]
        assert error["code"] == status and isinstance(error["message"], str), payload
        assert status < 500 or (status == 502 and " answered 5" in error["message"]), payload

    property_holds()


def check_ok(
    description: dict[str, Any],
    schemas: dict[str, Any],
    method: str,
    path: str,
    content_type: str,
    payload: bytes,
) -> None:
    operation = description["paths"].get(path, {}).get(method.lower())
    if operation is None or not content_type.startswith("application/json"):
        return
    schema = operation["responses"]["200"]["content"].get("application/json", {}).get("schema", {})
    schema = schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
    answer = json.loads(payload)
    assert isinstance(answer, dict) and set(schema.get("required", ())) <= set(answer), (path, answer)
