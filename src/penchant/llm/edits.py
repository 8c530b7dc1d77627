"""Learning a writer's latent preference from the edits they make to drafts (CIPHER: Gao et al. 2024,
"Aligning LLM Agents by Learning Latent Preference from User Edits").

The task: an agent drafts a short note for each context (here: recommending a film); a simulated
writer whose preference depends on the kind of context (a comedy note in bullet points ending with
a question, a drama note concise and formal, ...) edits the draft into what they want. The agent's
cost is the Levenshtein distance between its draft and the edit; nothing else is said.

* ``none``: drafts with no preference (the cost the writer pays without learning).
* ``oracle``: drafts given the writer's true preference for the context (the floor the drafting
  model allows).
* ``cipher``: after each edit the language model infers which preferences explain it (chosen from a
  vocabulary of preference phrases, as JSON); the inferred preference is stored with the context's
  sentence embedding. For a new context the ``k`` nearest stored contexts are retrieved and the
  preferences most of them name are given to the drafting model. A draft the writer leaves alone
  stores the preference it was drafted with.

The writer edits by rules (:data:`PREFERENCES`), so its edits are exact and reproducible.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from penchant import DEFAULT_SEED
from penchant.llm.client import LLMClient

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_CONTRACTIONS = [(r"\bcan't\b", "cannot"), (r"\bwon't\b", "will not"), (r"n't\b", " not"), (r"'re\b", " are"),
                 (r"'ll\b", " will"), (r"'ve\b", " have"), (r"\bI'm\b", "I am"), (r"\b([Ii]t|[Tt]hat|[Tt]here)'s\b", r"\1 is"),
                 (r"'d\b", " would")]


def sentences(text: str) -> list[str]:
    """The text's sentences (list markers and blank lines dropped)."""
    flat = " ".join(line.strip().lstrip("-*• ").strip() for line in text.strip().splitlines() if line.strip())
    return [s.strip() for s in _SENTENCE.split(flat) if s.strip()]


def _bullets(text: str) -> str:
    return "\n".join(f"- {s}" for s in sentences(text))


def _concise(text: str) -> str:
    return " ".join(sentences(text)[:2])


def _formal(text: str) -> str:
    for pattern, repl in _CONTRACTIONS:
        text = re.sub(pattern, repl, text)
    return text.replace("!", ".")


def _question(text: str) -> str:
    text = text.rstrip()
    if text.endswith("?"):
        return text
    bulleted = text.startswith("- ") or "\n- " in text
    return f"{text}\n- Would you watch it?" if bulleted else f"{text} Would you watch it?"


#: name -> (what the drafting model is told, the writer's edit). Applied in this order.
PREFERENCES: dict[str, tuple[str, Callable[[str], str]]] = {
    "concise": ("be concise: at most two sentences", _concise),
    "formal": ("be formal: no contractions and no exclamation marks", _formal),
    "bullet points": ("write each sentence as a bullet point on its own line starting with '- '", _bullets),
    "ends with a question": ("end with a question to the reader", _question),
}
#: phrases the learner may name: the writer's four and four it never uses
VOCABULARY = list(PREFERENCES) + ["humorous", "detailed", "uses emojis", "first person"]

#: the writer's latent preference by the kind of film the note is about (the first genre that matches)
WRITER = {"Comedy": ("bullet points", "ends with a question"), "Drama": ("concise", "formal"),
          "Action": ("formal", "bullet points"), "Thriller": ("concise", "ends with a question")}


def edit(draft: str, preference: Sequence[str]) -> str:
    """The writer's edit of ``draft`` under ``preference`` (names of :data:`PREFERENCES`)."""
    text = draft.strip()
    for name, (_, apply) in PREFERENCES.items():
        if name in preference:
            text = apply(text)
    return text


def edit_cost(draft: str, edited: str) -> int:
    """Levenshtein distance in characters."""
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(draft.strip(), edited.strip()))


def describe(preference: Sequence[str]) -> str:
    """The instructions the drafting model is given for ``preference`` (unknown names as they are)."""
    return "; ".join(PREFERENCES[p][0] if p in PREFERENCES else p for p in preference)


@dataclass
class Context:
    """One drafting task: what to write, the kind of context, and the writer's preference for it."""

    text: str
    kind: str
    preference: tuple[str, ...]


def film_contexts(ds, n: int, seed: int = DEFAULT_SEED) -> list[Context]:
    """``n`` notes to draft about films of ``ds`` whose genres include one of :data:`WRITER`'s kinds,
    in a seeded order; ds needs titles (item text) and a genre attribute (``class`` or ``genre``)."""
    genres = next((ds.item_attributes[a] for a in ("class", "genre", "genres") if a in ds.item_attributes), None)
    if genres is None or ds.item_text is None:
        from penchant.errors import DataError

        raise DataError(f"{ds.name} has no item titles and genres", expected="item text and a class/genre attribute")
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(ds.n_items):
        kinds = [k for k in WRITER if k in genres.of(int(i))]
        if kinds:
            title = str(ds.item_text[i])
            out.append(Context(f"Write a short note recommending the film {title}, a {kinds[0].lower()}.", kinds[0],
                               WRITER[kinds[0]]))
        if len(out) == n:
            break
    return out


