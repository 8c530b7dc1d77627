"""UNICORN's learner (Deng et al., SIGIR 2021): the graph-based state encoder, the dueling Q-network
over the unified action space, and prioritized experience replay.

A state is a :class:`Snapshot` of the conversation's dynamic weighted graph: the user node, the
accepted values, the candidate items (each linked to the user with weight w_v = σ(preference)) and
the values the candidates hold (each item linked to its values, weight 1; rejected values leave the
graph).

The encoder (the paper's section 4.2): node embeddings (initialised from the pretrained ones, then
trained with the Q-network), one graph convolution ``h'_n = ReLU(Σ_j Λ_nj h_j W + h_n B + c)`` with
Λ = D^-½ A D^-½ the normalised weighted adjacency, then a transformer layer over the sequence
[user, accepted values in the order accepted] and its mean: the state vector (hidden,). One layer,
as the reference code runs it: then only the sequence nodes' outputs are needed, and each is a
weighted sum over the candidate items (the user's neighbours and every accepted value's, since
every candidate holds every accepted value), so :func:`sequence_rows` builds just those rows of Λ
for a whole batch and the convolution is one sparse product with the item table, exactly.

The Q-network (section 4.3): dueling, Q(s, a) = V(s) + A(s, e_a) − mean over the state's candidate
actions of A, with e_a the action node's embedding (an item or a value). Double DQN (online head
chooses the next action, a soft-updated target head values it), prioritized replay
(proportional, α = 0.6, importance weights with β annealed 0.4 → 1), as the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class Snapshot:
    """One conversation state as the learner sees it.

    Attributes:
        user: float32 (dim,) the user's preference vector (fold-in of the history; zeros if none).
        accepted: int64 (k,) accepted values, in the order accepted (the opening first).
        items: int32 (n,) the candidate items, ascending.
        weights: float32 (n,) their user–item edge weights w_v = σ(preference), in (0, 1).
        degrees: float32 (n,) each candidate item's weighted degree in the graph: w_v plus the
            number of its values that are not rejected.
        actions: int64 (m,) the candidate actions as node ids: an item i is i, a value p is n_items + p.
    """

    user: np.ndarray
    accepted: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    degrees: np.ndarray
    actions: np.ndarray


@dataclass
class SequenceBatch:
    """The sequence nodes of B states, padded to the longest sequence L (1 + accepted values).

    Attributes:
        rows: sparse float32 (B·L, n_items): row b·L + l is Λ's row of sequence node l of state b
            over the items (zero for padding).
        users: float32 (B, dim) the user nodes' vectors.
        values: int64 (B, L − 1) the accepted values (0 where padding).
        pad: bool (B, L) True where the sequence is padding.
    """

    rows: torch.Tensor
    users: torch.Tensor
    values: torch.Tensor
    pad: torch.Tensor


def sequence_rows(snaps: list[Snapshot], n_items: int) -> SequenceBatch:
    """Λ's rows of every snapshot's sequence nodes: for the user, Λ_uv = w_v / √(d_u d_v) with
    d_u = Σ w; for an accepted value p, Λ_pv = 1 / √(d_p d_v) with d_p = the number of candidates."""
    length = 1 + max(len(s.accepted) for s in snaps)
    rows, cols, vals = [], [], []
    values = np.zeros((len(snaps), length - 1), dtype=np.int64)
    pad = np.ones((len(snaps), length), dtype=bool)
    for b, s in enumerate(snaps):
        k, n = len(s.accepted), len(s.items)
        values[b, :k], pad[b, :k + 1] = s.accepted, False
        if n == 0:
            continue
        inv = 1.0 / np.sqrt(s.degrees.astype(np.float64))
        user = s.weights * inv / np.sqrt(max(float(s.weights.sum()), 1e-12))
        rows.append(np.repeat(b * length + np.arange(k + 1), n))
        cols.append(np.tile(s.items.astype(np.int64), k + 1))
        vals += [user, np.tile(inv / np.sqrt(n), k)]
    if rows:
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals).astype(np.float32)
    else:
        r, c, v = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    adj = torch.sparse_coo_tensor(torch.from_numpy(np.stack([r, c])), torch.from_numpy(v), (len(snaps) * length, n_items),
                                  is_coalesced=True, check_invariants=False)  # row-major, columns ascending in a row
    users = torch.from_numpy(np.stack([s.user for s in snaps]).astype(np.float32))
    return SequenceBatch(adj, users, torch.from_numpy(values), torch.from_numpy(pad))


class StateEncoder(nn.Module):
    """Node embeddings → one GCN layer → transformer over [user, accepted values] → mean → (hidden,).

    Args:
        embeddings: float32 (n_items + V, dim) the pretrained node embeddings (trained further).
        hidden: width of the GCN output, the transformer and the state vector.
        heads: attention heads (divides ``hidden``).
    """

    def __init__(self, embeddings: np.ndarray, hidden: int, heads: int) -> None:
        super().__init__()
        dim = embeddings.shape[1]
        self.embedding = nn.Parameter(torch.from_numpy(np.asarray(embeddings, dtype=np.float32).copy()))
        self.neighbours = nn.Linear(dim, hidden, bias=False)  # W
        self.self_loop = nn.Linear(dim, hidden)  # B and the bias c
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, g: SequenceBatch) -> torch.Tensor:
        """float32 (B, hidden): the state vectors."""
        b, length = g.pad.shape
        n_items = g.rows.shape[1]
        agg = torch.sparse.mm(g.rows, self.neighbours(self.embedding[:n_items])).view(b, length, -1)
        own = torch.cat([g.users.unsqueeze(1), self.embedding[n_items + g.values]], 1)
        h = torch.relu(agg + self.self_loop(own))
        z = self.transformer(h, src_key_padding_mask=g.pad)
        keep = (~g.pad).unsqueeze(-1).float()
        return torch.relu(self.out((z * keep).sum(1) / keep.sum(1)))

    def action_embeddings(self, actions: torch.Tensor) -> torch.Tensor:
        """float32 (..., dim): the embedding e_a of each action node id."""
        return self.embedding[actions]


class DuelingHead(nn.Module):
    """Q(s, a) = V(s) + A(s, e_a) − mean_{a' ∈ candidates} A(s, e_a'); V and A are two-layer MLPs."""

    def __init__(self, hidden: int, dim: int) -> None:
        super().__init__()
        self.value = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.advantage = nn.Sequential(nn.Linear(hidden + dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, state: torch.Tensor, actions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``state`` (B, hidden), ``actions`` (B, K, dim) with ``valid`` bool (B, K) → Q (B, K)
        (−inf where not valid)."""
        s = state.unsqueeze(1).expand(-1, actions.shape[1], -1)
        adv = self.advantage(torch.cat([s, actions], -1)).squeeze(-1)
        w = valid.float()
        mean = (adv * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1.0)
        q = self.value(state) + adv - mean
        return q.masked_fill(~valid, float("-inf"))


