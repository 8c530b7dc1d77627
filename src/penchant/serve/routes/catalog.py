"""Users and items: upsert, read, list, forget."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import Field

from penchant.serve.deps import IdPath, Svc, admin, read, write
from penchant.serve.schemas import IdsIn, ItemIn, ItemOut, Text, Upserted, UserIn, UserOut
from penchant.serve.store import MAX_ID_LENGTH

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
After = Annotated[Text | None, Query(min_length=1, max_length=MAX_ID_LENGTH, description="the last id of the previous page")]


def _next_link(request: Request, response: Response, rows: list[dict], limit: int) -> None:
    """``Link: <…?after=LAST&limit=N>; rel="next"`` when the page is full (RFC 8288, as GitHub's API)."""
    if len(rows) == limit:
        url = request.url.remove_query_params("after").include_query_params(after=rows[-1]["id"], limit=limit)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'


@router.get("/v1/users", tags=["users"], dependencies=[read])
def list_users(request: Request, response: Response, svc: Svc, limit: Limit = 100, after: After = None) -> list[UserOut]:
    """Users in id order, a page at a time: follow the ``Link`` header's ``rel="next"`` (or pass
    the last id as ``after``) until a page is shorter than ``limit``."""
    rows = svc.store.page("users", after, limit)
    _next_link(request, response, rows, limit)
    return [UserOut(id=r["id"], attributes=r["attributes"] or {}) for r in rows]


@router.get("/v1/users/{user_id}", tags=["users"], dependencies=[read])
def get_user(svc: Svc, user_id: IdPath) -> UserOut:
    """A user's record and how many events they have."""
    row = svc.store.get_user(user_id)
    if row is None:
        raise HTTPException(404, f"no user {user_id!r}")
    return UserOut(id=row["id"], attributes=row["attributes"] or {}, events=svc.store.event_count(user_id))


@router.get("/v1/items", tags=["items"], dependencies=[read])
def get_items(request: Request, response: Response, svc: Svc,
              ids: Annotated[list[Annotated[Text, Field(min_length=1, max_length=MAX_ID_LENGTH)]] | None, Query(max_length=1000)] = None,
              limit: Limit = 100, after: After = None) -> list[ItemOut]:
    """The stored records of the given ``ids`` (unknown ids are left out); without ``ids``, every
    item in id order a page at a time (``Link`` header, as ``GET /v1/users``)."""
    if ids is not None:
        return [ItemOut.of(r) for r in svc.store.get_items(ids)]
    rows = svc.store.page("items", after, limit)
    _next_link(request, response, rows, limit)
    return [ItemOut.of(r) for r in rows]


@router.put("/v1/users", tags=["users"], dependencies=[write])
def upsert_users(svc: Svc, rows: list[UserIn]) -> Upserted:
    svc.batch(rows)
    return Upserted(upserted=svc.store.upsert_users([r.model_dump() for r in rows]))


@router.delete("/v1/users/{user_id}", tags=["users"], dependencies=[admin])
def delete_user(svc: Svc, user_id: IdPath) -> dict:
    """Forget a user: their record and every event of theirs (the right to be forgotten)."""
    out = svc.store.delete_user(user_id)
    svc.host.answers.user_changed([user_id])
    if not out["user"] and not out["events"]:
        raise HTTPException(404, f"no user {user_id!r}")
    return out


@router.post("/v1/users/delete", tags=["users"], dependencies=[admin])
def delete_users(svc: Svc, body: IdsIn) -> dict:
    """Forget many users at once (one transaction); counts of what was removed."""
    out = svc.store.delete_users(body.ids)
    svc.host.answers.user_changed(body.ids)
    return out


@router.put("/v1/items", tags=["items"], dependencies=[write])
def upsert_items(svc: Svc, rows: list[ItemIn]) -> Upserted:
    svc.batch(rows)
    n = svc.store.upsert_items([r.model_dump() for r in rows])
    svc.host.items_changed()
    svc.talks.items_changed()
    return Upserted(upserted=n)


@router.delete("/v1/items/{item_id}", tags=["items"], dependencies=[admin])
def delete_item(svc: Svc, item_id: IdPath) -> dict:
    out = svc.store.delete_item(item_id)
    if not out["item"] and not out["events"]:
        raise HTTPException(404, f"no item {item_id!r}")
    svc.host.items_changed()
    return out


@router.post("/v1/items/delete", tags=["items"], dependencies=[admin])
def delete_items(svc: Svc, body: IdsIn) -> dict:
    """Forget many items at once (one transaction); counts of what was removed."""
    out = svc.store.delete_items(body.ids)
    svc.host.items_changed()
    svc.talks.items_changed()
    return out
