"""Browsing the catalogue and the users: one item, the popular and the latest items (optionally
in a category), and a user's neighbours (the users whose taste is closest)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from penchant.serve.deps import IdPath, Svc, read
from penchant.serve.schemas import ItemOut, Neighbours, Recommendations, Text

router = APIRouter()

K = Annotated[int, Query(ge=1, le=1000)]
Category = Annotated[Text | None, Query(min_length=1, max_length=255)]


@router.get("/v1/items/popular", tags=["items"], dependencies=[read])
def popular(svc: Svc, k: K = 10, category: Category = None,
            days: Annotated[float | None, Query(gt=0, le=36500, description="only events of the last DAYS days")] = None
            ) -> Recommendations:
    """The items with the most positive events (all time, or the last ``days``); ``score`` is the count."""
    return Recommendations(**svc.host.popular(k, category=category, days=days))


@router.get("/v1/items/latest", tags=["items"], dependencies=[read])
def latest(svc: Svc, k: K = 10, category: Category = None) -> list[ItemOut]:
    """The newest items by their ``timestamp`` (when published; else when they were stored)."""
    found: list[dict] = []
    before = None
    cats = svc.host.categories() if category is not None else None
    size = k if cats is None else max(k, 500)  # with a filter, pages until k items of the category
    while len(found) < k:
        page = svc.store.latest_items(before, limit=size)
        found += [r for r in page if cats is None or category in cats.get(r["id"], ())]
        if len(page) < size:
            break
        before = page[-1]["time"]
    return [ItemOut.of(r | {"timestamp": r["time"]}) for r in found[:k]]


@router.get("/v1/items/{item_id}", tags=["items"], dependencies=[read])
def get_item(svc: Svc, item_id: IdPath) -> ItemOut:
    rows = svc.store.get_items([item_id])
    if not rows:
        raise HTTPException(404, f"no item {item_id!r}")
    return ItemOut.of(rows[0])


@router.get("/v1/users/{user_id}/neighbours", tags=["users"], dependencies=[read])
def neighbours(svc: Svc, user_id: IdPath, k: K = 10) -> Neighbours:
    """The ``k`` users whose interactions are most like this user's (cosine over the deployed
    model's training data; a user the model has not seen is compared by their stored events)."""
    return Neighbours(**svc.host.neighbours(user_id, k))