INFER_SCHEMA = {"type": "object", "properties": {"preferences": {"type": "array", "items": {"enum": VOCABULARY},
                                                                 "minItems": 1, "maxItems": 3}},
                "required": ["preferences"], "additionalProperties": False}


@dataclass
class EditLearner:
    """The agent: drafts, and (for ``cipher``) learns from edits.

    Args:
        kind: ``none``, ``oracle`` or ``cipher``.
        k: contexts retrieved (cipher).
        client: the language model; encoder: sentence encoder for contexts (cipher).
        max_tokens: the longest draft, in tokens.
    """

    kind: str
    client: LLMClient
    k: int = 3
    encoder: Any = None
    max_tokens: int = 100
    memory_keys: list[np.ndarray] = field(default_factory=list)
    memory: list[tuple[str, ...]] = field(default_factory=list)

    def preference_for(self, context: Context) -> tuple[str, ...]:
        if self.kind == "none":
            return ()
        if self.kind == "oracle":
            return context.preference
        if not self.memory:
            return ()
        key = self._key(context)
        sims = np.stack(self.memory_keys) @ key
        near = np.argsort(-sims, kind="stable")[:self.k]
        votes = Counter(p for j in near for p in self.memory[j])
        return tuple(p for p in VOCABULARY if votes[p] * 2 > len(near))  # named by most of them

    def draft(self, context: Context, preference: Sequence[str]) -> str:
        ask = context.text + " Two or three sentences."
        if preference:
            ask += f" Follow the reader's preferences: {describe(preference)}."
        return self.client.chat([{"role": "system", "content": "You write short, friendly film notes."},
                                 {"role": "user", "content": ask}], max_tokens=self.max_tokens).strip()

    def learn(self, context: Context, draft: str, edited: str, used: tuple[str, ...]) -> tuple[str, ...]:
        if self.kind != "cipher":
            return ()
        if edit_cost(draft, edited) == 0:
            inferred = used
        else:
            # the choices in a fresh order each time: a model that names the first ones it reads
            # must not be credited with the writer's phrases for where they stand in the list
            choices = [VOCABULARY[j] for j in np.random.default_rng(len(self.memory)).permutation(len(VOCABULARY))]
            answer = self.client.chat_json(
                [{"role": "system", "content": "You work out what a writer prefers from how they edited a draft."},
                 {"role": "user", "content": f"Draft:\n{draft}\n\nThe writer's edit:\n{edited}\n\n"
                                             f"Which preferences explain the edit? Choose from: {', '.join(choices)}. "
                                             'Answer with JSON: {"preferences": [...]}.'}], INFER_SCHEMA, max_tokens=60)
            inferred = tuple(dict.fromkeys(answer["preferences"]))
        self.memory_keys.append(self._key(context))
        self.memory.append(inferred)
        return inferred

    def _key(self, context: Context) -> np.ndarray:
        if self.encoder is None:
            from penchant.embed.encoder import SentenceEncoder

            self.encoder = SentenceEncoder()
        return self.encoder.encode([context.text])[0]


def run_edits(contexts: Sequence[Context], learner: EditLearner, *,
              progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Each round: draft, the writer's edit, its cost, what was used and (cipher) inferred."""
    rounds = []
    for t, context in enumerate(contexts):
        used = learner.preference_for(context)
        draft = learner.draft(context, used)
        edited = edit(draft, context.preference)
        cost = edit_cost(draft, edited)
        inferred = learner.learn(context, draft, edited, used)
        rounds.append({"round": t, "kind": context.kind, "cost": cost, "used": list(used), "inferred": list(inferred),
                       "true": list(context.preference),
                       "used_matches_true": set(used) == set(context.preference)})
        if progress:
            progress(t + 1)
    return rounds


def curve(rounds: Sequence[dict[str, Any]], window: int = 10) -> dict[str, Any]:
    """Summary of one learner's run: mean cost overall, in the first and last ``window`` rounds, the
    running mean by round, and the share of rounds drafted with exactly the true preference."""
    cost = np.array([r["cost"] for r in rounds], np.float64)
    return {"rounds": len(rounds), "mean_cost": float(cost.mean()), "first_cost": float(cost[:window].mean()),
            "last_cost": float(cost[-window:].mean()),
            "cumulative_mean": (np.cumsum(cost) / np.arange(1, len(cost) + 1)).round(2).tolist(),
            "true_preference_used": float(np.mean([r["used_matches_true"] for r in rounds]))}
