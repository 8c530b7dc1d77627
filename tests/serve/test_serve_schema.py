"""Property-based API testing with schemathesis against the app's own OpenAPI: whatever the
generated request, the service answers without a 500 (and within the declared responses' shape
for successes)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

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
