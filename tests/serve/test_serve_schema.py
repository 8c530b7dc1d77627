"""Property-based API testing against the app's own OpenAPI: whatever the request, the service
answers without a 5xx. Schemathesis generates requests that fit the schema (and some that do not);
hypothesis strategies of our own send what JSON and URLs can carry but a database or a renderer
cannot (NUL, lone surrogates, numbers that are not finite or do not fit, empty and huge strings) in
bodies, path and query parameters of every operation, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from penchant.serve.app import create_app
from penchant.serve.config import load_settings

KEY = "pk_schema_" + "s" * 40
_folder = Path(tempfile.mkdtemp(prefix="penchant-schema-"))
app = create_app(load_settings(_folder, env={}), admin_key=KEY)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_service_fail(case):
    response = case.call(headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:300])


# --- what JSON and URLs can carry that a database or a renderer cannot -----------------------------

SPEC = app.openapi()
#: every operation: (method, path template, its OpenAPI description); revoking keys is left out (the
#: generated id could, however unlikely, be the test's own key)
OPERATIONS = [(method.upper(), path, op) for path, item in SPEC["paths"].items() for method, op in item.items()
              if not path.endswith("/revoke")]

#: strings a store or a JSON renderer trips on: NUL, lone surrogates (valid JSON escapes, not encodable
#: text), a non-character, empty, blank, huge (beyond every id and text limit), and plain ones
TEXTS = st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\ufffe", "é" * 300, "z" * 100_000,
                         "../..", "%00", "u1"]) | st.text(max_size=8)
#: numbers as JSON tokens: not finite (Python's json reads NaN, Infinity and 1e309 as floats), beyond
#: 64 bits, below the smallest double, negative zero, and plain ones
NUMBERS = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e309", "-1e309", "1e-400", "-0", "9" * 400,
                           "-9223372036854775809", "2147483648", "0", "1", "-1", "0.5", "3"])


class Token(str):
    """A number written into the JSON text as it is (``NaN``, ``1e309``, 400 digits)."""


def _dumps(value) -> str:
    """JSON text of ``value`` with its tokens as they are and every other string escaped to ASCII
    (a lone surrogate as ``\\ud800``)."""
    if isinstance(value, Token):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + _dumps(v) for k, v in value.items()) + "}"
    return json.dumps(value)


def _leaf():
    return TEXTS | NUMBERS.map(Token) | st.booleans() | st.none()


def _shaped(schema: dict, depth: int = 0):
    """Values shaped like ``schema`` (its objects' field names, its arrays), each leaf a nasty one of
    the schema's type, sometimes of another type, so validation and everything after it are reached."""
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    options = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if options:
        return st.one_of([_shaped(s, depth) for s in options])
    kind = schema.get("type")
    if depth > 3 or kind is None:
        return _leaf()
    if kind == "object":
        fields = {k: _shaped(v, depth + 1) for k, v in schema.get("properties", {}).items()}
        shaped = st.fixed_dictionaries({}, optional=fields) if fields else \
            st.dictionaries(TEXTS.filter(lambda t: len(t) < 50), _leaf(), max_size=3)
        return shaped | _leaf()
    if kind == "array":
        return st.lists(_shaped(schema.get("items", {}), depth + 1), max_size=3) | _leaf()
    typed = {"string": TEXTS, "integer": NUMBERS.map(Token), "number": NUMBERS.map(Token), "boolean": st.booleans()}
    return typed.get(kind, _leaf()) | _leaf()


def _url_part(value: str) -> str:
    """``value`` percent-encoded as UTF-8 (a lone surrogate as the invalid bytes ED A0 80)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def _requests(draw):
    """(method, URL, body bytes or None, content type) of one operation, every part nasty."""
    method, path, op = draw(st.sampled_from(OPERATIONS))
    url, query = path, []
    for p in op.get("parameters", []):
        value = draw(TEXTS | NUMBERS)[:8000]  # a huge one as long as a URL may be (httpx's limit is 64 kB)
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", _url_part(value))
        elif p["in"] == "query" and draw(st.booleans()):
            query.append(f"{p['name']}={_url_part(value)}")
    if query:
        url += "?" + "&".join(query)
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return method, url, _dumps(draw(_shaped(content["application/json"]["schema"]))).encode(), "application/json"
    if method in ("POST", "PUT"):  # a restore's JSON lines, an import's artefact: whatever comes
        lines = draw(st.lists(_shaped({"type": "object", "properties": {
            k: {} for k in ("kind", "id", "event_id", "user_id", "item_id", "type", "timestamp")}}), max_size=3))
        return method, url, "\n".join(_dumps(v) for v in lines).encode(), "application/x-ndjson"
    return method, url, None, None


@pytest.mark.slow
@given(request=_requests())
@settings(max_examples=int(os.environ.get("PENCHANT_NASTY_EXAMPLES", "300")), deadline=None,
          suppress_health_check=list(HealthCheck))
def test_nothing_a_request_can_carry_makes_the_service_fail(client, request):
    """NUL, lone surrogates, numbers JSON or a double cannot hold, empty and huge strings, in bodies,
    path and query parameters of every operation, on SQLite and PostgreSQL: never a 5xx. 300 requests
    each, about a second (PENCHANT_NASTY_EXAMPLES=3000 for a longer search: 17-20 s each, none found)."""
    method, url, body, content_type = request
    headers = {"content-type": content_type} if content_type else {}
    response = client.request(method, url, content=body, headers=headers)
    assert response.status_code < 500, (method, url[:200], (body or b"")[:300], response.status_code,
                                        response.text[:300])
