"""Model versions: train from the store, import an artefact fitted offline, list, activate, roll back."""

from __future__ import annotations

import contextlib
import pathlib
import tempfile
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from penchant.errors import ConfigError, DataError
from penchant.serve.deps import Svc, VersionId, admin, read
from penchant.serve.schemas import TrainIn, Version

router = APIRouter()


def public(v: dict) -> Version:
    return Version(**{k: v[k] for k in Version.model_fields})


@router.post("/v1/models/train", tags=["models"], dependencies=[admin], status_code=202)
def train(svc: Svc, body: TrainIn) -> Version:
    """Start training on everything stored (a background job); poll the version for progress."""
    try:
        version = svc.host.start_training(body.model, body.params, body.activate)
    except (ConfigError, DataError) as e:  # an unknown model or parameter, a bad value: penchant's own errors only
        raise HTTPException(422, f"body: {e}") from None
    return public(svc.store.version(version))


@contextlib.asynccontextmanager
async def uploaded(request: Request, svc: Svc) -> AsyncIterator[pathlib.Path]:
    """An artefact sent as the raw request body, in a temporary file of the data folder while the
    block runs (413 over ``max_model_bytes``); a DataError in the block is a 422 naming the body
    (the temporary file's name means nothing to the caller)."""
    body = await request.body()
    if len(body) > svc.settings.max_model_bytes:
        raise HTTPException(413, f"request body over {svc.settings.max_model_bytes} bytes")
    with tempfile.NamedTemporaryFile(dir=svc.settings.data_dir, suffix=".npz") as f:
        f.write(body)
        f.flush()
        try:
            yield pathlib.Path(f.name)
        except DataError as e:
            raise HTTPException(422, f"body: {e.message}") from None


@router.post("/v1/models/import", tags=["models"], dependencies=[admin], status_code=201)
async def import_model(request: Request, svc: Svc, activate: bool = False) -> Version:
    """A model fitted offline (the artefact file written by `penchant fit` or `prefs fit`, as the
    raw request body) becomes a new ready version, served without retraining."""
    async with uploaded(request, svc) as path:
        version = await run_in_threadpool(svc.host.import_model, path, activate)
    return public(svc.store.version(version))


@router.get("/v1/models", tags=["models"], dependencies=[read])
def versions(svc: Svc) -> list[Version]:
    return [public(v) for v in svc.store.versions()]


@router.get("/v1/models/{version}", tags=["models"], dependencies=[read])
def version(svc: Svc, version: VersionId) -> Version:
    v = svc.store.version(version)
    if v is None:
        raise HTTPException(404, f"no model version {version}")
    return public(v)


@router.post("/v1/models/{version}/activate", tags=["models"], dependencies=[admin])
def activate(svc: Svc, version: VersionId) -> Version:
    svc.host.activate(version)
    return public(svc.store.version(version))


@router.post("/v1/models/rollback", tags=["models"], dependencies=[admin])
def rollback(svc: Svc) -> Version:
    return public(svc.store.version(svc.host.rollback().version))
