"""The HTTP API (FastAPI): users, items, feedback, recommendations, similar items, model versions,
health and metrics. Keys travel as ``Authorization: Bearer <key>``; scopes read < write < admin.
Every invalid field is a 422 naming it; unknown ids are 404; a body over the size limit is 413; a
key over its per-minute budget gets 429.
"""

from __future__ import annotations

import pathlib
import threading
import time
from collections import defaultdict, deque
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from penchant.serve.config import Settings
from penchant.serve.conversations import ConversationHost
from penchant.serve.dump import dump_lines, parse_dump
from penchant.serve.host import ModelHost
from penchant.serve.keys import check_key, create_key
from penchant.serve.metrics import Metrics
from penchant.serve.schemas import (
    AnswerIn,
    CompareIn,
    ComparisonIn,
    ConversationIn,
    EventIn,
    IdsIn,
    Inserted,
    ItemIn,
    ItemOut,
    Recommendations,
    SessionIn,
    TrainIn,
    Upserted,
    UserIn,
    Version,
)
from penchant.serve.store import Store, database_url, make_engine, migrate

VersionId = Annotated[int, Path(ge=1, le=2**31 - 1)]
IdPath = Annotated[str, Path(min_length=1, max_length=255)]


class KeyCache:
    """Verified keys remembered for ``ttl`` seconds, so a request costs no key lookup; a revoked
    key stops working within ``ttl`` (revocation in this process: at once)."""

    def __init__(self, store: Store, ttl: float = 1.0) -> None:
        self.store, self.ttl, self.seen = store, ttl, {}

    def check(self, key: str | None, needed: str) -> tuple[bool, bool, str | None]:
        hit = self.seen.get((key, needed))
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl and hit[1] == self.store.key_generation:
            return hit[2]
        result = check_key(self.store, key, needed)
        if result[0]:
            self.seen[(key, needed)] = (now, self.store.key_generation, result)
        return result


class LimitsAndMetrics:
    """ASGI middleware: 413 for a declared body over ``max_bytes``; request counts and latency."""

    def __init__(self, app, metrics: Metrics, max_bytes: int, max_model_bytes: int) -> None:
        self.app, self.metrics, self.max_bytes, self.max_model_bytes = app, metrics, max_bytes, max_model_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]
        length = dict(scope["headers"]).get(b"content-length")
        limit = self.max_model_bytes if scope["path"] == "/v1/models/import" else self.max_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            response = JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)
            status[0] = 413
            await response(scope, receive, send)
        else:
            async def capture(message) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            await self.app(scope, receive, capture)
        route = scope.get("route")
        self.metrics.observe(scope["method"], getattr(route, "path", "unmatched"), status[0], time.perf_counter() - start)


