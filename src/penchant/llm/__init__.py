"""Language models: one client for OpenAI-compatible endpoints, the embedded SmolLM2 behind a local
server, and the preference capabilities built on them (rating prediction, user summaries, learning
from edits, text conversations, preference following and judging)."""

from penchant.llm.client import Completion, Endpoint, LLMAnswerError, LLMClient, LLMError, Usage

__all__ = ["Completion", "Endpoint", "LLMAnswerError", "LLMClient", "LLMError", "Usage"]
