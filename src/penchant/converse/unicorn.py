"""UNICORN (Deng et al., SIGIR 2021, "Unified Conversational Recommendation Policy Learning via
Graph-based Reinforcement Learning"): one DQN whose actions are both questions and items.

Each turn (the paper's §4, its reference code github.com/dengyang17/unicorn):

1. **Preference** of each candidate item v: ``s_v = u·e_v + Σ_{p∈P_acc} e_p·e_v − Σ_{p∈P_rej∩P_v}
   e_p·e_v + b_v`` and its weight ``w_v = σ(s_v)`` (§4.2, eq. of w_v), with ``u`` the user's vector
   folded in from ``state.history`` (zeros for a cold user; never a user index) and the
   embeddings of a pretrained user–item–attribute model.
2. **Action selection** (§4.4): the top ``item_actions`` (K_v = 10) candidate items by ``s_v``, and
   the top ``value_actions`` (K_p = 10) candidate values (held by a candidate, not yet asked) by
   weighted entropy ``H(prob_p)``, ``prob_p = Σ_{v∈cand, v has p} w_v / Σ_{v∈cand} w_v`` (binary
   entropy, as the reference code's ``weight_entropy``). These ≤ 20 nodes are the action space.
3. **State** (§4.2): the dynamic weighted graph of the user, the accepted values, the candidate
   items and the candidate values (user–item edges weighted w_v, item–value edges 1), encoded by
   a GCN and a transformer over [user, accepted values] (:mod:`penchant.converse.unicorn_dqn`).
4. **Decision** (§4.3): Q(s, a) for every action; the best one is asked if it is a value; if it is
   an item, the list shown is the item actions ordered by Q (the reference code's
   ``sorted_actions``: the K_v preferred items, reordered by the Q-network). With at most
   ``list_size`` candidates left, at the last turn, or with no value left to ask, the
   ``list_size`` preferred candidates are shown without asking the network (the reference code's
   test-time rule; applied in training too, so training plays the policy that is tested).

Training (§4.3): rewards of the simulator (``training.REWARDS``: hit 1, rejected list −0.1, accepted
question 0.01, rejected question −0.1, −0.3 more when the budget runs out), γ = 0.999, ε-greedy
exploration within the reduced action space, double DQN with a soft-updated target head (the
encoder is shared by both, as in the reference code), dueling
architecture, prioritized replay, one optimisation step per conversation turn; the network is
selected on the trainer's selection episodes (``select_value``: mean hDCG), evaluated
``selections`` times per pass over the fitting episodes.

Choices where this differs from the paper or its code, and why:

* **Pretrained embeddings**: the shared attribute-aware FM (:class:`~penchant.converse.fm.AttributeFM`,
  BPR on the scorer's training interactions, items and values), not TransE: its user vector is a
  fold-in of the history (a cold or service user needs no retraining), and its inner products are
  the preference scores UNICORN computes (the reference code scores TransE vectors by inner product,
  which TransE did not learn). The FM's item bias b_v is part of s_v (for a cold user, u = 0, it is
  what ranks items before any value is accepted).
* **GCN**: one layer (the reference code's default), the paper's ``ReLU(Λ h W + h B)`` with the
  normalised adjacency Λ = D^-½ A D^-½ (the reference code multiplies by the raw weighted
  adjacency, with no self term or activation). With one layer only the sequence nodes' outputs
  are used, so only their rows of Λ are built (exactly; test_unicorn checks them against the whole
  graph): what keeps a training step near 10 ms on ML-100K.
* **Edges**: user–item (w_v) and item–value (1) only, the paper's adjacency and the code's: the
  accepted values reach the user through the candidates, every one of which holds them.
* **Sequence**: [user, accepted values] (the reference code's sequence is the accepted values only;
  the user node, which aggregates the candidates weighted by preference, carries how concentrated
  the user's preference is, which is what deciding between asking and recommending needs).
* **Dueling mean** over the state's candidate actions in training as well as acting (the reference
  code subtracts it only when acting); the per-transition importance weights multiply each squared
  error (the reference code weighs the batch's mean).
* **Exploration** draws among the ≤ 20 selected actions (the reference code draws from all items
  and values); a smaller budget: ``epochs`` passes over the fitting episodes (the paper trains 10,000
  episodes), at learning rate 1e-3 (its 1e-4 is for the longer run).
"""