def pad_actions(snaps: list[Snapshot]) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 (B, K) the candidate actions of each snapshot, padded with 0, and bool (B, K) valid."""
    k = max(1, max(len(s.actions) for s in snaps))
    ids = np.zeros((len(snaps), k), dtype=np.int64)
    valid = np.zeros((len(snaps), k), dtype=bool)
    for i, s in enumerate(snaps):
        ids[i, :len(s.actions)], valid[i, :len(s.actions)] = s.actions, True
    return torch.from_numpy(ids), torch.from_numpy(valid)


class PrioritizedReplay:
    """Proportional prioritized experience replay (Schaul et al. 2016), as UNICORN's code: a new
    transition gets the largest priority seen, p = (|δ| + ε)^α, stratified sampling over the
    priority mass, importance weights (N·P)^−β / max with β rising by ``beta_step`` per batch to 1.

    A transition is (snapshot, index of the action taken among its actions, reward, next snapshot
    or None at the end)."""

    def __init__(self, capacity: int, rng: np.random.Generator, *, alpha: float = 0.6, eps: float = 0.01,
                 beta: float = 0.4, beta_step: float = 0.001) -> None:
        self.capacity, self.rng, self.alpha, self.eps = capacity, rng, alpha, eps
        self.beta, self.beta_step = beta, beta_step
        self.data: list[tuple] = []
        self.priority = np.zeros(capacity)
        self.position = 0
        self.max_error = 0.1

    def __len__(self) -> int:
        return len(self.data)

    def push(self, snap: Snapshot, action: int, reward: float, after: Snapshot | None) -> None:
        item = (snap, action, reward, after)
        if len(self.data) < self.capacity:
            self.data.append(item)
        else:
            self.data[self.position] = item
        self.priority[self.position] = (self.max_error + self.eps) ** self.alpha
        self.position = (self.position + 1) % self.capacity

    def sample(self, n: int) -> tuple[np.ndarray, list[tuple], np.ndarray]:
        """(indices int64 (n,), transitions, importance weights float32 (n,))."""
        p = self.priority[:len(self.data)]
        cum = np.cumsum(p)
        total = cum[-1]
        points = (np.arange(n) + self.rng.random(n)) * total / n
        idx = np.minimum(np.searchsorted(cum, points, side="right"), len(p) - 1)
        self.beta = min(1.0, self.beta + self.beta_step)
        w = (len(p) * p[idx] / total) ** -self.beta
        return idx, [self.data[i] for i in idx], (w / w.max()).astype(np.float32)

    def update(self, idx: np.ndarray, errors: np.ndarray) -> None:
        errors = np.abs(errors)
        self.max_error = max(self.max_error, float(errors.max()))
        self.priority[idx] = (errors + self.eps) ** self.alpha
