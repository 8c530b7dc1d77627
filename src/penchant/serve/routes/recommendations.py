"""Answers: a user's top k, an anonymous session's, similar items, and options ranked for a user.
Every top k goes through :func:`penchant.models.ranking.top_k` inside the model host."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from penchant.serve.deps import IdPath, read
from penchant.serve.schemas import CompareIn, Recommendations, ServedList, SessionIn, Text

router = APIRouter()


@router.get("/v1/users/{user_id}/recommendations", tags=["recommendations"], dependencies=[read],
            response_model=ServedList)
async def recommendations(request: Request, user_id: IdPath, k: Annotated[int, Query(ge=1, le=1000)] = 10,
                          category: Annotated[Text | None, Query(min_length=1, max_length=255)] = None,
                          exclude: Annotated[list[Text] | None, Query()] = None,
                          exclude_seen: bool = True,
                          epsilon: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
                          explore: Literal["epsilon-greedy", "thompson"] | None = None) -> JSONResponse:
    """Top k for a user: seen items left out unless ``exclude_seen=false``; ``category``
    filters; a user the model has not seen gets a fold-in from their events (models that can) or
    the popular items; ``model`` says which answered. ``list_id`` names this served list and each
    item's ``propensity`` is its probability of being shown at its slot; ``epsilon`` (default: the
    service's ``exploration_epsilon``) makes each slot show a random eligible item with that chance.
    ``explore=thompson`` ranks by one draw from the model's posterior of the user's vector instead
    (als; settings ``thompson_noise``, ``thompson_draws``), its propensities Monte-Carlo shares;
    ``explore=epsilon-greedy`` (the default) is the ε-greedy list."""
    # the hot path: the host's dict goes out as it is (its shape is Recommendations, tested)
    host = request.app.state.service.host
    return JSONResponse(host.recommend(user_id, k, category=category, exclude=exclude, exclude_seen=exclude_seen,
                                       epsilon=epsilon, explore=explore))


@router.post("/v1/recommendations", tags=["recommendations"], dependencies=[read])
def session_recommendations(request: Request, body: SessionIn) -> Recommendations:
    """Top k for an anonymous session (recent items, oldest first) with a deployed sequential
    model (e.g. ``sasrec``, ``markov``); other models fold the items in or fall back to
    popularity. ``unknown_items`` counts ids the model does not know (skipped)."""
    host = request.app.state.service.host
    return Recommendations(**host.recommend_session(body.items, body.k, exclude_seen=body.exclude_seen))


@router.get("/v1/items/{item_id}/similar", tags=["recommendations"], dependencies=[read])
def similar(request: Request, item_id: IdPath, k: Annotated[int, Query(ge=1, le=1000)] = 10) -> Recommendations:
    return Recommendations(**request.app.state.service.host.similar(item_id, k))


@router.post("/v1/compare", tags=["recommendations"], dependencies=[read])
def compare(request: Request, body: CompareIn) -> dict:
    """Rank options for a user with the deployed preference model: each option's mean chance
    of beating the others, and its utility where the model has one."""
    return request.app.state.service.host.compare(body.user_id, body.options)
