"""Dump and restore the store as JSON lines."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from penchant.serve.deps import Svc, admin
from penchant.serve.dump import dump_lines, parse_dump

router = APIRouter()


@router.get("/v1/admin/dump", tags=["admin"], dependencies=[admin], response_class=StreamingResponse)
def dump(svc: Svc) -> StreamingResponse:
    """Every user, item, event, comparison and served list as JSON lines (``kind`` says which);
    this worker's served lists not yet written are written first."""
    svc.host.impressions.flush()
    return StreamingResponse(dump_lines(svc.store), media_type="application/x-ndjson")


@router.post("/v1/admin/restore", tags=["admin"], dependencies=[admin])
async def restore(request: Request, svc: Svc) -> dict:
    """Load a dump (JSON lines) in one transaction: all or nothing. Events already stored are
    counted, not doubled. A bad line is a 422 naming it (``body, line N``), and nothing is stored."""
    body = (await request.body()).splitlines()  # bytes: parse_dump names the line of a bad byte
    out = await run_in_threadpool(svc.store.restore, parse_dump(body, "body", svc.settings.feedback_types))
    svc.host.items_changed()
    return out
