"""What a learned conversation policy trains on: the validation episodes, the scorer's training
interactions, and the rewards of the simulator's outcomes.

Episodes for training are (user, validation item) pairs: the scorer was fitted on the training
interactions only and the test interactions are never touched. They are split in two: one half
trains (each policy's own learning: REINFORCE for ``ear``, a DQN for ``cpr`` and ``unicorn``, tree
growing for ``tree``), the other selects (the epoch or setting whose greedy policy has the best mean
hDCG, :meth:`PolicyTrainer.select_value`).

Rewards per step (EAR's, SCPR's and UNICORN's): a hit +1, a rejected list −0.1, an accepted question
+0.01, a rejected question −0.1, and −0.3 more when the turn budget runs out; returns are discounted
by γ = 0.99.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.converse.simulator import run_episode
from penchant.data.attribute_graph import AttributeGraph

REWARDS = {"rec_hit": 1.0, "rec_miss": -0.1, "ask_yes": 0.01, "ask_no": -0.1}
QUIT = -0.3
GAMMA = 0.99


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

        return Scorer(self.graph, self.base)

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
