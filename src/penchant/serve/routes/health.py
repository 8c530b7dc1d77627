"""Liveness, readiness, Prometheus metrics and the page at ``/ui``."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from penchant.errors import StoreUnavailableError
from penchant.serve.deps import Svc

router = APIRouter()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict:
    """Alive; ``pid`` says which worker process answered."""
    return {"status": "ok", "pid": os.getpid()}


@router.get("/readyz", tags=["health"])
def readyz(svc: Svc) -> JSONResponse:
    try:
        svc.store.check()
        counts = svc.store.counts()
    except StoreUnavailableError as e:  # its file deleted under it
        return JSONResponse({"status": "unavailable", "detail": str(e)}, status_code=503)
    except Exception as e:  # the database is unreachable
        return JSONResponse({"status": "unavailable", "detail": type(e).__name__}, status_code=503)
    d = svc.host.deployed
    # warnings: versions the start refused (a damaged artefact) or fell back to, and interrupted trainings
    return JSONResponse({"status": "ready", "model": d.label if d else None, **counts, "warnings": svc.host.warnings})


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
def prometheus(svc: Svc) -> str:
    d = svc.host.deployed
    cache = svc.host.answers
    return svc.metrics.render({"penchant_active_model_version": d.version if d else 0,
                               "penchant_answer_cache_hits": cache.hits, "penchant_answer_cache_misses": cache.misses,
                               **{f"penchant_ann_{k}_answers": v for k, v in svc.host.ann_counts.items()},
                               **{f"penchant_stored_{k}": v for k, v in svc.store.counts().items()}})


@router.get("/ui", tags=["ui"], response_class=HTMLResponse, include_in_schema=False)
def ui(svc: Svc) -> str:
    from penchant.serve.ui import page

    return page(list(svc.settings.feedback_types))
