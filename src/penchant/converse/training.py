"""Training the ask-or-recommend decision by policy gradient on the simulator, and choosing
settings on validation episodes.

Episodes for training are (user, validation item) pairs: the scorer was fitted on the training
interactions only and the test interactions are never touched. They are split in two: one half
trains (REINFORCE), the other selects (the epoch whose greedy policy has the best mean hDCG).

Rewards per step (EAR's): a hit +1, a rejected list −0.1, an accepted question +0.01, a rejected
question −0.1, and −0.3 more when the turn budget runs out; returns are discounted by γ = 0.99 and
centred per batch.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.converse.simulator import run_episode
from penchant.converse.vocabulary import MAX_TURNS
from penchant.data.attribute_graph import AttributeGraph

REWARDS = {"rec_hit": 1.0, "rec_miss": -0.1, "ask_yes": 0.01, "ask_no": -0.1}
QUIT = -0.3
GAMMA = 0.99


class DecisionNet:
    """P(recommend | state features) by a small MLP; greedy (p > ½) unless ``stochastic``."""

    n_features = 8

    def __init__(self, hidden: int = 16, seed: int = DEFAULT_SEED) -> None:
        import torch

        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(self.n_features, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, 1))
        self.stochastic = False
        self.rng = np.random.default_rng(seed)
        self.trace: list = []

    @staticmethod
    def features(state, n_items: int, top_mass: float, best_entropy: float, list_size: int) -> np.ndarray:
        """[log candidates / log catalogue, preference mass of the top list, best weighted entropy,
        turn / budget, accepted / 5, rejected / 5, rejected items / budget·list, 1]."""
        n = int(state.candidates.sum())
        return np.array([np.log1p(n) / np.log1p(n_items), top_mass, best_entropy, state.turn / MAX_TURNS,
                         len(state.accepted) / 5, len(state.rejected) / 5,
                         len(state.rejected_items) / (MAX_TURNS * list_size), 1.0], dtype=np.float32)

    def choose(self, features: np.ndarray, forced: bool | None = None) -> bool:
        """Recommend? ``forced`` (when there is nothing left to ask) is obeyed, and traced as no
        decision."""
        import torch

        if forced is not None:
            if self.stochastic:
                self.trace.append(None)
            return forced
        logit = self.net(torch.from_numpy(features))[0]
        p = torch.sigmoid(logit)
        if not self.stochastic:
            return bool(p.item() > 0.5)
        act = bool(self.rng.random() < p.item())
        self.trace.append(torch.nn.functional.logsigmoid(logit if act else -logit))
        return act

    def state_dict(self) -> dict:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state)


class PolicyTrainer:
    """Validation episodes and what is needed to play them.

    Args:
        graph: the attribute graph.
        base: float32 (n_users, n_items) the fitted model's scores (training interactions only).
        users, targets: int64 (n,) validation episodes.
        exclude: CSR (n_users, n_items) items never shown in these episodes (the training items;
            each episode's state knows them as the user's ``history``).
        popularity: float64 (n_items,) training interactions per item.
        train: CSR (n_users, n_items) the scorer's training interactions, binary: what a policy with
            its own user or item model (an FM, embeddings) may be trained on; a cold user's row is
            empty. None only where the caller has none (a policy that needs it then says so).
        setting: ``warm``, ``cold`` or ``drift`` (:mod:`penchant.converse.experiment`): who the
            episodes' users are.
    """

    def __init__(self, graph: AttributeGraph, base: np.ndarray, users: np.ndarray, targets: np.ndarray,
                 exclude: sp.csr_matrix, popularity: np.ndarray, *, seed: int = DEFAULT_SEED, epochs: int = 12,
                 batch: int = 50, lr: float = 1e-2, train: sp.csr_matrix | None = None, setting: str = "warm") -> None:
        self.graph, self.base, self.exclude, self.popularity = graph, base, exclude, popularity
        self.train, self.setting = train, setting
        self.seed, self.epochs, self.batch, self.lr = seed, epochs, batch, lr
        half = len(users) // 2
        self.fit_episodes = (users[:half], targets[:half])
        self.select_episodes = (users[half:], targets[half:])

    def scorer(self, policy):
        from penchant.converse.state import Scorer

        return Scorer(self.graph, self.base, reflect=policy.reflect)

    def play(self, policy, users, targets, seed: int, record=None):
        scorer = self.scorer(policy)
        rng = np.random.default_rng(seed)
        out = []
        for u, t in zip(users, targets):
            ex = self.exclude.indices[self.exclude.indptr[u]:self.exclude.indptr[u + 1]]
            out.append(run_episode(policy, scorer, self.graph, int(u), int(t), exclude=ex, rng=rng,
                                   record=None if record is None else record()))
        return out

    def select_value(self, policy) -> float:
        """Mean hDCG@(15, 10) of ``policy`` on the selection episodes."""
        from penchant.eval.conversation import hdcg

        results = self.play(policy, *self.select_episodes, seed=self.seed + 1)
        return float(np.mean([hdcg(r.turn, r.rank) for r in results]))

    def reinforce(self, policy) -> list[float]:
        """REINFORCE on the decision of ``policy`` (a :class:`LearnedDecision`); keeps the epoch with
        the best selection hDCG. Returns that value per epoch. (``train`` is the scorer's training
        matrix, not a verb.)"""
        import torch

        decision = policy.decision
        opt = torch.optim.Adam(decision.net.parameters(), lr=self.lr)
        rng = np.random.default_rng(self.seed)
        best = (self.select_value(policy), decision.state_dict())
        history = [best[0]]
        users, targets = self.fit_episodes
        for epoch in range(self.epochs):
            order = rng.permutation(len(users))
            for s in range(0, len(order), self.batch):
                sel = order[s:s + self.batch]
                log_probs, returns = [], []

                episodes: list = []  # (where its decisions start in the trace, its rewards)

                def recorder():
                    rewards: list[float] = []
                    episodes.append((len(decision.trace), rewards))

                    def record(outcome: str, last: bool) -> None:
                        rewards.append(REWARDS[outcome] + (QUIT if last and outcome != "rec_hit" else 0.0))
                    return record

                decision.stochastic, decision.trace = True, []
                self.play(policy, users[sel], targets[sel], seed=self.seed + 100 + epoch * 1000 + s, record=recorder)
                decision.stochastic = False
                # one trace entry per step: a log-probability, or None where the action was forced
                for ep_index, (start, rewards) in enumerate(episodes):
                    stop = episodes[ep_index + 1][0] if ep_index + 1 < len(episodes) else len(decision.trace)
                    steps = decision.trace[start:stop]
                    g, rets = 0.0, []
                    for r in reversed(rewards):
                        g = r + GAMMA * g
                        rets.append(g)
                    for lp, ret in zip(steps, rets[::-1]):
                        if lp is not None:
                            log_probs.append(lp)
                            returns.append(ret)
                if not log_probs:
                    continue
                ret = torch.tensor(returns, dtype=torch.float32)
                adv = (ret - ret.mean()) / (ret.std() + 1e-6)
                loss = -(torch.stack(log_probs) * adv).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            value = self.select_value(policy)
            history.append(value)
            if value > best[0]:
                best = (value, decision.state_dict())
        decision.load_state_dict(best[1])
        return history
