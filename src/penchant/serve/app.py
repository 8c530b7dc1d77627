"""The HTTP API (FastAPI): users, items, feedback, recommendations, similar items, model versions,
health and metrics. Keys travel as ``Authorization: Bearer <key>``; scopes read < write < admin.
Every invalid field is a 422 naming it; unknown ids are 404; a state that does not allow a request
is 409; a body over the size limit is 413 as soon as it passes it, and a key that cannot make a
request is 401/403 before its body is read (:mod:`penchant.serve.limits`); a key over its
per-minute budget gets 429; a store that cannot keep a write (its file deleted under it, a full
disk, its server gone) is 503, never a 200.

The routes live in :mod:`penchant.serve.routes` (one router per concern) and depend on the parts of
the service through :mod:`penchant.serve.deps`; penchant's own errors become answers here, one
handler per error type.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from penchant.errors import ConfigError, ConflictError, DataError, NotFoundError, StoreUnavailableError
from penchant.serve.config import Settings
from penchant.serve.conversations import ConversationHost
from penchant.serve.deps import KeyCache, Service
from penchant.serve.fleet import Listener
from penchant.serve.host import ModelHost
from penchant.serve.hot_path import FastRecommendations
from penchant.serve.keys import create_key
from penchant.serve.leases import rate_limiter
from penchant.serve.limits import BodyGate
from penchant.serve.metrics import AfterEachRequest, Metrics
from penchant.serve.routes import ROUTERS
from penchant.serve.store import Store, database_url, make_engine, migrate

#: HTTP status of each of penchant's error types, when a route lets one through
STATUS = {DataError: 422, ConfigError: 422, NotFoundError: 404, ConflictError: 409, StoreUnavailableError: 503}


class ErrorJSON(JSONResponse):
    """An error body in ASCII JSON: a 422 echoes the rejected input, which may hold characters
    UTF-8 cannot carry (a lone surrogate from a ``\\ud800`` escape); escaped, they still answer."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class RequestMetrics(AfterEachRequest):
    """ASGI middleware, outermost: request counts and latency by route and status (the answers of
    the body gate and the hot path included)."""

    def __init__(self, app, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    def done(self, scope: dict, status: int, seconds: float) -> None:
        route = scope.get("route")
        self.metrics.observe(scope["method"], getattr(route, "path", "unmatched"), status, seconds)


def create_app(settings: Settings, *, admin_key: str | None = None, generation=None, generation_lock=None,
               user_events=None, schedule: bool = True) -> FastAPI:
    """The application over the store at ``settings.database_url`` (SQLite in ``data_dir`` by
    default). ``admin_key``: registered as an admin key when the store has none yet.
    ``generation``/``generation_lock``: the counter worker processes share (see
    :class:`~penchant.serve.host.ModelHost`); ``user_events``: their shared per-user event counters
    (:mod:`penchant.serve.answers`); ``schedule``: whether this process runs the periodic
    retraining (one worker of several does)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url(settings.data_dir, settings.database_url))
    migrate(engine)
    store = Store(engine)
    if admin_key and not store.keys():
        try:
            create_key(store, "bootstrap admin", "admin", key=admin_key)
        except sa.exc.IntegrityError:
            pass  # another server starting on this store registered it a moment before
    host = ModelHost(store, settings, generation, generation_lock, user_events)
    refused = host.recover() + host.load_active()  # versions whose training died with its process; damaged ones
    if settings.retrain_every_s > 0 and schedule:
        host.schedule(settings.retrain_every_s)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        from threadpoolctl import threadpool_limits

        # Answers run one at a time on the event loop, and their products are small (a ranker's
        # 100 × 212 × 200): a second BLAS thread only waits for a core, 3× slower per forward on a
        # loaded 2-core machine. Concurrency comes from requests and --workers; training jobs widen
        # the pool for their own run (ModelHost._job).
        limits = threadpool_limits(1, user_api="blas")
        # replicas on one PostgreSQL: hear the others' changes and load new versions before a request must
        app.state.listener = Listener(store, host.refresh).start() if store.shared else None
        host.watch.start()  # take over jobs whose replica stopped renewing their lease (penchant.serve.leases)
        try:
            yield
        finally:
            host.watch.stop()
            app.state.service.limiter.close()  # the shared limiter's kept connection (PostgreSQL)
            if app.state.listener is not None:
                app.state.listener.stop()
            store.close()
            host.impressions.close()  # the served lists still waiting are written before the process ends
            limits.restore_original_limits()

    app = FastAPI(title="penchant", version="0.1.0", lifespan=lifespan,
                  description="Feedback in, recommendations out. Keys: `Authorization: Bearer <key>`.")
    app.state.refused = refused  # versions not served or fallen back to, for the start-up lines
    talks = ConversationHost(store, host)
    host.on_items_changed.append(talks.items_changed)
    app.state.service = Service(store, host, talks, settings, metrics, KeyCache(store),
                                rate_limiter(store, settings.rate_limit_per_minute))
    # middleware added later wraps what was added before: metrics ( body gate ( hot path ( routes ) ) )
    app.add_middleware(FastRecommendations, service=app.state.service)
    app.add_middleware(BodyGate, service=app.state.service,  # keys before bodies; bodies counted as they arrive
                       routes=[route for router in ROUTERS for route in router.routes])
    app.add_middleware(RequestMetrics, metrics=metrics)
    for error, status in STATUS.items():
        app.add_exception_handler(error, _answer(status))
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(sa.exc.OperationalError, _store_unavailable)
    for router in ROUTERS:
        app.include_router(router)
    return app


def _answer(status: int):
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return ErrorJSON({"detail": str(exc)}, status_code=status)
    return handler


async def _store_unavailable(request: Request, exc: sa.exc.OperationalError) -> JSONResponse:
    """The database refused or could not be reached (SQLite: a full or read-only disk, a lock held
    too long; PostgreSQL: the server gone): 503, and nothing of the request was stored (its
    transaction rolled back). SQLite's words are given; a server's (which may name its host) are logged."""
    if request.app.state.service.store.engine.dialect.name == "sqlite":
        why = str(exc.orig)
    else:
        logging.getLogger("penchant.serve").error("the database refused a request: %s", exc.orig)
        why = "the database server refused or could not be reached; the service's log has its words"
    return ErrorJSON({"detail": f"the store is unavailable ({why}); nothing of this request was stored"}, status_code=503)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 (the list of invalid fields with their inputs), rendered so any input can be
    echoed: a number JSON cannot carry (NaN, infinity: the reason for many a 422) as its name."""
    return ErrorJSON({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)


def _finite(value):
    """``value`` with every float that is not finite replaced by its name ("NaN", "Infinity", "-Infinity")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