class RateLimiter:
    """A sliding one-minute window per key."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute, self.hits, self.lock = per_minute, defaultdict(deque), threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            q = self.hits[key]
            while q and now - q[0] > 60:
                q.popleft()
            if len(q) >= self.per_minute:
                return False
            q.append(now)
            return True


def create_app(settings: Settings, *, admin_key: str | None = None) -> FastAPI:
    """The application over the store at ``settings.database_url`` (SQLite in ``data_dir`` by
    default). ``admin_key``: registered as an admin key when the store has none yet."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url(settings.data_dir, settings.database_url))
    migrate(engine)
    store = Store(engine)
    if admin_key and not store.keys():
        create_key(store, "bootstrap admin", "admin", key=admin_key)
    host = ModelHost(store, settings)
    host.load_active()
    talks = ConversationHost(store, host)
    if settings.retrain_every_s > 0:
        host.schedule(settings.retrain_every_s)
    limiter = RateLimiter(settings.rate_limit_per_minute)
    metrics = Metrics()
    app = FastAPI(title="penchant", version="0.1.0",
                  description="Feedback in, recommendations out. Keys: `Authorization: Bearer <key>`.")
    app.state.store, app.state.host, app.state.settings, app.state.metrics = store, host, settings, metrics

    app.add_middleware(LimitsAndMetrics, metrics=metrics, max_bytes=settings.max_request_bytes,
                       max_model_bytes=settings.max_model_bytes)

    verified = KeyCache(store)

    def auth(needed: str):
        async def dependency(authorization: Annotated[str | None, Header()] = None) -> str:
            key = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else None
            known, allowed, key_id = verified.check(key, needed)
            if not known:
                raise HTTPException(401, "a valid API key is needed (Authorization: Bearer <key>)",
                                    headers={"WWW-Authenticate": "Bearer"})
            if not allowed:
                raise HTTPException(403, f"this key lacks the {needed!r} scope")
            if not limiter.allow(key_id):
                raise HTTPException(429, f"over {settings.rate_limit_per_minute} requests per minute for this key")
            return key_id
        return Depends(dependency)

    read, write, admin = auth("read"), auth("write"), auth("admin")

    def batch(rows: list) -> None:
        if len(rows) > settings.max_batch:
            raise HTTPException(422, f"body: at most {settings.max_batch} rows per batch, not {len(rows)}")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        try:
            counts = store.counts()
        except Exception as e:  # the database is unreachable
            return JSONResponse({"status": "unavailable", "detail": type(e).__name__}, status_code=503)
        d = host.deployed
        return JSONResponse({"status": "ready", "model": d.label if d else None, **counts})

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def prometheus() -> str:
        d = host.deployed
        return metrics.render({"penchant_active_model_version": d.version if d else 0, **{
            f"penchant_stored_{k}": v for k, v in store.counts().items()}})

    @app.get("/ui", tags=["ui"], response_class=HTMLResponse, include_in_schema=False)
    def ui() -> str:
        from penchant.serve.ui import page

        return page(list(settings.feedback_types))

    @app.get("/v1/items", tags=["items"], dependencies=[read])
    def get_items(ids: Annotated[list[Annotated[str, Field(min_length=1, max_length=255)]], Query(max_length=1000)]) -> list[ItemOut]:
        """The stored records of the given items (unknown ids are left out)."""
        return [ItemOut(**{k: r[k] for k in ItemOut.model_fields}) for r in store.get_items(ids)]

    @app.put("/v1/users", tags=["users"], dependencies=[write])
    def upsert_users(rows: list[UserIn]) -> Upserted:
        batch(rows)
        return Upserted(upserted=store.upsert_users([r.model_dump() for r in rows]))

    @app.delete("/v1/users/{user_id}", tags=["users"], dependencies=[admin])
    def delete_user(user_id: IdPath) -> dict:
        """Forget a user: their record and every event of theirs (the right to be forgotten)."""
        out = store.delete_user(user_id)
        if not out["user"] and not out["events"]:
            raise HTTPException(404, f"no user {user_id!r}")
        return out

    @app.post("/v1/users/delete", tags=["users"], dependencies=[admin])
    def delete_users(body: IdsIn) -> dict:
        """Forget many users at once; counts of what was removed."""
        done = [store.delete_user(u) for u in body.ids]
        return {"users": sum(d["user"] for d in done), "events": sum(d["events"] for d in done)}

    @app.put("/v1/items", tags=["items"], dependencies=[write])
    def upsert_items(rows: list[ItemIn]) -> Upserted:
        batch(rows)
        n = store.upsert_items([r.model_dump() for r in rows])
        host.items_changed()
        talks.items_changed()
        return Upserted(upserted=n)

    @app.delete("/v1/items/{item_id}", tags=["items"], dependencies=[admin])
    def delete_item(item_id: IdPath) -> dict:
        out = store.delete_item(item_id)
        if not out["item"] and not out["events"]:
            raise HTTPException(404, f"no item {item_id!r}")
        host.items_changed()
        return out

    @app.post("/v1/items/delete", tags=["items"], dependencies=[admin])
    def delete_items(body: IdsIn) -> dict:
        done = [store.delete_item(i) for i in body.ids]
        host.items_changed()
        talks.items_changed()
        return {"items": sum(d["item"] for d in done), "events": sum(d["events"] for d in done)}

    @app.post("/v1/feedback", tags=["feedback"], dependencies=[write])
    def post_feedback(rows: list[EventIn]) -> Inserted:
        """Insert a batch of events; acknowledged after the commit; a retried ``event_id`` is
        counted as a duplicate, not stored twice."""
        batch(rows)
        for k, r in enumerate(rows):
            if settings.meaning(r.type) is None:
                raise HTTPException(422, f"body[{k}].type: unknown feedback type {r.type!r}; configured: "
                                         f"{', '.join(settings.feedback_types)}")
        now = time.time()
        out = store.insert_feedback([r.model_dump() | {"timestamp": r.timestamp if r.timestamp is not None else now}
                                     for r in rows])
        metrics.count("penchant_events_inserted_total", out["inserted"])
        metrics.count("penchant_events_duplicate_total", out["duplicates"])
        return Inserted(**out)

    @app.post("/v1/comparisons", tags=["feedback"], dependencies=[write])
    def post_comparisons(rows: list[ComparisonIn]) -> Inserted:
        """A-versus-B choices (``user_id`` optional): batch, idempotent by ``event_id``, committed
        before the answer; preference models (``pbt``, ``bt``, ``gpm``, ``pal``, ``vpl``) learn from them."""
        batch(rows)
        for k, r in enumerate(rows):
            if r.winner == r.loser:
                raise HTTPException(422, f"body[{k}].loser: the same as the winner")
        now = time.time()
        return Inserted(**store.insert_comparisons([r.model_dump() | {"timestamp": r.timestamp if r.timestamp is not None
                                                                      else now} for r in rows]))

    @app.post("/v1/compare", tags=["recommendations"], dependencies=[read])
    def compare(body: CompareIn) -> dict:
        """Rank options for a user with the deployed preference model: each option's mean chance
        of beating the others, and its utility where the model has one."""
        try:
            return host.compare(body.user_id, body.options)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        except LookupError as e:
            raise HTTPException(409, str(e)) from None

    @app.get("/v1/users/{user_id}/feedback", tags=["feedback"], dependencies=[read])
    def user_feedback(user_id: IdPath, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict]:
        return store.user_feedback(user_id, limit)

    @app.get("/v1/users/{user_id}/recommendations", tags=["recommendations"], dependencies=[read],
             response_model=Recommendations)
    async def recommendations(user_id: IdPath, k: Annotated[int, Query(ge=1, le=1000)] = 10,
                              category: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
                              exclude: Annotated[list[str] | None, Query()] = None,
                              exclude_seen: bool = True) -> JSONResponse:
        """Top k for a user: seen items left out unless ``exclude_seen=false``; ``category``
        filters; a user the model has not seen gets a fold-in from their events (ALS) or the
        popular items; ``model`` says which answered."""
        # the hot path: the host's dict goes out as it is (its shape is Recommendations, tested)
        return JSONResponse(host.recommend(user_id, k, category=category, exclude=exclude, exclude_seen=exclude_seen))

    @app.post("/v1/recommendations", tags=["recommendations"], dependencies=[read])
    def session_recommendations(body: SessionIn) -> Recommendations:
        """Top k for an anonymous session (recent items, oldest first) with a deployed sequential
        model (e.g. ``sasrec``, ``markov``); other models fold the items in or fall back to
        popularity. ``unknown_items`` counts ids the model does not know (skipped)."""
        try:
            return Recommendations(**host.recommend_session(body.items, body.k, exclude_seen=body.exclude_seen))
        except LookupError as e:
            raise HTTPException(409, str(e)) from None

    @app.get("/v1/items/{item_id}/similar", tags=["recommendations"], dependencies=[read])
    def similar(item_id: IdPath, k: Annotated[int, Query(ge=1, le=1000)] = 10) -> Recommendations:
        try:
            return Recommendations(**host.similar(item_id, k))
        except LookupError as e:
            raise HTTPException(404, str(e)) from None

    @app.get("/v1/admin/dump", tags=["admin"], dependencies=[admin], response_class=StreamingResponse)
    def dump() -> StreamingResponse:
        """Every user, item and event as JSON lines (``kind`` = user, item or event)."""
        return StreamingResponse(dump_lines(store), media_type="application/x-ndjson")

    @app.post("/v1/admin/restore", tags=["admin"], dependencies=[admin])
    async def restore(request: Request) -> dict:
        """Load a dump (JSON lines); events already stored are counted, not doubled."""
        from penchant.errors import DataError

        body = (await request.body()).splitlines()  # bytes: parse_dump names the line of a bad byte
        try:
            rows = list(parse_dump(body, "body", settings.feedback_types))
        except DataError as e:
            raise HTTPException(422, str(e)) from None
        out = store.restore(rows)
        host.items_changed()
        return out

    def conversation_errors(call):
        try:
            return call()
        except KeyError as e:
            raise HTTPException(404, str(e.args[0])) from None
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        except (LookupError, RuntimeError) as e:
            raise HTTPException(409, str(e)) from None

    @app.post("/v1/conversations", tags=["conversations"], dependencies=[write], status_code=201)
    def start_conversation(body: ConversationIn) -> dict:
        """Start a conversation (for a known user, their learned taste shapes it); the answer holds
        the first move: a question about item categories/attributes, or a list of items."""
        return conversation_errors(lambda: talks.start(body.user_id, body.policy, body.opening))

    @app.post("/v1/conversations/{conversation_id}/answer", tags=["conversations"], dependencies=[write])
    def answer_conversation(conversation_id: IdPath, body: AnswerIn) -> dict:
        return conversation_errors(lambda: talks.answer(conversation_id, body.model_dump()))

    @app.get("/v1/conversations/{conversation_id}", tags=["conversations"], dependencies=[read])
    def get_conversation(conversation_id: IdPath) -> dict:
        return conversation_errors(lambda: talks.get(conversation_id))

    @app.post("/v1/models/train", tags=["models"], dependencies=[admin], status_code=202)
    def train(body: TrainIn) -> Version:
        """Start training on everything stored (a background job); poll the version for progress."""
        try:
            version = host.start_training(body.model, body.params, body.activate)
        except (KeyError, ValueError, TypeError) as e:
            raise HTTPException(422, f"body: {e}") from None
        return Version(**_public(store.version(version)))

    @app.post("/v1/models/import", tags=["models"], dependencies=[admin], status_code=201)
    async def import_model(request: Request, activate: bool = False) -> Version:
        """A model fitted offline (the artefact file written by `penchant fit` or `prefs fit`, as the
        raw request body) becomes a new ready version, served without retraining."""
        import tempfile

        from penchant.errors import DataError

        body = await request.body()
        if len(body) > settings.max_model_bytes:
            raise HTTPException(413, f"request body over {settings.max_model_bytes} bytes")
        with tempfile.NamedTemporaryFile(dir=settings.data_dir, suffix=".npz") as f:
            f.write(body)
            f.flush()
            try:
                version = await run_in_threadpool(host.import_model, pathlib.Path(f.name), activate)
            except DataError as e:
                raise HTTPException(422, f"body: {e.message}") from None
        return Version(**_public(store.version(version)))

    @app.get("/v1/models", tags=["models"], dependencies=[read])
    def versions() -> list[Version]:
        return [Version(**_public(v)) for v in store.versions()]

    @app.get("/v1/models/{version}", tags=["models"], dependencies=[read])
    def version(version: VersionId) -> Version:
        v = store.version(version)
        if v is None:
            raise HTTPException(404, f"no model version {version}")
        return Version(**_public(v))

    @app.post("/v1/models/{version}/activate", tags=["models"], dependencies=[admin])
    def activate(version: VersionId) -> Version:
        try:
            host.activate(version)
        except LookupError as e:
            raise HTTPException(404, str(e)) from None
        return Version(**_public(store.version(version)))

    @app.post("/v1/models/rollback", tags=["models"], dependencies=[admin])
    def rollback() -> Version:
        try:
            d = host.rollback()
        except LookupError as e:
            raise HTTPException(409, str(e)) from None
        return Version(**_public(store.version(d.version)))

    return app


def _public(v: dict) -> dict:
    return {k: v[k] for k in Version.model_fields}
