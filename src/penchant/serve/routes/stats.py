"""What the dashboard charts and shows: events over time (all, or one item's), and the service's
non-secret settings (feedback types with their meanings and weights)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from penchant.serve.deps import IdQuery, Svc, read

router = APIRouter()

BUCKETS = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0}


@router.get("/v1/stats/events", tags=["stats"], dependencies=[read])
def events_over_time(svc: Svc, bucket: Literal["hour", "day", "week"] = "day",
                     item_id: IdQuery = None) -> dict:
    """Events and distinct users per hour, day or week (UTC, by the events' timestamps), oldest
    first, buckets without events left out; one item's when ``item_id`` is given."""
    rows = svc.store.event_histogram(BUCKETS[bucket], item_id)
    return {"bucket": bucket, "item_id": item_id, "total": sum(r["events"] for r in rows), "buckets": rows}


@router.get("/v1/config", tags=["stats"], dependencies=[read])
def config(svc: Svc) -> dict:
    """The settings that shape answers (never the database URL or keys): feedback types with their
    meaning and weight, unknown-id handling, exploration, caching, the approximate index."""
    s = svc.settings
    return {"feedback_types": [{"type": t, "meaning": m, "weight": s.weight(t)} for t, m in s.feedback_types.items()],
            "unknown_users": s.unknown_users, "unknown_items": s.unknown_items,
            "exploration_epsilon": s.exploration_epsilon, "answer_cache_entries": s.answer_cache_entries,
            "ann_min_items": s.ann_min_items, "rate_limit_per_minute": s.rate_limit_per_minute,
            "retrain_every_s": s.retrain_every_s, "default_model": s.model, "default_params": s.model_params}
