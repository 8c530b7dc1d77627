"""Conversations over HTTP: start, answer, read; the policies: list, train, import."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from penchant.serve.deps import IdPath, Svc, admin, read, write
from penchant.serve.routes.models import uploaded
from penchant.serve.schemas import AnswerIn, ConversationIn, PolicyName, PolicyTrainIn

router = APIRouter()


@router.post("/v1/conversations", tags=["conversations"], dependencies=[write], status_code=201)
def start_conversation(svc: Svc, body: ConversationIn) -> dict:
    """Start a conversation (for a known user, their learned taste shapes it); the answer holds
    the first move: a question about item categories/attributes (all, or the ``attributes`` named),
    or a list of items."""
    return svc.talks.start(body.user_id, body.policy, body.opening, body.attributes, body.noun)


@router.post("/v1/conversations/{conversation_id}/answer", tags=["conversations"], dependencies=[write])
def answer_conversation(svc: Svc, conversation_id: IdPath, body: AnswerIn) -> dict:
    return svc.talks.answer(conversation_id, body.model_dump())


@router.get("/v1/conversations/{conversation_id}", tags=["conversations"], dependencies=[read])
def get_conversation(svc: Svc, conversation_id: IdPath) -> dict:
    return svc.talks.get(conversation_id)


@router.get("/v1/conversation-policies", tags=["conversations"], dependencies=[read])
def list_policies(svc: Svc) -> list[dict]:
    """Every conversation policy a person can talk to and whether it can be used with the deployed
    version: one that acts untrained always; a learned one once trained (or imported) for that
    version, with its metrics on episodes from the store."""
    return svc.talks.learned.statuses()


@router.post("/v1/conversation-policies/{name}/train", tags=["conversations"], dependencies=[admin], status_code=202)
def train_policy(svc: Svc, name: PolicyName, body: PolicyTrainIn | None = None) -> dict:
    """Train a learned policy for the deployed version from the stored feedback (a background job;
    poll ``GET /v1/conversation-policies``)."""
    body = body or PolicyTrainIn()
    return svc.talks.train_policy(name, epochs=body.epochs, episodes=body.episodes, params=body.params)


@router.post("/v1/conversation-policies/import", tags=["conversations"], dependencies=[admin], status_code=201)
async def import_policy(request: Request, svc: Svc) -> dict:
    """A learned policy trained offline (the artefact written by `penchant converse evaluate ...
    --save FILE`, as the raw request body) serves the deployed version: the policy is the one the
    file names, and it must have been trained over the deployed version's attribute graph."""
    async with uploaded(request, svc) as path:
        return await run_in_threadpool(svc.talks.import_policy, path)
