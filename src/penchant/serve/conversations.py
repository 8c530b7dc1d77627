"""Conversations over HTTP: the library's :class:`~penchant.converse.session.Conversation`, kept in
the store between requests (its state is JSON), over an attribute graph built from the stored
items' categories and attributes, scored for the person by the deployed model.

The graph: every category, and every ``attribute: value`` of the items (list values give one
value each; an attribute whose values are all numbers is cut into quartile bands, as in
:func:`penchant.data.attribute_graph.number_bands`), held by at least 2 of the deployed model's
items. Each attribute is a type named as the items name it (``brand``), and questions say so
(``Do you want brand: Nike?``). A conversation may ask about some types only (``attributes``) and
name what the catalogue holds (``noun``); both are kept with it. A conversation is pinned to the
model version it started with; after an activation it must be started again (409).

Policies (:mod:`penchant.serve.learned_policies`): every registered one but the oracles. One that
acts untrained and has no artefact for the version is built afresh over the conversation's graph and
told the deployed version's item popularity; a learned one with an artefact (or one that cannot act
untrained) is the artefact's, over the whole graph it was trained over: a conversation that names
``attributes`` leaving some of the graph's types out is refused for it (422 naming ``attributes``:
what it learned is tied to the graph's values, and a subset is another graph).
"""

from __future__ import annotations

import dataclasses
import secrets

import numpy as np
import scipy.sparse as sp

from penchant.converse.policies import create_policy
from penchant.converse.session import Conversation
from penchant.converse.state import Scorer
from penchant.data.attribute_graph import AttributeGraph, number_bands
from penchant.errors import ConflictError, DataError, NotFoundError
from penchant.serve.host import Deployed, ModelHost
from penchant.serve.store import Store


