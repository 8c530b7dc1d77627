"""Rating prediction by a language model, zero- or few-shot, from the user's rated history as text
(after Kang et al. 2023, "Do LLMs Understand User Preferences? Evaluating LLMs on User Rating
Prediction").

Nothing is learned: ``fit`` keeps each user's training ratings and the items' descriptions (title,
then the item file's attributes: year, genres). To predict ``r̂_ui`` the model is shown u's
``history`` most recent ratings as ``title (year; genres): r`` lines and asked for i's rating as JSON.
Few-shot (``shots = n``) holds out u's n most recent ratings from the listed history and shows them
first as solved questions (a user turn asking, an assistant turn answering), so the model sees the
task answered for this very user before it answers.

``mode``: ``answer`` takes the integer the model writes; ``expected`` reads the probabilities of the
digits 1-5 at the rating's position (OpenAI ``top_logprobs``) and predicts their mean, a continuous
rating (the endpoint must return logprobs: vLLM, llama.cpp's server, the embedded server and
OpenAI's API do). An answer that is not a rating after one corrective retry is an error, or with
``on_bad_answer = "mean"`` the user's mean training rating, counted in ``bad_answers_``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.llm.client import LLMAnswerError, LLMClient, Messages
from penchant.models.base import Validator
from penchant.models.rating import RatingModel, _ratings
from penchant.models.registry import register

SYSTEM = ("You predict how much a user will like a movie, on a scale from 1 (hated it) to 5 (loved it), "
          "from the movies they rated before.")


def item_lines(ds: Dataset, max_values: int = 4) -> np.ndarray:
    """One short description per item: ``title (v1, v2, ...)`` from the item text and the item
    file's attributes (knowledge-graph relations left out); str array (n_items,)."""
    names = [a for a in ds.item_attributes if not a.startswith("kg:")]
    out = []
    for i in range(ds.n_items):
        title = str(ds.item_text[i]) if ds.item_text is not None and str(ds.item_text[i]) else f"item {ds.item_ids[i]}"
        values = [v for a in names for v in ds.item_attributes[a].of(i)[:max_values] if v not in ("unknown", "unkonwn")]
        out.append(f"{title} ({', '.join(values)})" if values else title)
    return np.array(out, dtype=str)


def _scale_schema(low: int, high: int) -> dict[str, Any]:
    return {"type": "object", "properties": {"rating": {"type": "integer", "minimum": low, "maximum": high}},
            "required": ["rating"], "additionalProperties": False}


