"""CPR / SCPR: conversational path reasoning (Lei et al., KDD 2020), as the paper and its reference
code (SCPR) build it.

* **Path reasoning on the graph**: the conversation walks user → accepted values → items. The
  values it may ask next are those adjacent to the current candidates (held by at least one item
  that holds every accepted value), and of those it asks the one of largest *weighted* entropy,
  each candidate weighted by σ(ŷ_i), the FM's preference for it (SCPR's "weight entropy"):
  ``p_a = Σ_{i∈C, i has a} σ(ŷ_i) / Σ_{i∈C} σ(ŷ_i)``, ``H(p_a)``.
* **Estimation**: EAR's attribute-aware FM (:mod:`penchant.converse.fm`) scores the items (its
  user vector folded in from ``state.history``), and the list is its top ``list_size`` candidates.
  No reflection (SCPR only drops a rejected list from the candidates).
* **The policy decides only when to ask and when to recommend**: a DQN with two actions over
  SCPR's state (its default, "command 7"): the conversation history and the candidate count in
  binary. Trained as the reference code does: ε-greedy exploration decaying from 0.9 to 0.05, a
  replay memory, one step of smooth-L1 Q-learning on a random batch after every turn, gradients
  clipped to ±1, a target network copied every ``target_update`` episodes, discount ``gamma``;
  rewards are EAR's and SCPR's (:data:`penchant.converse.training.REWARDS`, −0.3 more when the turn
  budget runs out). The epoch (a pass over the fit episodes) whose greedy network has the best
  selection hDCG is kept.

Where this differs from SCPR: the history is the counts of accepted questions, rejected questions
and rejected lists plus the turn (the conversation state keeps no order of events; see
:mod:`penchant.converse.ear`); the candidate count has as many bits as the catalogue needs instead
of a fixed 20; SCPR's reachable values also include those of the user's friends on LastFM, a
relation this data does not have. A value held by every candidate is never asked (its answer is
known; SCPR gives it entropy 0 as well).
"""

from __future__ import annotations

import numpy as np

from penchant.converse.ear import FMPolicy, _load_net, _net_arrays, history_counts
from penchant.converse.policies import binary_entropy
from penchant.converse.state import ConversationState, Scorer
from penchant.converse.training import QUIT, REWARDS
from penchant.converse.vocabulary import LIST_SIZE, Action
from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import ConfigError
from penchant.models.registry import register

ASK, RECOMMEND = 0, 1


def count_bits(n: int, width: int) -> np.ndarray:
    """float32 (width,): ``n`` in binary, most significant bit first (SCPR's candidate-count encoding)."""
    return np.array([(int(n) >> d) & 1 for d in range(width - 1, -1, -1)], dtype=np.float32)


class _Replay:
    """SCPR's replay memory: a ring of (state, action, reward, next state, whether it ended)."""

    def __init__(self, capacity: int, n_features: int) -> None:
        self.s = np.zeros((capacity, n_features), dtype=np.float32)
        self.s2 = np.zeros((capacity, n_features), dtype=np.float32)
        self.a = np.zeros(capacity, dtype=np.int64)
        self.r = np.zeros(capacity, dtype=np.float32)
        self.done = np.zeros(capacity, dtype=np.float32)
        self.size = self.pos = 0

    def push(self, s, a: int, r: float, s2, done: bool) -> None:
        i = self.pos
        self.s[i], self.a[i], self.r[i], self.done[i] = s, a, r, float(done)
        self.s2[i] = 0.0 if s2 is None else s2
        self.pos = (i + 1) % len(self.a)
        self.size = min(self.size + 1, len(self.a))

    def sample(self, n: int, rng: np.random.Generator):
        i = rng.choice(self.size, n, replace=False)
        return self.s[i], self.a[i], self.r[i], self.s2[i], self.done[i]


