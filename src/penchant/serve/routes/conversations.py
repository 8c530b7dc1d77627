"""Conversations over HTTP: start, answer, read."""

from __future__ import annotations

from fastapi import APIRouter

from penchant.serve.deps import IdPath, Svc, read, write
from penchant.serve.schemas import AnswerIn, ConversationIn

router = APIRouter()


@router.post("/v1/conversations", tags=["conversations"], dependencies=[write], status_code=201)
def start_conversation(svc: Svc, body: ConversationIn) -> dict:
    """Start a conversation (for a known user, their learned taste shapes it); the answer holds
    the first move: a question about item categories/attributes, or a list of items."""
    return svc.talks.start(body.user_id, body.policy, body.opening)


@router.post("/v1/conversations/{conversation_id}/answer", tags=["conversations"], dependencies=[write])
def answer_conversation(svc: Svc, conversation_id: IdPath, body: AnswerIn) -> dict:
    return svc.talks.answer(conversation_id, body.model_dump())


@router.get("/v1/conversations/{conversation_id}", tags=["conversations"], dependencies=[read])
def get_conversation(svc: Svc, conversation_id: IdPath) -> dict:
    return svc.talks.get(conversation_id)