@register
class LLMRating(RatingModel):
    """A language model predicts each rating from the user's rated history written as text.

    Args:
        shots: the user's most recent ratings shown first as answered questions (0: zero-shot).
        history: at most this many further recent ratings listed in the prompt.
        mode: ``answer`` (the integer written) or ``expected`` (mean of the digits' probabilities).
        on_bad_answer: ``error`` or ``mean`` (the user's training mean, counted).
        concurrency: requests in flight at once.
        seed: the generation seed sent with every request (temperature is 0).
    """

    name = "llmrating"
    summary = "a language model rates from the user's history as text, zero- or few-shot (PENCHANT_LLM_URL or embedded)"

    def __init__(self, *, shots: int = 0, history: int = 20, mode: str = "answer", on_bad_answer: str = "error",
                 concurrency: int = 4, seed: int = DEFAULT_SEED) -> None:
        if shots < 0 or history < 1:
            raise ConfigError(f"shots ≥ 0 and history ≥ 1 are required, got shots={shots}, history={history}")
        if mode not in ("answer", "expected"):
            raise ConfigError(f"mode must be answer or expected, not {mode!r}")
        if on_bad_answer not in ("error", "mean"):
            raise ConfigError(f"on_bad_answer must be error or mean, not {on_bad_answer!r}")
        self.shots, self.history, self.mode, self.on_bad_answer = shots, history, mode, on_bad_answer
        self.concurrency, self.seed = concurrency, seed
        self.client: LLMClient | None = None
        self.bad_answers_ = 0

    def _llm(self) -> LLMClient:
        if self.client is None:
            self.client = LLMClient(concurrency=self.concurrency, seed=self.seed, max_tokens=12)
        return self.client

    # -- fit: keep the histories -----------------------------------------------------------------
    def check_data(self, train: Dataset) -> None:
        from penchant.embed.items import require_item_words

        super().check_data(train)
        require_item_words(train)

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        users, items, ratings = _ratings(train)
        order = train.time_order() if train.timestamps is not None else np.arange(len(users))
        rank = np.empty(len(users), np.float32)
        rank[order] = np.arange(1, len(users) + 1, dtype=np.float32)  # 1 = oldest; stored values must be > 0
        self.ratings_ = sp.csr_matrix((ratings, (users, items)), shape=(train.n_users, train.n_items))
        self.recency_ = sp.csr_matrix((rank, (users, items)), shape=(train.n_users, train.n_items))
        self.ratings_.sort_indices()
        self.recency_.sort_indices()  # the same pattern in the same order: one index array serves both
        self.items_ = item_lines(train)
        self.scale_ = (int(math.floor(ratings.min())), int(math.ceil(ratings.max())))
        self.global_mean_ = float(ratings.mean())

    def _state(self) -> dict[str, np.ndarray]:
        return {"r_data": self.ratings_.data, "r_indices": self.ratings_.indices, "r_indptr": self.ratings_.indptr,
                "t_data": self.recency_.data, "items": self.items_, "scale": np.array(self.scale_),
                "global_mean": np.array(self.global_mean_)}

    def _load_state(self, a: dict[str, np.ndarray]) -> None:
        shape = (len(a["r_indptr"]) - 1, len(a["items"]))
        self.ratings_ = sp.csr_matrix((a["r_data"], a["r_indices"], a["r_indptr"]), shape=shape)
        self.recency_ = sp.csr_matrix((a["t_data"], a["r_indices"], a["r_indptr"]), shape=shape)
        self.items_ = a["items"].astype(str)
        self.scale_ = tuple(int(v) for v in a["scale"])
        self.global_mean_ = float(a["global_mean"])

    # -- prompts -----------------------------------------------------------------------------------
    def _recent(self, user: int, exclude: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's rated items and ratings, oldest first (``exclude`` left out)."""
        lo, hi = self.ratings_.indptr[user], self.ratings_.indptr[user + 1]
        items, ratings, when = self.ratings_.indices[lo:hi], self.ratings_.data[lo:hi], self.recency_.data[lo:hi]
        keep = items != exclude
        order = np.argsort(when[keep], kind="stable")
        return items[keep][order], ratings[keep][order]

    def _question(self, item: int) -> str:
        low, high = self.scale_
        return (f"How would this user rate {self.items_[item]}? Answer with JSON like {{\"rating\": n}}, "
                f"n an integer from {low} to {high}.")

    def messages(self, user: int, item: int) -> Messages:
        """The chat for predicting (user, item): history, then ``shots`` answered questions, then the question."""
        items, ratings = self._recent(user, item)
        shots = min(self.shots, max(len(items) - 1, 0))
        listed = slice(max(0, len(items) - shots - self.history), len(items) - shots)
        lines = "\n".join(f"- {self.items_[i]}: {r:g}" for i, r in zip(items[listed], ratings[listed]))
        intro = f"Movies this user rated, oldest first:\n{lines}" if lines else "This user has rated no movies yet."
        chat: Messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": intro + "\n\n" +
                          (self._question(items[len(items) - shots]) if shots else self._question(item))}]
        for k in range(shots):
            pos = len(items) - shots + k
            chat.append({"role": "assistant", "content": f'{{"rating": {int(round(float(ratings[pos])))}}}'})
            chat.append({"role": "user", "content": self._question(items[pos + 1]) if k + 1 < shots else self._question(item)})
        return chat

    # -- prediction --------------------------------------------------------------------------------
    def _predict_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        llm = self._llm()
        schema = _scale_schema(*self.scale_)
        order = np.lexsort((items, users))  # a user's questions together: the endpoint reuses the history's prefix
        pairs = list(zip(users[order].tolist(), items[order].tolist()))
        out = np.empty(len(pairs), np.float32)
        out[order] = llm.map(lambda p: self._one(llm, schema, *p), pairs)
        return out

    def _one(self, llm: LLMClient, schema: dict[str, Any], user: int, item: int) -> float:
        chat = self.messages(user, item)
        try:
            if self.mode == "answer":
                return float(llm.chat_json(chat, schema)["rating"])
            return self._expected(llm.complete(chat, schema=schema, top_logprobs=10), llm)
        except LLMAnswerError:
            if self.on_bad_answer == "error":
                raise
            self.bad_answers_ += 1
            row = self.ratings_.data[self.ratings_.indptr[user]:self.ratings_.indptr[user + 1]]
            return float(row.mean()) if len(row) else self.global_mean_

    def _expected(self, answer, llm: LLMClient) -> float:
        """Mean rating under the answer's probabilities of the scale's digits, at the first digit."""
        low, high = self.scale_
        digits = {str(d): d for d in range(low, high + 1)}
        for step in answer.logprobs or ():
            if step["token"].strip() in digits:
                probs = {}
                for alt in step["top_logprobs"] + [step]:
                    d = alt["token"].strip()
                    if d in digits:
                        probs[digits[d]] = math.exp(alt["logprob"])
                total = sum(probs.values())
                return sum(d * p for d, p in probs.items()) / total
        raise LLMAnswerError(f"{llm.model} wrote no rating digit", answer=answer.text,
                             expected=f'{{"rating": n}} with n from {low} to {high}')

    def diagnostics(self) -> dict[str, Any]:
        """Requests sent, answers from the cache, corrective retries, tokens, and bad answers replaced."""
        used = self.client.usage.to_json() if self.client is not None else {}
        return {"llm": {"model": self.client.model if self.client is not None else None, **used},
                "bad_answers": self.bad_answers_}

    def _score(self, users: np.ndarray) -> np.ndarray:
        """Every item's predicted rating: one request per (user, item), so n_items requests a user."""
        grid_u = np.repeat(users, self.n_items_)
        grid_i = np.tile(np.arange(self.n_items_), len(users))
        return self._predict_pairs(grid_u, grid_i).reshape(len(users), self.n_items_)
