"""The service's shared fixture: an app over a fresh store (SQLite, or a real PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.serve.server import ADMIN


@pytest.fixture
def client(tmp_path, database_url):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    settings = load_settings(tmp_path / "data", database_url=database_url, env={})
    app = create_app(settings, admin_key=ADMIN)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN}"
        yield c
