"""Dump and restore the store as JSON lines; API keys: list, create, revoke."""

from __future__ import annotations

import tempfile

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from penchant.serve.deps import IdPath, Svc, admin
from penchant.serve.dump import dump_pieces, parse_dump
from penchant.serve.schemas import KeyIn

router = APIRouter()


@router.get("/v1/admin/dump", tags=["admin"], dependencies=[admin], response_class=StreamingResponse)
def dump(svc: Svc) -> StreamingResponse:
    """Every user, item, event, comparison and served list as JSON lines (``kind`` says which);
    this worker's served lists not yet written are written first."""
    svc.host.impressions.flush()
    return StreamingResponse(dump_pieces(svc.store), media_type="application/x-ndjson")


@router.post("/v1/admin/restore", tags=["admin"], dependencies=[admin])
async def restore(request: Request, svc: Svc) -> dict:
    """Load a dump (JSON lines) in one transaction: all or nothing. Events already stored are
    counted, not doubled; users and items get the fields their lines carry. A bad line is a 422
    naming it (``body, line N``), and nothing is stored. The body may be as large as
    ``max_restore_bytes`` (a dump outgrows ``max_request_bytes``): it is read in pieces to a
    temporary file in the data folder, so memory stays small, and the store's transaction starts
    only once the whole dump is in (a slow upload holds no lock)."""
    limit = svc.settings.max_restore_bytes
    with tempfile.TemporaryFile(dir=svc.settings.data_dir) as f:  # unlinked at once: nothing left behind
        size = 0
        async for piece in request.stream():  # a body sent chunked has no length the middleware could check
            size += len(piece)
            if size > limit:
                raise HTTPException(413, f"request body over {limit} bytes (max_restore_bytes); nothing was stored")
            f.write(piece)
        f.seek(0)
        # bytes lines: parse_dump names the line of a bad byte
        out = await run_in_threadpool(svc.store.restore, parse_dump(f, "body", svc.settings.feedback_types))
    svc.host.items_changed()
    return out


@router.get("/v1/admin/keys", tags=["admin"], dependencies=[admin])
def list_keys(svc: Svc) -> list[dict]:
    """Every key's id, name, scope and times (never the key or its hash)."""
    return [{k: r[k] for k in ("id", "name", "scopes", "created_at", "revoked_at")} for r in svc.store.keys()]


@router.post("/v1/admin/keys", tags=["admin"], dependencies=[admin], status_code=201)
def create_key(svc: Svc, body: KeyIn) -> dict:
    """A new key with one scope; the answer is the only time the key is shown."""
    from penchant.serve.keys import create_key as make
    from penchant.serve.keys import key_id_of

    key = make(svc.store, body.name, body.scope)
    return {"id": key_id_of(key), "name": body.name, "scopes": body.scope, "key": key}


@router.post("/v1/admin/keys/{key_id}/revoke", tags=["admin"], dependencies=[admin])
def revoke_key(svc: Svc, key_id: IdPath) -> dict:
    """Revoke a key: refused from the next request on (in other workers within a second)."""
    if svc.store.key(key_id) is None:
        raise HTTPException(404, f"no key {key_id!r}")
    return {"id": key_id, "revoked": svc.store.revoke_key(key_id)}