from __future__ import annotations

import copy

import numpy as np

from penchant import DEFAULT_SEED
from penchant.converse.fm import AttributeFM, shared_fm
from penchant.converse.policies import Policy, binary_entropy
from penchant.converse.state import ConversationState, Scorer
from penchant.converse.training import QUIT, REWARDS
from penchant.converse.vocabulary import LIST_SIZE, MAX_TURNS, Action
from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import ConfigError, DataError
from penchant.models.registry import register


@register
class Unicorn(Policy):
    """UNICORN: a graph-based DQN over one action space of questions and items (see the module).

    Args:
        item_actions: K_v, the preferred candidate items that are actions each turn.
        value_actions: K_p, the candidate values of largest weighted entropy that are actions.
        dim: the FM's embedding size (the graph's node embeddings; EAR's and CPR's 64 shares one fit).
        hidden: width of the GCN, the transformer and the Q-network.
        heads: the transformer's attention heads (divides ``hidden``).
        fm_epochs: epochs of the FM's pretraining.
        epochs: passes of DQN training over the fitting episodes (at most ``trainer.epochs``).
        selections: selection runs per pass (the best network on ``select_value`` is kept).
        batch: replay batch per optimisation step.
        lr: Adam's learning rate (weight decay 1e-6, the paper's L2).
        gamma: discount.
        tau: the target head's soft-update rate per step.
        eps_start, eps_end, eps_decay: ε = end + (start − end)·exp(−steps / decay), steps = turns played in training.
        seed: networks, exploration and replay (the FM is seeded by the trainer, as EAR's and CPR's).
    """

    name = "unicorn"
    learned = True
    ready_untrained = False

    def __init__(self, graph: AttributeGraph, *, multi_choice: int = 0, list_size: int = LIST_SIZE,
                 item_actions: int = 10, value_actions: int = 10, dim: int = 64, hidden: int = 64,
                 heads: int = 4, fm_epochs: int = 20, epochs: int = 2, selections: int = 2,
                 batch: int = 32, lr: float = 1e-3, gamma: float = 0.999, tau: float = 0.01,
                 eps_start: float = 0.9, eps_end: float = 0.1, eps_decay: float = 1000.0,
                 seed: int = DEFAULT_SEED) -> None:
        super().__init__(graph, multi_choice=multi_choice, list_size=list_size)
        if min(item_actions, value_actions, dim, hidden, heads, batch, selections) < 1 or fm_epochs < 0 \
                or epochs < 0 or lr <= 0 or not 0 < gamma <= 1 or not 0 < tau <= 1 or eps_decay <= 0 \
                or not 0 <= eps_end <= eps_start <= 1:
            raise ConfigError("unicorn needs item_actions, value_actions, dim, hidden, heads, batch, "
                              "selections ≥ 1, fm_epochs and epochs ≥ 0, lr > 0, gamma and tau in (0, 1], "
                              "eps_decay > 0 and 0 ≤ eps_end ≤ eps_start ≤ 1")
        if hidden % heads:
            raise ConfigError(f"unicorn's hidden ({hidden}) must be a multiple of heads ({heads})")
        self.item_actions, self.value_actions, self.dim, self.hidden = item_actions, value_actions, dim, hidden
        self.heads, self.fm_epochs, self.epochs = heads, fm_epochs, epochs
        self.selections, self.batch, self.lr, self.gamma, self.tau = selections, batch, lr, gamma, tau
        self.eps_start, self.eps_end, self.eps_decay, self.seed = eps_start, eps_end, eps_decay, seed
        self.fm: AttributeFM | None = None
        self.encoder = self.head = None
        self._user_cache: tuple[bytes, np.ndarray] | None = None
        self._learner: _Learner | None = None
        self._values_per_item = np.diff(graph.items.indptr).astype(np.float64)

    # ------------------------------------------------------------------ acting
    def user_vector(self, history: np.ndarray) -> np.ndarray:
        """float64 (dim,): the FM's fold-in of ``history`` (the last one is cached)."""
        key = np.asarray(history, dtype=np.int64).tobytes()
        if self._user_cache is None or self._user_cache[0] != key:
            self._user_cache = (key, self.fm.user_vector(history))
        return self._user_cache[1]

    def preference(self, state: ConversationState, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """s_v of the candidate items ``cand`` (int64), float64 (len(cand),), and how many rejected
        values each holds, int64 (len(cand),)."""
        u = self.user_vector(state.history)
        v = self.fm.V[cand].astype(np.float64)
        s = v @ (u + self.fm.P[state.accepted].sum(0, dtype=np.float64)) + self.fm.b[cand]
        held = np.zeros((len(cand), 0))
        if state.rejected and len(cand):
            rej = np.asarray(state.rejected, dtype=np.int64)
            held = self.graph.items[cand][:, rej].toarray()
            s -= (held * (v @ self.fm.P[rej].T.astype(np.float64))).sum(1)
        return s, held.sum(1).astype(np.int64)

    def snapshot(self, state: ConversationState):
        """The state's :class:`~penchant.converse.unicorn_dqn.Snapshot` (graph and action space), the
        weighted entropy of every value (float64 (V,), 0 where it is not a candidate value) and the
        candidate items by preference, best first (int64)."""
        from penchant.converse.unicorn_dqn import Snapshot

        cand = np.flatnonzero(state.candidates)
        s, rejected_held = self.preference(state, cand)
        w = 1.0 / (1.0 + np.exp(-s))
        ranked = cand[np.argsort(-s, kind="stable")]
        top = ranked[: self.item_actions]
        full = np.zeros(self.graph.n_items)
        full[cand] = w
        entropy = binary_entropy(self.shares(full))
        if state.asked:
            entropy[list(state.asked)] = 0.0
        ask = np.flatnonzero(entropy > 0)
        ask = ask[np.argsort(-entropy[ask], kind="stable")[: self.value_actions]]
        degrees = w + self._values_per_item[cand] - rejected_held
        snap = Snapshot(self.user_vector(state.history).astype(np.float32), np.asarray(state.accepted, dtype=np.int64),
                        cand.astype(np.int32), w.astype(np.float32), degrees.astype(np.float32),
                        np.concatenate([top, self.graph.n_items + ask]).astype(np.int64))
        return snap, entropy, ranked

    def q_values(self, snap) -> np.ndarray:
        """float32 (m,): Q(s, a) of the snapshot's actions."""
        import torch

        from penchant.converse.unicorn_dqn import pad_actions, sequence_rows

        with torch.no_grad():
            state = self.encoder(sequence_rows([snap], self.graph.n_items))
            ids, valid = pad_actions([snap])
            return self.head(state, self.encoder.action_embeddings(ids), valid)[0].numpy()

    def act(self, state: ConversationState, scorer: Scorer) -> Action:
        """Ask the value or show the items the Q-network prefers (``scorer`` is not used: UNICORN
        scores with its own model)."""
        if self.fm is None:
            raise ConfigError("unicorn must be trained before it can converse (penchant converse evaluate trains it)")
        snap, entropy, ranked = self.snapshot(state)
        n_items = self.graph.n_items
        n_top = int((snap.actions < n_items).sum())
        forced = n_top == len(snap.actions) or int(state.candidates.sum()) <= self.list_size or state.turn >= MAX_TURNS
        learner = self._learner
        if forced:  # the preferred items, without the network
            if learner is not None:
                learner.observe(snap, 0)
            return Action("recommend", items=tuple(int(i) for i in ranked[: self.list_size]))
        q = self.q_values(snap)
        explore = learner is not None and learner.explore()
        choice = int(learner.rng.integers(len(snap.actions))) if explore else int(np.argmax(q))
        order = np.argsort(-q[:n_top], kind="stable")
        if learner is not None:
            learner.observe(snap, choice)
        if choice < n_top:
            return Action("recommend", items=tuple(int(i) for i in snap.actions[order][: self.list_size]))
        value = int(snap.actions[choice] - n_items)
        if not self.multi_choice:
            return Action("ask", (value,))
        ranking = np.where(entropy > 0, entropy, -np.inf)
        ranking[value] = 2.0  # above any entropy (≤ 1 bit): the chosen value, then its type's by entropy
        return self.ask(state, ranking)

    # ------------------------------------------------------------------ training
    def _build(self) -> None:
        import torch

        from penchant.converse.unicorn_dqn import DuelingHead, StateEncoder

        torch.manual_seed(self.seed)
        nodes = np.concatenate([self.fm.V, self.fm.P]).astype(np.float32)
        self.encoder = StateEncoder(nodes, self.hidden, self.heads)
        self.head = DuelingHead(self.hidden, self.dim)
        self.encoder.eval()
        self.head.eval()

    def fit(self, trainer) -> Unicorn:
        """Pretrain the FM on ``trainer.train`` (the one shared with EAR and CPR for the same data and
        parameters, :func:`~penchant.converse.fm.shared_fm`), then the DQN for ``epochs`` passes over
        the fitting episodes (fewer if ``trainer.epochs`` is smaller); keeps the network with the
        best ``select_value``. ``history_`` = that value at each selection."""
        train = trainer.train
        if train is None:
            raise ConfigError("unicorn pretrains its FM on the scorer's training interactions; this trainer has none")
        self.fm = shared_fm(self.graph, train, dim=self.dim, epochs=self.fm_epochs, seed=trainer.seed)
        self._build()
        self._user_cache = None
        best = (trainer.select_value(self), self._network_state())
        self.history_ = [best[0]]
        users, targets = trainer.fit_episodes
        learner = _Learner(self)
        for epoch in range(min(self.epochs, trainer.epochs)):
            order = learner.rng.permutation(len(users))
            for part, chunk in enumerate(np.array_split(order, self.selections)):
                self._learner = learner
                try:
                    trainer.play(self, users[chunk], targets[chunk], seed=self.seed + 100 + 10 * epoch + part,
                                 record=learner.recorder)
                finally:
                    self._learner = None
                value = trainer.select_value(self)
                self.history_.append(value)
                if value > best[0]:
                    best = (value, self._network_state())
        self._load_network(best[1])
        return self

    def _network_state(self) -> dict:
        return {f"encoder.{k}": v.detach().clone() for k, v in self.encoder.state_dict().items()} | \
            {f"head.{k}": v.detach().clone() for k, v in self.head.state_dict().items()}

    def _load_network(self, state: dict) -> None:
        self.encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})
        self.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})

    # ------------------------------------------------------------------ persistence
    def params(self) -> dict:
        return super().params() | {
            "list_size": self.list_size, "item_actions": self.item_actions, "value_actions": self.value_actions,
            "dim": self.dim, "hidden": self.hidden, "heads": self.heads,
            "fm_epochs": self.fm_epochs, "epochs": self.epochs, "selections": self.selections, "batch": self.batch,
            "lr": self.lr, "gamma": self.gamma, "tau": self.tau, "eps_start": self.eps_start,
            "eps_end": self.eps_end, "eps_decay": self.eps_decay, "seed": self.seed}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The FM (``fm.V``, ``fm.P``, ``fm.b``, ``fm.W``) and every network parameter (``encoder.*``,
        ``head.*``) as float32 arrays; {} before training."""
        if self.fm is None:
            return {}
        return {f"fm.{k}": v for k, v in self.fm.state_arrays().items()} | \
            {k: v.numpy().astype(np.float32) for k, v in self._network_state().items()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` returned (over the same graph); {} leaves it untrained."""
        import torch

        if not arrays:
            self.fm, self.encoder, self.head, self._user_cache = None, None, None, None
            return
        fm = AttributeFM.from_state_arrays({k[3:]: v for k, v in arrays.items() if k.startswith("fm.")})
        if fm.V.shape[0] != self.graph.n_items or fm.P.shape[0] != self.graph.n_values or fm.dim != self.dim:
            raise DataError(f"unicorn's arrays are for {fm.V.shape[0]} items, {fm.P.shape[0]} values and dim "
                            f"{fm.dim}, not {self.graph.n_items}, {self.graph.n_values} and {self.dim}")
        self.fm, self._user_cache = fm, None
        self._build()
        state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()
                 if not k.startswith("fm.")}
        try:
            self._load_network(state)
        except RuntimeError as e:
            raise DataError(f"unicorn's network arrays do not fit its parameters: {str(e).splitlines()[0]}") from e


