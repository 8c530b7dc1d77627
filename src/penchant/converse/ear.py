"""EAR: Estimation–Action–Reflection (Lei et al., WSDM 2020), as the paper and its reference code build it.

* **Estimation**: the attribute-aware FM of :mod:`penchant.converse.fm`, trained on the scorer's
  training interactions (BPR with EAR's hard negatives, multi-task with attribute prediction). It,
  not the task's scorer, ranks the items: the user's vector is folded in from ``state.history``
  (zeros for a cold user), the accepted values add their vectors.
* **Action**: a policy network over EAR's state — per attribute value its entropy among the
  candidates and the FM's predicted preference, the conversation history and the candidate count —
  choosing one of: ask one value, or recommend. Pretrained by imitating EAR's rule (ask the value of
  largest entropy, recommend with probability list size / candidates), then trained by REINFORCE
  with EAR's rewards (:data:`penchant.converse.training.REWARDS`) on the validation episodes; the
  epoch whose greedy policy has the best selection hDCG is kept.
* **Reflection**: when a list is rejected, the user's vector takes a few gradient steps lowering
  the rejected items' scores (:meth:`AttributeFM.reflect`); later questions and lists use it.
* Recommending: the FM's top ``list_size`` items among the candidates (items holding every
  accepted value, rejected items gone).

Where this differs from the paper, and why:

* **The action head is shared across values.** EAR's network maps the concatenated state (33
  LastFM attributes) to a softmax over the attributes and "recommend". With 1,152 fine values that
  head would need thousands of output weights learned from a few hundred episodes, each value's
  from the few times it is asked. Here one small network scores every action from its own
  features: for asking value a, [entropy_a, preference_a, one-hot of a's type, 0] and for
  recommending [largest entropy, largest preference of the askable values, 0…, 1], each joined to
  the shared part of the state (history, candidate count). The state is the paper's; the
  parameters no longer grow with the number of values (what one value's questions teach carries to
  the others of its type). Hidden layer of ``hidden`` units (the reference code's
  ``PolicyNetwork``: one hidden layer of 64, ReLU).
* **History as counts.** The paper's history is one entry per turn (question accepted or rejected,
  list rejected). A conversation's state keeps what was accepted and rejected but not in which
  order, so the history here is the counts: accepted questions, rejected questions, rejected lists,
  and the turn, each over the turn budget. The candidate count is EAR's one-hot of eight ranges.
* A value is askable when it is unasked and some but not all candidates hold it (its answer is not
  already known); with none askable the policy recommends.
* Returns are standardised per batch of episodes (the reference code's optional "trick").
* ``scorer_mix`` > 0 (off by default; not the paper) adds that weight of the task scorer's
  standardised scores to the FM's standardised scores when ranking items.
"""

from __future__ import annotations

import numpy as np

from penchant.converse.fm import AttributeFM, shared_fm
from penchant.converse.policies import Policy, binary_entropy
from penchant.converse.state import ConversationState, Scorer
from penchant.converse.training import GAMMA, QUIT, REWARDS
from penchant.converse.vocabulary import LIST_SIZE, MAX_TURNS, Action
from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import ConfigError, DataError
from penchant.models.registry import register

#: EAR's candidate-count ranges (upper bounds; the last range is everything above 1,000)
LENGTH_BOUNDS = (10, 50, 100, 200, 300, 500, 1000)


