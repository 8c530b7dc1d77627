"""``oracle-asker``: a questioner that knows the target's attribute values — an upper bound on what
asking about attributes can do for a policy that then recommends the scorer's list.

Before each episode the simulator tells it the target (:func:`penchant.converse.simulator.run_episode`
calls ``reveal(target, graph)`` for a policy with ``oracle = True``; no other policy sees it). It uses
only the target's attribute values, never the item itself:

* each turn, among the target's values not asked yet, it asks the one held by the fewest current
  candidates — the question whose (certain) yes removes the most candidates — as long as more than
  ``list_size`` candidates remain and some target value removes at least one;
* otherwise it shows the scorer's top ``list_size`` candidates (the same list any policy would show).

So every question it asks is answered yes and filters as hard as a question can; what it cannot do
is rank: the list comes from the scorer like everyone's. It bounds asking, not the whole
conversation: it never weighs a question's turn against recommending at once, so where the scorer
already ranks the target near the top (a warm user) it can end later than ``greedy``.

In the multi-choice variant it chooses the value as above and offers, as the base policy's ``ask``
does, up to ``multi_choice`` values of that value's type: the target's values of that type first
(fewest candidates first), then the type's other values, those held by most candidates first (their
rejection lowers those items' scores).

It needs no training, but it cannot converse with a person (it needs the target), so the service
never offers it (:func:`penchant.converse.policies.ready_policies` leaves oracles out).
"""

from __future__ import annotations

import numpy as np

from penchant.converse.policies import Policy
from penchant.converse.state import ConversationState, Scorer
from penchant.converse.vocabulary import LIST_SIZE, Action
from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import ConfigError
from penchant.models.registry import register


@register
class OracleAsker(Policy):
    """Asks the target's most filtering attribute value while it splits the candidates (an upper bound on asking)."""

    name = "oracle-asker"
    #: told the target by the simulator before each episode
    oracle = True

    def __init__(self, graph: AttributeGraph, *, multi_choice: int = 0, list_size: int = LIST_SIZE) -> None:
        super().__init__(graph, multi_choice=multi_choice, list_size=list_size)
        self._target_values: np.ndarray | None = None

    def reveal(self, target: int, graph: AttributeGraph) -> None:
        """The simulator's secret for this episode: ``target``'s values (int64) are all it keeps."""
        if graph.n_items != self.graph.n_items or graph.n_values != self.graph.n_values:
            raise ValueError("the target was revealed over another attribute graph than the policy's")
        self._target_values = graph.item_values(int(target)).astype(np.int64)

    def act(self, state: ConversationState, scorer: Scorer) -> Action:
        if self._target_values is None:
            raise ConfigError("oracle-asker knows the target's attributes, so it only plays simulated episodes "
                              "(nothing revealed the target to it)")
        n = int(state.candidates.sum())
        if n <= self.list_size:
            return self.recommend(state, scorer)
        tv = self._target_values
        held = self._by_value[tv] @ state.candidates.astype(np.float64)  # candidates with each target value
        removes = np.where(np.isin(tv, list(state.asked)), -1.0, n - held)
        if len(tv) == 0 or removes.max() <= 0:
            return self.recommend(state, scorer)
        ranking = -1.0 + self._by_value @ state.candidates.astype(np.float64) / n  # other values: in [−1, 0]
        ranking[tv] = np.where(removes > 0, removes, -1.0)  # the best is a target value that removes some
        return self.ask(state, ranking)