class _Learner:
    """The DQN side of training: turns become transitions, each turn one optimisation step."""

    def __init__(self, policy: Unicorn) -> None:
        import torch

        from penchant.converse.unicorn_dqn import PrioritizedReplay

        self.policy = policy
        self.rng = np.random.default_rng(policy.seed)
        self.memory = PrioritizedReplay(50_000, self.rng)
        self.target = copy.deepcopy(policy.head)
        params = list(policy.encoder.parameters()) + list(policy.head.parameters())
        self.opt = torch.optim.Adam(params, lr=policy.lr, weight_decay=1e-6)
        self.steps = 0
        self.pending = None  # (snapshot, action index, reward) waiting for the next state
        self.last = None  # (snapshot, action index) of the turn just played

    def explore(self) -> bool:
        p = self.policy
        eps = p.eps_end + (p.eps_start - p.eps_end) * np.exp(-self.steps / p.eps_decay)
        self.steps += 1
        return bool(self.rng.random() < eps)

    def observe(self, snap, choice: int) -> None:
        """A turn's state and chosen action; completes the previous turn's transition (a state with
        no action at all, no candidate left, ends it and is not learned from)."""
        live = len(snap.actions) > 0
        if self.pending is not None:
            self.memory.push(*self.pending, snap if live else None)
            self.pending = None
            self.optimise()
        self.last = (snap, choice) if live else None

    def recorder(self):
        """One episode's ``record(outcome, last)`` (see :func:`~penchant.converse.simulator.run_episode`)."""
        self.pending = self.last = None

        def record(outcome: str, last: bool) -> None:
            if self.last is None:
                return
            reward = REWARDS[outcome] + (QUIT if last and outcome != "rec_hit" else 0.0)
            snap, choice = self.last
            if outcome == "rec_hit" or last:
                self.memory.push(snap, choice, reward, None)
                self.optimise()
            else:
                self.pending = (snap, choice, reward)
        return record

    def optimise(self) -> None:
        """One double-DQN step on a prioritized batch."""
        import torch

        from penchant.converse.unicorn_dqn import pad_actions, sequence_rows

        p = self.policy
        if len(self.memory) < p.batch:
            return
        with torch.no_grad():
            for t, s in zip(self.target.parameters(), p.head.parameters()):
                t.mul_(1 - p.tau).add_(p.tau * s)
        idx, batch, weights = self.memory.sample(p.batch)
        snaps = [b[0] for b in batch]
        p.encoder.train()
        p.head.train()
        state = p.encoder(sequence_rows(snaps, p.graph.n_items))
        ids, valid = pad_actions(snaps)
        q = p.head(state, p.encoder.action_embeddings(ids), valid)
        q = q.gather(1, torch.tensor([[b[1]] for b in batch])).squeeze(1)
        target = torch.tensor([b[2] for b in batch], dtype=torch.float32)
        going = [k for k, b in enumerate(batch) if b[3] is not None]
        if going:
            nxt = [batch[k][3] for k in going]
            with torch.no_grad():
                s2 = p.encoder(sequence_rows(nxt, p.graph.n_items))
                ids2, valid2 = pad_actions(nxt)
                e2 = p.encoder.action_embeddings(ids2)
                best = p.head(s2, e2, valid2).argmax(1, keepdim=True)
                value = self.target(s2, e2, valid2).gather(1, best).squeeze(1)
            target[going] += p.gamma * value
        error = q - target
        loss = (torch.from_numpy(weights) * error ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        for param in p.head.parameters():
            param.grad.clamp_(-1, 1)
        self.opt.step()
        p.encoder.eval()
        p.head.eval()
        self.memory.update(idx, error.detach().numpy())