def history_counts(state: ConversationState, list_size: int = LIST_SIZE) -> np.ndarray:
    """float32 (4,): [accepted questions, rejected questions, rejected lists, turn] / the turn budget.
    The opening is not a question; a rejected list is ``list_size`` rejected items (or what was left)."""
    lists = -(-len(state.rejected_items) // max(1, list_size))
    return np.array([max(0, len(state.accepted) - 1), len(state.rejected), lists, state.turn],
                    dtype=np.float32) / MAX_TURNS


def length_one_hot(n: int) -> np.ndarray:
    """float32 (8,): EAR's candidate-count encoding (≤10, ≤50, ≤100, ≤200, ≤300, ≤500, ≤1000, more)."""
    out = np.zeros(len(LENGTH_BOUNDS) + 1, dtype=np.float32)
    out[int(np.searchsorted(LENGTH_BOUNDS, n))] = 1.0
    return out


class FMPolicy(Policy):
    """A policy that estimates with the attribute-aware FM (EAR's estimation, which SCPR reuses):
    the user's vector from the state (history folded in, reflected on rejected items when
    ``reflect_steps`` > 0), the items' scores, the FM's top items as the list."""

    learned = True
    ready_untrained = False

    def __init__(self, graph: AttributeGraph, *, multi_choice: int = 0, list_size: int = LIST_SIZE, dim: int = 64,
                 fm_epochs: int = 20, reflect_steps: int = 0, reflect_lr: float = 0.1,
                 scorer_mix: float = 0.0) -> None:
        super().__init__(graph, multi_choice=multi_choice, list_size=list_size)
        if dim < 1 or fm_epochs < 0 or reflect_steps < 0 or reflect_lr <= 0 or scorer_mix < 0:
            raise ConfigError("dim must be ≥ 1, fm_epochs and reflect_steps ≥ 0, reflect_lr > 0, scorer_mix ≥ 0")
        self.dim, self.fm_epochs, self.reflect_steps, self.reflect_lr = dim, fm_epochs, reflect_steps, reflect_lr
        self.scorer_mix = scorer_mix
        self.fm: AttributeFM | None = None
        self._cache: tuple | None = None

    def fit_fm(self, trainer) -> AttributeFM:
        """The FM on the trainer's ``train`` (the scorer's training interactions; one fit per process
        for the same data and parameters, :func:`~penchant.converse.fm.shared_fm`)."""
        if getattr(trainer, "train", None) is None:
            raise ConfigError(f"{self.name} trains its FM on the scorer's training interactions; the trainer has none")
        self.fm = shared_fm(self.graph, trainer.train, dim=self.dim, epochs=self.fm_epochs, seed=trainer.seed)
        self._cache = None
        return self.fm

    def _model(self) -> AttributeFM:
        if self.fm is None:
            raise ConfigError(f"{self.name} must be trained (or loaded) before it can converse")
        return self.fm

    def user(self, state: ConversationState) -> np.ndarray:
        """float64 (dim,): the user's vector now: folded in from ``state.history``, then reflected
        on the rejected items (EAR's reflection, when ``reflect_steps`` > 0)."""
        fm = self._model()
        key = (state.history.tobytes(), tuple(state.accepted), tuple(state.rejected_items))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        u = fm.user_vector(state.history)
        if self.reflect_steps and state.rejected_items:
            u = fm.reflect(u, state.accepted, state.rejected_items, history=state.history,
                           steps=self.reflect_steps, lr=self.reflect_lr)
        self._cache = (key, u)
        return u

    def item_scores(self, state: ConversationState, scorer: Scorer | None = None) -> np.ndarray:
        """float64 (n_items,): the FM's scores given the accepted values (plus ``scorer_mix`` × the
        task scorer's, both standardised over the candidates); −inf outside the candidates."""
        s = self._model().item_scores(self.user(state), state.accepted)
        if self.scorer_mix and scorer is not None and state.candidates.any():
            c = state.candidates
            other = scorer.scores(state)
            s = _standardise(s, c) + self.scorer_mix * _standardise(np.where(c, other, 0.0), c)
        return np.where(state.candidates, s, -np.inf)

    def recommend(self, state: ConversationState, scorer: Scorer) -> Action:
        s = self.item_scores(state, scorer)
        n = min(self.list_size, int(state.candidates.sum()))
        if n == 0:
            return Action("recommend", items=())
        top = np.argpartition(-s, n - 1)[:n]
        return Action("recommend", items=tuple(int(i) for i in top[np.argsort(-s[top], kind="stable")]))

    def askable(self, state: ConversationState, share: np.ndarray) -> np.ndarray:
        """bool (V,): unasked values held by some but not all of the weighted candidates."""
        ok = (share > 1e-12) & (share < 1 - 1e-9)
        if state.asked:
            ok[list(state.asked)] = False
        return ok

    def params(self) -> dict:
        return super().params() | {"list_size": self.list_size, "dim": self.dim, "fm_epochs": self.fm_epochs,
                                   "reflect_steps": self.reflect_steps, "reflect_lr": self.reflect_lr,
                                   "scorer_mix": self.scorer_mix}

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {} if self.fm is None else {f"fm.{k}": a for k, a in self.fm.state_arrays().items()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        fm = {k[3:]: a for k, a in arrays.items() if k.startswith("fm.")}
        self.fm = AttributeFM.from_state_arrays(fm)
        if self.fm.V.shape[0] != self.graph.n_items or self.fm.P.shape[0] != self.graph.n_values:
            raise DataError(f"{self.name}'s FM is for {self.fm.V.shape[0]} items and {self.fm.P.shape[0]} values, "
                            f"the graph has {self.graph.n_items} and {self.graph.n_values}")
        self._cache = None


def _standardise(s: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = s[mask]
    return (s - x.mean()) / (x.std() + 1e-9)


def _net_arrays(net, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": v.detach().numpy().copy() for k, v in net.state_dict().items()}


def _load_net(net, arrays: dict[str, np.ndarray], prefix: str, owner: str) -> None:
    import torch

    mine = {k[len(prefix) + 1:]: torch.from_numpy(np.array(a)) for k, a in arrays.items() if k.startswith(prefix + ".")}
    expected = net.state_dict()
    if set(mine) != set(expected) or any(mine[k].shape != expected[k].shape for k in expected):
        raise DataError(f"{owner}'s {prefix} arrays do not fit its network ({sorted(mine)} for {sorted(expected)})")
    net.load_state_dict(mine)


@register
class EstimationActionReflection(FMPolicy):
    """EAR (see the module): ``hidden`` units in the policy network, ``lr`` its Adam step,
    ``pretrain_epochs`` passes of imitation of EAR's max-entropy rule at ``pretrain_lr``, ``reflect_steps`` and
    ``reflect_lr`` the online update of the user's vector after a rejected list."""

    name = "ear"

    def __init__(self, graph: AttributeGraph, *, multi_choice: int = 0, list_size: int = LIST_SIZE, dim: int = 64,
                 fm_epochs: int = 20, hidden: int = 64, lr: float = 3e-3, pretrain_epochs: int = 10,
                 pretrain_lr: float = 1e-2, reflect_steps: int = 5, reflect_lr: float = 0.1, scorer_mix: float = 0.0) -> None:
        super().__init__(graph, multi_choice=multi_choice, list_size=list_size, dim=dim, fm_epochs=fm_epochs,
                         reflect_steps=reflect_steps, reflect_lr=reflect_lr, scorer_mix=scorer_mix)
        if hidden < 1 or lr <= 0 or pretrain_lr <= 0 or pretrain_epochs < 0:
            raise ConfigError("hidden must be ≥ 1, lr and pretrain_lr > 0 and pretrain_epochs ≥ 0")
        self.hidden, self.lr, self.pretrain_epochs, self.pretrain_lr = hidden, lr, pretrain_epochs, pretrain_lr
        self.n_types = len(graph.type_names)
        self._type_hot = np.eye(self.n_types, dtype=np.float32)[graph.types]  # (V, T)
        self.net = self._new_net(0)
        #: how act chooses: "greedy" (argmax), "sample" (training), "rule" (EAR's pretraining rule)
        self.mode = "greedy"
        self.trace: list | None = None
        self._rng = np.random.default_rng(0)

    @property
    def n_features(self) -> int:
        """Per action row: 2 (entropy, preference) + types + 1 (recommend?) + 4 (history) + 8 (length)."""
        return 2 + self.n_types + 1 + 4 + len(LENGTH_BOUNDS) + 1

    def _new_net(self, seed: int):
        import torch

        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(self.n_features, self.hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(self.hidden, 1))

    # ---------------------------------------------------------------- the state
    def state_parts(self, state: ConversationState) -> dict[str, np.ndarray]:
        """EAR's state, per value and shared: ``entropy`` float64 (V,) of each value's share among
        the candidates (0 where asked); ``preference`` (V,) σ(ĝ(a | u, accepted)) (0 where asked);
        ``history`` (4,) :func:`history_counts`; ``length`` (8,) :func:`length_one_hot`; ``askable``
        bool (V,)."""
        fm = self._model()
        c = state.candidates
        share = self.shares(c.astype(np.float64))
        askable = self.askable(state, share)
        entropy = binary_entropy(share)
        pref = 1.0 / (1.0 + np.exp(-fm.value_scores(self.user(state), state.accepted)))
        if state.asked:
            asked = list(state.asked)
            entropy[asked] = 0.0
            pref[asked] = 0.0
        return {"entropy": entropy, "preference": pref, "history": history_counts(state, self.list_size),
                "length": length_one_hot(int(c.sum())), "askable": askable}

    def action_rows(self, parts: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The askable values, int64 (k,), and the network's input per action, float32 (k + 1, F): a row
        per askable value, then the recommend row (see the module)."""
        values = np.flatnonzero(parts["askable"])
        k = len(values)
        shared = np.concatenate([parts["history"], parts["length"]])
        rows = np.zeros((k + 1, self.n_features), dtype=np.float32)
        rows[:k, 0] = parts["entropy"][values]
        rows[:k, 1] = parts["preference"][values]
        rows[:k, 2:2 + self.n_types] = self._type_hot[values]
        if k:
            rows[k, 0], rows[k, 1] = parts["entropy"][values].max(), parts["preference"][values].max()
        rows[k, 2 + self.n_types] = 1.0
        rows[:, 3 + self.n_types:] = shared
        return values, rows

    def logits(self, rows: np.ndarray) -> np.ndarray:
        """float64 (k + 1,): the network's score of each action row."""
        import torch

        with torch.no_grad():
            return self.net(torch.from_numpy(rows))[:, 0].double().numpy()

    # ---------------------------------------------------------------- acting
    def act(self, state: ConversationState, scorer: Scorer) -> Action:
        parts = self.state_parts(state)
        values, rows = self.action_rows(parts)
        k = len(values)
        if k == 0:
            if self.trace is not None:
                self.trace.append(None)  # forced: nothing to ask
            return self.recommend(state, scorer)
        if self.mode == "rule":  # EAR's pretraining rule: recommend w.p. list size / candidates, else max entropy
            n = int(state.candidates.sum())
            pick = k if self._rng.random() < min(1.0, self.list_size / max(1, n)) else \
                int(np.argmax(parts["entropy"][values]))
        else:
            z = self.logits(rows)
            if self.mode == "sample":
                p = np.exp(z - z.max())
                pick = int(self._rng.choice(k + 1, p=p / p.sum()))
            else:
                pick = int(np.argmax(z))
        if self.trace is not None:
            self.trace.append((rows, pick))
        if pick == k:
            return self.recommend(state, scorer)
        if not self.multi_choice:
            return Action("ask", (int(values[pick]),))
        ranking = np.full(self.graph.n_values, -np.inf)
        z = self.logits(rows) if self.mode == "rule" else z
        ranking[values] = z[:k]
        ranking[values[pick]] = z[:k].max() + 1.0  # the chosen value first, then its type's best
        return self.ask(state, ranking)

    # ---------------------------------------------------------------- training
    def _log_probs(self, steps: list[tuple[np.ndarray, int]]):
        """torch (n,): log π(chosen action | state) of each (rows, chosen) step."""
        import torch

        sizes = np.array([len(r) for r, _ in steps])
        x = torch.from_numpy(np.concatenate([r for r, _ in steps]))
        seg = torch.from_numpy(np.repeat(np.arange(len(steps)), sizes))
        z = self.net(x)[:, 0]
        top = torch.full((len(steps),), -torch.inf).scatter_reduce(0, seg, z.detach(), "amax")
        lse = torch.zeros(len(steps)).index_add(0, seg, torch.exp(z - top[seg])).log() + top
        first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        chosen = torch.from_numpy(first + np.array([a for _, a in steps]))
        return z[chosen] - lse

    def _play_traced(self, trainer, users, targets, seed: int):
        """Play episodes recording each step's (rows, action) or None, and each episode's rewards."""
        episodes: list = []

        def recorder():
            rewards: list[float] = []
            episodes.append((len(self.trace), rewards))

            def record(outcome: str, last: bool) -> None:
                rewards.append(REWARDS[outcome] + (QUIT if last and outcome != "rec_hit" else 0.0))
            return record

        self.trace = []
        trainer.play(self, users, targets, seed=seed, record=recorder)
        trace, self.trace = self.trace, None
        out = []
        for e, (start, rewards) in enumerate(episodes):
            stop = episodes[e + 1][0] if e + 1 < len(episodes) else len(trace)
            out.append((trace[start:stop], rewards))
        return out

    def pretrain(self, trainer) -> None:
        """Imitate EAR's rule (recommend w.p. list size / candidates, else ask the value of largest
        entropy) on the fit episodes: cross-entropy, ``pretrain_epochs`` passes, Adam at ``pretrain_lr``."""
        import torch

        if not self.pretrain_epochs:
            return
        self.mode = "rule"
        played = self._play_traced(trainer, *trainer.fit_episodes, seed=trainer.seed + 7)
        self.mode = "greedy"
        steps = [s for trace, _ in played for s in trace if s is not None]
        if not steps:
            return
        opt = torch.optim.Adam(self.net.parameters(), lr=self.pretrain_lr)
        rng = np.random.default_rng(trainer.seed)
        for _ in range(self.pretrain_epochs):
            order = rng.permutation(len(steps))
            for s in range(0, len(order), 64):
                loss = -self._log_probs([steps[i] for i in order[s:s + 64]]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()

    def fit(self, trainer) -> EstimationActionReflection:
        """Estimation (the FM), then the action network: imitation of EAR's rule, then REINFORCE
        for ``trainer.epochs`` passes over the fit episodes in batches of ``trainer.batch``; the
        greedy network of the epoch with the best selection hDCG is kept (``history_``)."""
        import torch

        self.fit_fm(trainer)
        self._rng = np.random.default_rng(trainer.seed)
        self.net = self._new_net(trainer.seed)
        self.pretrain(trainer)
        best = (trainer.select_value(self), {k: v.clone() for k, v in self.net.state_dict().items()})
        self.history_ = [best[0]]
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        users, targets = trainer.fit_episodes
        rng = np.random.default_rng(trainer.seed + 1)
        for epoch in range(trainer.epochs):
            order = rng.permutation(len(users))
            for s in range(0, len(order), trainer.batch):
                sel = order[s:s + trainer.batch]
                self.mode = "sample"
                played = self._play_traced(trainer, users[sel], targets[sel], seed=trainer.seed + 100 + 1000 * epoch + s)
                self.mode = "greedy"
                steps, returns = [], []
                for trace, rewards in played:
                    g, rets = 0.0, []
                    for r in reversed(rewards):
                        g = r + GAMMA * g
                        rets.append(g)
                    for step, ret in zip(trace, rets[::-1]):
                        if step is not None:
                            steps.append(step)
                            returns.append(ret)
                if len(steps) < 2:
                    continue
                ret = torch.tensor(returns, dtype=torch.float32)
                adv = (ret - ret.mean()) / (ret.std() + 1e-6)
                loss = -(self._log_probs(steps) * adv).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            value = trainer.select_value(self)
            self.history_.append(value)
            if value > best[0]:
                best = (value, {k: v.clone() for k, v in self.net.state_dict().items()})
        self.net.load_state_dict(best[1])
        self.mode = "greedy"
        return self

    # ---------------------------------------------------------------- persistence
    def params(self) -> dict:
        return super().params() | {"hidden": self.hidden, "lr": self.lr, "pretrain_epochs": self.pretrain_epochs,
                                   "pretrain_lr": self.pretrain_lr}

    def state_arrays(self) -> dict[str, np.ndarray]:
        if self.fm is None:
            return {}
        return super().state_arrays() | _net_arrays(self.net, "policy")

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_state_arrays(arrays)
        _load_net(self.net, arrays, "policy", self.name)
