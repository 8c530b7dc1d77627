"""Users and items: upsert, read, forget."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import Field

from penchant.serve.deps import IdPath, Svc, admin, read, write
from penchant.serve.schemas import IdsIn, ItemIn, ItemOut, Upserted, UserIn

router = APIRouter()


@router.get("/v1/items", tags=["items"], dependencies=[read])
def get_items(svc: Svc, ids: Annotated[list[Annotated[str, Field(min_length=1, max_length=255)]], Query(max_length=1000)]) -> list[ItemOut]:
    """The stored records of the given items (unknown ids are left out)."""
    return [ItemOut(**{k: r[k] for k in ItemOut.model_fields}) for r in svc.store.get_items(ids)]


@router.put("/v1/users", tags=["users"], dependencies=[write])
def upsert_users(svc: Svc, rows: list[UserIn]) -> Upserted:
    svc.batch(rows)
    return Upserted(upserted=svc.store.upsert_users([r.model_dump() for r in rows]))


@router.delete("/v1/users/{user_id}", tags=["users"], dependencies=[admin])
def delete_user(svc: Svc, user_id: IdPath) -> dict:
    """Forget a user: their record and every event of theirs (the right to be forgotten)."""
    out = svc.store.delete_user(user_id)
    if not out["user"] and not out["events"]:
        raise HTTPException(404, f"no user {user_id!r}")
    return out


@router.post("/v1/users/delete", tags=["users"], dependencies=[admin])
def delete_users(svc: Svc, body: IdsIn) -> dict:
    """Forget many users at once; counts of what was removed."""
    done = [svc.store.delete_user(u) for u in body.ids]
    return {"users": sum(d["user"] for d in done), "events": sum(d["events"] for d in done)}


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
    done = [svc.store.delete_item(i) for i in body.ids]
    svc.host.items_changed()
    svc.talks.items_changed()
    return {"items": sum(d["item"] for d in done), "events": sum(d["events"] for d in done)}