@register
class ConversationalPathReasoning(FMPolicy):
    """SCPR (see the module): ``hidden`` units of the DQN, ``lr`` its RMSprop step, ``gamma`` the
    discount, ``batch`` the replay batch, ``memory`` the replay capacity, ``target_update`` episodes
    between target-network copies, ``eps_decay`` steps of the ε schedule's time constant."""

    name = "cpr"

    def __init__(self, graph: AttributeGraph, *, multi_choice: int = 0, list_size: int = LIST_SIZE, dim: int = 64,
                 fm_epochs: int = 20, hidden: int = 64, lr: float = 1e-3, gamma: float = 0.999, batch: int = 128,
                 memory: int = 50_000, target_update: int = 20, eps_decay: float = 1000.0,
                 scorer_mix: float = 0.0) -> None:
        super().__init__(graph, multi_choice=multi_choice, list_size=list_size, dim=dim, fm_epochs=fm_epochs,
                         reflect_steps=0, scorer_mix=scorer_mix)
        if hidden < 1 or lr <= 0 or not 0 <= gamma <= 1 or batch < 1 or memory < batch or target_update < 1 \
                or eps_decay <= 0:
            raise ConfigError("hidden, batch and target_update must be ≥ 1, memory ≥ batch, lr and eps_decay > 0, "
                              "gamma in [0, 1]")
        self.hidden, self.lr, self.gamma, self.batch, self.memory = hidden, lr, gamma, batch, memory
        self.target_update, self.eps_decay = target_update, eps_decay
        self.bits = max(1, int(graph.n_items).bit_length())
        self.q = self._new_net(0)
        #: while training: ε-greedy choices, each turn a transition in the replay memory
        self.exploring = False
        self._pending = None

    @property
    def n_features(self) -> int:
        return 4 + self.bits

    def _new_net(self, seed: int):
        import torch

        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(self.n_features, self.hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(self.hidden, 2))

    # ---------------------------------------------------------------- the walk
    def question_ranking(self, state: ConversationState, scorer: Scorer | None = None) -> np.ndarray:
        """float64 (V,): the weighted entropy of each value adjacent to the candidates and unasked,
        −inf for the others (see the module)."""
        s = self.item_scores(state, scorer)
        w = np.where(state.candidates, 1.0 / (1.0 + np.exp(-np.where(state.candidates, s, 0.0))), 0.0)
        share = self.shares(w)
        return np.where(self.askable(state, share), binary_entropy(share), -np.inf)

    def features(self, state: ConversationState) -> np.ndarray:
        """float32 (4 + bits,): SCPR's state: the history (:func:`history_counts`) and the candidate
        count in binary."""
        return np.concatenate([history_counts(state, self.list_size),
                               count_bits(int(state.candidates.sum()), self.bits)])

    def act(self, state: ConversationState, scorer: Scorer) -> Action:
        ranking = self.question_ranking(state, scorer)
        x = self.features(state)
        if self._pending is not None:  # the previous turn's transition now has its next state
            s, a, r = self._pending
            self._replay.push(s, a, r, x, False)
            self._pending = None
            self._learn()
        if not np.isfinite(ranking).any():
            choice = RECOMMEND
        elif self.exploring and self._rng.random() < self._epsilon():
            choice = int(self._rng.integers(2))
        else:
            choice = int(np.argmax(self.q_values(x)))
        if self.exploring:
            self._steps += 1
            self._last = (x, choice)
        return self.recommend(state, scorer) if choice == RECOMMEND else self.ask(state, ranking)

    def q_values(self, x: np.ndarray) -> np.ndarray:
        """float64 (2,): Q(state, ask), Q(state, recommend)."""
        import torch

        with torch.no_grad():
            return self.q(torch.from_numpy(x[None]))[0].double().numpy()

    # ---------------------------------------------------------------- DQN training
    def _epsilon(self) -> float:
        return 0.05 + (0.9 - 0.05) * float(np.exp(-self._steps / self.eps_decay))

    def _record(self, outcome: str, last: bool) -> None:
        x, a = self._last
        r = REWARDS[outcome] + (QUIT if last and outcome != "rec_hit" else 0.0)
        if outcome == "rec_hit" or last:
            self._replay.push(x, a, r, None, True)
            self._learn()
        else:
            self._pending = (x, a, r)

    def _learn(self) -> None:
        """One Q-learning step on a replay batch (SCPR's optimize_model)."""
        import torch

        if self._replay.size < self.batch:
            return
        s, a, r, s2, done = (torch.from_numpy(t) for t in self._replay.sample(self.batch, self._rng))
        q = self.q(s).gather(1, a[:, None])[:, 0]
        with torch.no_grad():
            target = r + self.gamma * (1 - done) * self._target(s2).max(1).values
        loss = torch.nn.functional.smooth_l1_loss(q, target)
        self._opt.zero_grad()
        loss.backward()
        for p in self.q.parameters():
            p.grad.data.clamp_(-1, 1)
        self._opt.step()

    def fit(self, trainer) -> ConversationalPathReasoning:
        """The FM, then the DQN over ``trainer.epochs`` passes of the fit episodes (each episode one
        ε-greedy conversation, learning after every turn); the greedy network of the pass with the
        best selection hDCG is kept (``history_``)."""
        import copy

        import torch

        self.fit_fm(trainer)
        self.q = self._new_net(trainer.seed)
        self._target = copy.deepcopy(self.q)
        self._opt = torch.optim.RMSprop(self.q.parameters(), lr=self.lr)
        self._replay = _Replay(self.memory, self.n_features)
        self._rng = np.random.default_rng(trainer.seed)
        self._steps, self._pending = 0, None
        best = (trainer.select_value(self), copy.deepcopy(self.q.state_dict()))
        self.history_ = [best[0]]
        users, targets = trainer.fit_episodes
        played = 0
        for epoch in range(trainer.epochs):
            order = self._rng.permutation(len(users))
            self.exploring = True
            for k in order:
                trainer.play(self, users[k:k + 1], targets[k:k + 1], seed=trainer.seed + 100 + epoch * len(users) + int(k),
                             record=lambda: self._record)
                self._pending = None
                played += 1
                if played % self.target_update == 0:
                    self._target.load_state_dict(self.q.state_dict())
            self.exploring = False
            value = trainer.select_value(self)
            self.history_.append(value)
            if value > best[0]:
                best = (value, copy.deepcopy(self.q.state_dict()))
        self.q.load_state_dict(best[1])
        self.exploring, self._pending = False, None
        return self

    # ---------------------------------------------------------------- persistence
    def params(self) -> dict:
        p = super().params()
        p.pop("reflect_steps")
        p.pop("reflect_lr")
        return p | {"hidden": self.hidden, "lr": self.lr, "gamma": self.gamma, "batch": self.batch,
                    "memory": self.memory, "target_update": self.target_update, "eps_decay": self.eps_decay}

    def state_arrays(self) -> dict[str, np.ndarray]:
        if self.fm is None:
            return {}
        return super().state_arrays() | _net_arrays(self.q, "dqn")

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_state_arrays(arrays)
        _load_net(self.q, arrays, "dqn", self.name)