def graph_from_items(rows: list[dict], item_ids: np.ndarray, min_items: int = 2) -> AttributeGraph:
    """Items × (category and attribute) values over ``item_ids`` (the deployed model's order)."""
    index = {str(i): k for k, i in enumerate(item_ids)}
    pairs: dict[tuple[str, str], list[int]] = {}
    numbers: dict[str, dict[int, float]] = {}
    worded: set[str] = set()  # attributes with a value that is not a number
    for r in rows:
        k = index.get(r["id"])
        if k is None:
            continue
        for c in r.get("categories") or []:
            pairs.setdefault(("category", str(c)), []).append(k)
        for name, value in (r.get("attributes") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                numbers.setdefault(str(name), {})[k] = float(value)
            else:
                worded.add(str(name))
            for v in value if isinstance(value, list) else [value]:
                pairs.setdefault((str(name), str(v)), []).append(k)
    for name, held in numbers.items():
        if name in worded:  # numbers mixed with words: each value as it is
            continue
        for key in [key for key in pairs if key[0] == name]:
            del pairs[key]
        x = np.full(len(item_ids), np.nan)
        x[list(held)] = list(held.values())
        labels, band = number_bands(x)
        for b, label in enumerate(labels):
            pairs[(name, str(label))] = np.flatnonzero(band == b).tolist()
    kept = sorted((key, rows_) for key, rows_ in pairs.items() if len(set(rows_)) >= min_items)
    if not kept:
        raise ConflictError("the stored items have no categories or attributes shared by two items to ask about")
    type_names = tuple(dict.fromkeys(kind for (kind, _), _ in kept))
    rows_i = [k for _, items in kept for k in items]
    cols = [j for j, (_, items) in enumerate(kept) for _ in items]
    matrix = sp.csr_matrix((np.ones(len(rows_i), bool), (rows_i, cols)), shape=(len(item_ids), len(kept)))
    return AttributeGraph(matrix, np.array([v for (_, v), _ in kept], dtype=object),
                          np.array([type_names.index(kind) for (kind, _), _ in kept], dtype=np.int64), type_names,
                          np.array([f"{kind}={v}" for (kind, v), _ in kept], dtype=object))


class ConversationHost:
    def __init__(self, store: Store, host: ModelHost) -> None:
        from penchant.serve.learned_policies import LearnedPolicies

        self.store, self.host = store, host
        self.learned = LearnedPolicies(store, host, host.models_dir.parent / "policies")
        self._graph: tuple[int, int, AttributeGraph, np.ndarray] | None = None
        self.items_generation = 0

    def items_changed(self) -> None:
        self.items_generation += 1

    def _cached(self, d: Deployed) -> tuple[int, int, AttributeGraph, np.ndarray]:
        """(version, items generation, graph, titles), rebuilt when either changes."""
        cached = self._graph
        if cached is None or cached[:2] != (d.version, self.items_generation):
            rows = self.store.get_items()
            titles = {r["id"]: r["title"] for r in rows}
            cached = self._graph = (d.version, self.items_generation, graph_from_items(rows, d.item_ids),
                                    np.array([titles.get(str(i)) or str(i) for i in d.item_ids], dtype=object))
        return cached

    def graph(self, d: Deployed) -> AttributeGraph:
        return self._cached(d)[2]

    def train_policy(self, name: str, *, epochs: int, episodes: int, params: dict | None = None) -> dict:
        """Start training a learned policy for the deployed version (see :mod:`penchant.serve.learned_policies`)."""
        self._deployed()
        return self.learned.start(name, lambda item_ids: graph_from_items(self.store.get_items(), item_ids),
                                  epochs=epochs, episodes=episodes, params=params)

    def import_policy(self, source) -> dict:
        """Serve a policy artefact trained offline for the deployed version (checked against its graph)."""
        d = self._deployed()
        return self.learned.install(source, self.graph(d), d.version)

    def _policy(self, d: Deployed, name: str, graph: AttributeGraph):
        """Policy ``name`` for a conversation over ``graph`` (the deployed graph, or the types it asks
        about): its artefact for the version when it has one or cannot act without, else a fresh one."""
        from penchant.serve.learned_policies import ready_untrained, served_names

        if name not in served_names():
            raise DataError(f"policy: {name!r} is not one a person can talk to; one of {', '.join(served_names())}")
        if not ready_untrained(name) or self.learned.has(name, d.version):
            full = self.graph(d)
            if graph.n_values != full.n_values:
                untrained = [n for n in served_names() if ready_untrained(n) and not self.learned.has(n, d.version)]
                raise DataError(f"attributes: policy {name} was trained over all the stored items' attributes "
                                f"({', '.join(full.type_names)}) and asks about them all; leave attributes out, or "
                                f"ask about some with {', '.join(untrained) or 'an untrained policy'}")
            return self.learned.policy(name, full, d.version)
        pol = create_policy(name, graph)
        pol.use_popularity(d.popularity)
        return pol

    def _graph_for(self, d: Deployed, attributes: list[str] | None, noun: str | None) -> AttributeGraph:
        """The deployed graph over the types ``attributes`` (all when None), worded with ``noun``."""
        graph = self.graph(d)
        if attributes is not None:
            try:
                graph = graph.subset(attributes)
            except DataError as e:
                raise DataError(f"attributes: {e.message}; the stored items' attributes shared by two items are "
                                f"{', '.join(graph.type_names)}") from None
        return graph if noun is None else dataclasses.replace(graph, noun=noun)

    def _session(self, d: Deployed, user_id: str | None, policy: str, state: dict | None,
                 attributes: list[str] | None = None, noun: str | None = None) -> Conversation:
        graph = self._graph_for(d, attributes, noun)
        events = self.store.user_items(user_id) if user_id else []
        scores, _ = self.host.user_scores(d, user_id or "", events)
        pol = self._policy(d, policy, graph)
        scorer = Scorer(graph, lambda _user: scores)
        titles = self._cached(d)[3]
        if state is not None:
            return Conversation.from_dict(state, graph, scorer, pol, titles)
        seen = [d.item_index[i] for i, _ in events if i in d.item_index]
        return Conversation(graph, scorer, pol, 0, exclude=np.array(seen, dtype=np.int64), titles=titles)

    def start(self, user_id: str | None, policy: str, opening: str | None, attributes: list[str] | None = None,
              noun: str | None = None) -> dict:
        """A new conversation; ``opening``: a value (``brand=Nike``, ``brand: Nike`` or ``Nike``);
        ``attributes``: the types to ask about (all by default); ``noun``: what the items are."""
        d = self._deployed()
        # an oracle or unknown name: 422; a learned policy not trained for this version: 409
        conv = self._session(d, user_id, policy, None, attributes, noun)
        if opening is not None:
            value = conv.graph.find(opening)
            if value is None:
                raise DataError(f"opening: no value {opening!r} to start from")
            conv.open(value)
        conv_id = secrets.token_hex(8)
        conv.ask()
        self.store.save_conversation(conv_id, user_id, self._state(conv, d, user_id, policy, attributes, noun), new=True)
        return self._view(conv_id, conv, d, user_id, policy)

    def answer(self, conv_id: str, reply: dict) -> dict:
        d, conv, user_id, policy, state = self._restore(conv_id)
        move = conv.pending
        if move is None:
            raise DataError("the conversation is over")
        if move.kind == "question":
            if reply.get("yes") is not None and len(move.values) == 1:
                conv.answer(bool(reply["yes"]))
            elif reply.get("values") is not None:
                conv.answer(list(reply["values"]))
            else:
                raise DataError("yes: a question is answered with yes (true/false) or values (the accepted ones)")
        else:
            item = reply.get("item")
            if item is not None and item not in d.item_index:
                raise DataError(f"item: {item!r} is not an item")
            conv.answer(None if item is None else d.item_index[item])
        conv.ask()
        self.store.save_conversation(conv_id, user_id, self._state(conv, d, user_id, policy, state.get("attributes"),
                                                                   state.get("noun")), new=False)
        return self._view(conv_id, conv, d, user_id, policy)

    def get(self, conv_id: str) -> dict:
        d, conv, user_id, policy, _ = self._restore(conv_id)
        return self._view(conv_id, conv, d, user_id, policy)

    def _deployed(self) -> Deployed:
        d = self.host.deployed
        if d is None:
            raise ConflictError("no model is deployed yet")
        return d

    def _restore(self, conv_id: str):
        row = self.store.conversation(conv_id)
        if row is None:
            raise NotFoundError(f"no conversation {conv_id!r}")
        state = row["state"]
        d = self._deployed()
        if state["version"] != d.version:
            raise ConflictError(f"the model changed (v{state['version']} → v{d.version}); start a new conversation")
        conv = self._session(d, state["user_id"], state["policy"], state["session"], state.get("attributes"),
                             state.get("noun"))
        return d, conv, state["user_id"], state["policy"], state

    @staticmethod
    def _state(conv: Conversation, d: Deployed, user_id: str | None, policy: str, attributes: list[str] | None,
               noun: str | None) -> dict:
        return {"session": conv.to_dict(), "version": d.version, "user_id": user_id, "policy": policy,
                "attributes": attributes, "noun": noun}

    def _view(self, conv_id: str, conv: Conversation, d: Deployed, user_id: str | None, policy: str) -> dict:
        graph = conv.graph
        move = conv.pending
        shown = None
        if move is not None:
            shown = {"kind": move.kind, "text": move.text,
                     "values": [{"value": int(v), "label": graph.label(v)} for v in move.values],
                     "items": [{"id": str(d.item_ids[i]), "title": t} for i, t in zip(move.items, move.titles)]}
        return {"id": conv_id, "user_id": user_id, "policy": policy, "model": d.label,
                "attributes": list(graph.type_names), "noun": graph.noun, "turn": conv.state.turn,
                "done": conv.done and move is None,
                "found": None if conv.found is None else str(d.item_ids[conv.found]),
                "accepted": [graph.label(v) for v in conv.state.accepted],
                "rejected": [graph.label(v) for v in conv.state.rejected], "next": shown}
