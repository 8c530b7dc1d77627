"""Decision-tree conversation policies: FacT-CRS (``tree``) and the popularity-prior tree baseline
(``popularity-tree``).

``tree`` is FacT-CRS of Haque & Wang, "Rethinking Conversational Recommendations: Is Decision Tree
All You Need?" (CIKM 2022; reference code: the ``Fact-CRS`` notebooks of github.com/HCDM/XRec),
the paper's four answers to the four questions of a multi-turn conversation:

* **Which question to ask.** A forest of ``n_trees`` binary trees over the training *interactions*;
  each node asks whether the wanted item has one attribute value and routes the interaction by the
  answer. A node carries a vector s (the "interaction embedding" of its interactions); a split is
  the value whose two children, each given its own fitted vector, explain their interactions best
  (the FacT objective: the tree regularises the latent factors). Each tree draws its values
  (``feature_share`` of them, as the reference's random feature subsets) and its interactions
  (``sample_share`` of them with replacement, the reference's 90% draw).
* **How to rank.** Items have vectors v_i; the candidates are ranked by v_i · s̄, s̄ the mean of the
  vectors of the nodes the conversation has reached in the trees it has used (the reference's
  ``sulist``), the node's own items first, then the other candidates.
* **When to recommend.** At a node whose live candidates (its items still in play) number at most
  ``stop_items`` (the reference's ``EARLY_STOPPING``, 400 on its movie data, here chosen on the
  validation episodes), at a leaf, and on the last turn.
* **A rejected list.** The context vector is moved away from the rejected items and towards the
  next ``toward`` items of the node's ranking, s' = (s̄ + ``pull``·mean v_toward − ``push``·mean
  v_shown) / (1 + ``pull`` − ``push``) (1, 0.01 and 30 in the reference), and the conversation
  continues in the unused tree whose node, reached by the answers known so far, has the vector
  most like s'. Answers already given are not asked again: a node whose value is known is passed
  through.

What this implementation fixes where the paper or its code leaves room (docs/conversation.md):

* **Interactions are items here.** FacT-CRS routes an interaction by the values *that user* gave
  for the item; the simulated user here describes the target by the item's own values, so every
  interaction with an item routes alike and a node holds a multiset of items: its items, each
  counted by its training interactions in the tree's draw.
* **The node's loss** is the softmax log-likelihood of its interactions' items among the node's
  items under its vector, −Σ_i c_i log softmax_{j∈node}(v_j·s)_i, fitted by ``fit_steps`` gradient
  steps from the parent's vector (the reference fits a sigmoid log-loss by one SGD pass from the
  parent's vector). The softmax over the node's items is how the vector is used when the node
  recommends. With uninformative vectors (s = 0) the loss is Σ_child N_child · log n_child, and with
  vectors free enough to fit each item it falls to N · H(item | answer): the split then maximises
  the information the answer gives about the item (tests/converse/test_tree.py pins both).
* **Item vectors** are BPR-MF's [q_i, b_i] (:mod:`penchant.models.bpr`) on the scorer's training
  interactions, rescaled to unit mean square norm, and held fixed while the trees grow (the
  reference pre-trains them with a sigmoid loss and negatives, then keeps them fixed too).
* **Training's early stop**: the reference's Gini-index stop is commented out in its code, and the
  softmax loss of two children never exceeds the parent's, so a node becomes a leaf at
  ``max_depth``, with fewer than two items, or when no value splits it; the stop that acts is the
  candidate count at inference.
* **The conversation is a function of the state.** A session keeps only the state between turns, so
  each act replays the paper's procedure from it: the rejected lists (``rejected_items`` in runs of
  ``list_size``) give how many trees were used, and each is walked with every answer known *now*.
* **Mine: the user's history.** FacT-CRS knows a user only through the conversation (its test
  users are new). Here a user's history (``state.history``) is folded in as one more node: a
  vector fitted to the history's items exactly as a node's is, averaged into s̄ with weight
  ``history_weight`` (chosen on validation episodes with a history; 0 is the paper), and it picks
  the first tree as s' picks the next (for a user with no history, tree 0, as in the reference).
* **Mine: rejected values.** Candidates holding a value the user rejected rank after the others (the
  platform's rule for a rejected value, :class:`~penchant.converse.state.Scorer`); the reference
  ranks a node's items whatever the user said in other trees.
* When every tree is used the policy keeps recommending (the reference ends the conversation).
* The platform's scorer is not used: the ranking is FacT-CRS's own.

``popularity-tree`` is what ``tree`` was before: max-entropy asking with the candidates weighted by
their training popularity, recommending once at most ``leaf_size`` candidates remain (the leaf size
chosen on validation episodes) — a decision tree over items grown greedily by information gain under
a popularity prior, expanded along the path the answers take.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.converse.policies import Policy, binary_entropy
from penchant.converse.state import ConversationState, Scorer
from penchant.converse.vocabulary import LIST_SIZE, MAX_TURNS, Action
from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import ConfigError, DataError
from penchant.models.registry import register

#: the arrays :meth:`FactTree.state_arrays` writes
ARRAYS = ("item_vectors", "feature", "yes", "no", "node_vectors", "node_items_indptr", "node_items", "roots")
#: leaf sizes the validation episodes choose among (``stop_items``), capped at the catalogue
STOP_GRID = (10, 25, 50, 100, 200, 400, 800)
#: history weights tried where the validation users have a history
HISTORY_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


def fit_node_vectors(vectors: np.ndarray, counts: np.ndarray, members: np.ndarray, start: np.ndarray, *,
                     steps: int, lr: float, reg: float) -> tuple[np.ndarray, np.ndarray]:
    """Fit one vector per candidate node, all at once.

    A node's loss is −Σ_{i∈node} c_i log softmax_{j∈node}(v_j · s)_i (nats): how well its vector s
    ranks its interactions' items among the node's items. Each vector starts at ``start`` and takes
    ``steps`` gradient steps of size ``lr`` on the mean loss per interaction plus (``reg``/2)‖s‖².

    Args:
        vectors: float32 (n, d) the vectors of the items that may be in the nodes.
        counts: float (n,) interactions per item.
        members: bool (K, n) which items each of the K nodes holds (each row with positive count).
        start: float (d,) the starting vector (the parent's).
    Returns:
        float32 (K, d) the fitted vectors and float64 (K,) each node's loss at its vector.
    """
    c = np.where(members, counts[None, :], 0.0).astype(np.float32)  # (K, n)
    total = c.sum(1, keepdims=True)
    mean_member = (c @ vectors) / np.maximum(total, 1e-12)  # (K, d)
    s = np.repeat(np.asarray(start, np.float32)[None, :], len(members), axis=0)

    outside = np.where(members, np.float32(0), np.float32(-np.inf))

    def log_probs(s: np.ndarray) -> np.ndarray:
        z = s @ vectors.T  # (K, n)
        z += outside
        z -= z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    for _ in range(steps):
        p = np.exp(log_probs(s))
        s = s - lr * (p @ vectors - mean_member + reg * s)
    loss = -(c * np.where(members, log_probs(s), 0.0)).sum(1, dtype=np.float64)
    return s.astype(np.float32), loss


def split_loss_at(logits: np.ndarray, counts: np.ndarray, members: np.ndarray) -> np.ndarray:
    """float64 (K,): the loss of each of K splits of a node when both children keep the parent's
    vector: Σ over the two children of −Σ_{i∈child} c_i log softmax_{j∈child}(z)_i, z = ``logits``
    (n,) the node's items' v_i·s. ``members``: bool (K, n), the yes-child of each split."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max())
    c = np.asarray(counts, np.float64)
    m = members.astype(np.float64)
    total = 0.0
    for part in (m, 1.0 - m):
        mass, weight, fit = part @ e, part @ c, part @ (c * (z - z.max()))
        total = total + weight * np.log(np.maximum(mass, 1e-300)) - fit
    return total


def _item_vectors(train: sp.csr_matrix, dim: int, epochs: int, seed: int) -> np.ndarray:
    """float32 (n_items, dim + 1): BPR-MF's item keys [q_i, b_i] on the users × items ``train``,
    scaled to a mean square norm of 1 (so a unit step size suits every catalogue)."""
    from penchant.data.dataset import Dataset
    from penchant.models.bpr import BPR

    coo = train.tocoo()
    n_users, n_items = train.shape
    ds = Dataset(np.arange(n_users).astype(str), np.arange(n_items).astype(str), coo.row.astype(np.int32),
                 coo.col.astype(np.int32), name="tree training interactions")
    keys = BPR(factors=dim, epochs=epochs, seed=seed, device="cpu").fit(ds).key_vectors().astype(np.float64)
    rms = np.sqrt((keys ** 2).sum(1).mean())
    return (keys / max(rms, 1e-12)).astype(np.float32)


@register
class FactTree(Policy):
    """FacT-CRS (Haque & Wang, CIKM 2022): a forest of attribute trees with embedded nodes asks,
    ranks, stops and recovers from a rejected list (see the module's notes).

    Args:
        multi_choice: offer this many values of the node's attribute type at once (0: one value).
        list_size: items per recommendation.
        n_trees: trees in the forest (the reference's N_TREE).
        max_depth: questions along one tree's path at most.
        dim: latent dimensions of the item vectors (the node vectors have one more, for the item bias).
        epochs: BPR passes over the training interactions for the item vectors.
        fit_steps: gradient steps fitting a node's vector from its parent's.
        screen: at a node, the values whose split is best at the parent's vector (no refit) that are
            refitted with their own vectors to choose among.
        lr: step size of those steps (the item vectors have unit mean square norm).
        reg: L2 weight on a node's vector.
        feature_share: share of the attribute values each tree may split on (the reference's 0.9).
        sample_share: interactions drawn with replacement for each tree, as a share of all (0.9).
        stop_items: recommend once the current node holds at most this many candidates (chosen on
            validation episodes by ``fit``).
        history_weight: weight of the user's folded-in history against one tree node in the
            context vector (0: the paper, the conversation alone; chosen on validation episodes of
            users with a history).
        toward: after a rejected list, the context moves towards this many next items of the node.
        pull: how far it moves towards them.
        push: how far it moves away from the rejected items.
        seed: seed of the item vectors and the forest's draws.
    """

    name = "tree"
    learned = True
    ready_untrained = False

    def __init__(self, graph: AttributeGraph, *, multi_choice: int = 0, list_size: int = LIST_SIZE,
                 n_trees: int = 10, max_depth: int = 8, dim: int = 32, epochs: int = 30, fit_steps: int = 8, screen: int = 16,
                 lr: float = 1.0, reg: float = 0.01, feature_share: float = 0.9, sample_share: float = 0.9,
                 stop_items: int = 50, history_weight: float = 1.0, toward: int = 30, pull: float = 1.0,
                 push: float = 0.01, seed: int = DEFAULT_SEED) -> None:
        super().__init__(graph, multi_choice=multi_choice, list_size=list_size)
        if min(n_trees, max_depth, dim, epochs, screen) < 1 or min(fit_steps, stop_items, toward) < 0:
            raise ConfigError("n_trees, max_depth, dim, epochs and screen must be ≥ 1; fit_steps, stop_items and "
                              "toward ≥ 0")
        if not (0 < feature_share <= 1 and 0 < sample_share <= 1):
            raise ConfigError("feature_share and sample_share must be in (0, 1]")
        if lr <= 0 or reg < 0 or history_weight < 0 or pull < 0 or push < 0 or pull - push <= -1:
            raise ConfigError("lr must be positive; reg, history_weight, pull and push non-negative")
        self.n_trees, self.max_depth, self.dim, self.epochs = n_trees, max_depth, dim, epochs
        self.fit_steps, self.screen, self.lr, self.reg = fit_steps, screen, lr, reg
        self.feature_share, self.sample_share = feature_share, sample_share
        self.stop_items, self.history_weight = stop_items, history_weight
        self.toward, self.pull, self.push, self.seed = toward, pull, push, seed
        self.item_vectors: np.ndarray | None = None
        self._has = graph.items.toarray().astype(bool)  # (n_items, V)
        self._fold_cache: tuple[bytes, np.ndarray | None] = (b"", None)

    # ----- training ---------------------------------------------------------------------------
    def fit(self, trainer) -> FactTree:
        """Item vectors and the forest from the scorer's training interactions
        (``trainer.train``), then ``stop_items`` and ``history_weight`` chosen on the
        selection episodes (``trainer.select_value``); ``history_`` is the selection hDCG of each
        setting tried, in order."""
        train = getattr(trainer, "train", None)
        if not sp.issparse(train) or train.nnz == 0:
            raise DataError("the tree policy learns from the scorer's training interactions, and this trainer has none",
                            expected="a PolicyTrainer given train= (users × items)")
        train = sp.csr_matrix(train)
        if train.shape[1] != self.graph.n_items:
            raise DataError(f"training interactions over {train.shape[1]} items, the graph has {self.graph.n_items}")
        self.item_vectors = _item_vectors(train, self.dim, self.epochs, self.seed)
        self._grow_forest(np.asarray(train.sum(0), dtype=np.float64).ravel())
        self.history_ = []
        users = trainer.select_episodes[0]
        with_history = len(users) > 0 and bool((trainer.exclude.getnnz(axis=1)[users] > 0).any())
        stops = sorted({min(s, self.graph.n_items) for s in STOP_GRID})
        score = self._choose(trainer, "stop_items", stops)
        if with_history:  # the weight of the history means nothing to users without one
            weight = self.history_weight
            score = self._choose(trainer, "history_weight", HISTORY_GRID, (score, weight))
            if self.history_weight != weight:  # the stop again, next to where it was
                at = stops.index(self.stop_items)
                self._choose(trainer, "stop_items", stops[max(0, at - 1):at + 2], (score, self.stop_items))
        return self

    def _choose(self, trainer, name: str, grid, known: tuple[float, object] | None = None) -> float:
        """Set parameter ``name`` to the value of ``grid`` with the best selection hDCG (``known``:
        a value's hDCG measured already, not played again; ties: the earlier); each hDCG played is
        appended to ``history_``. Returns the best hDCG."""
        best = known
        for value in grid:
            if known is not None and value == known[1]:
                continue
            setattr(self, name, value)
            self.history_.append(trainer.select_value(self))
            if best is None or self.history_[-1] > best[0]:
                best = (self.history_[-1], value)
        setattr(self, name, best[1])
        return best[0]

    def _grow_forest(self, popularity: np.ndarray) -> None:
        """``n_trees`` trees, each over its own draw of the interactions and share of the values."""
        rng = np.random.default_rng([self.seed, 35])
        n_values = self.graph.n_values
        has = self._has
        popularity = np.asarray(popularity, np.float64)
        total = popularity.sum()
        nodes: dict[str, list] = {"feature": [], "yes": [], "no": [], "vector": [], "items": []}
        roots = []
        for _ in range(self.n_trees):
            counts = rng.multinomial(round(self.sample_share * total), popularity / total).astype(np.float64)
            allowed = rng.random(n_values) < self.feature_share
            roots.append(self._grow(has, counts, allowed, nodes))
        self.feature = np.asarray(nodes["feature"], np.int64)
        self.yes = np.asarray(nodes["yes"], np.int64)
        self.no = np.asarray(nodes["no"], np.int64)
        self.node_vectors = np.vstack(nodes["vector"]).astype(np.float32)
        lengths = np.array([len(i) for i in nodes["items"]], np.int64)
        self.node_items_indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.node_items = np.concatenate(nodes["items"]).astype(np.int64)
        self.roots = np.asarray(roots, np.int64)

    def _grow(self, has: np.ndarray, counts: np.ndarray, allowed: np.ndarray, nodes: dict[str, list]) -> int:
        """Grow one tree (depth first) into ``nodes``; returns its root's index."""
        vectors = self.item_vectors
        items = np.flatnonzero(counts > 0)
        fit = {"steps": self.fit_steps, "lr": self.lr, "reg": self.reg}
        root_vec, _ = fit_node_vectors(vectors[items], counts[items], np.ones((1, len(items)), bool),
                                       np.zeros(vectors.shape[1], np.float32), **(fit | {"steps": 4 * self.fit_steps}))

        def new_node(vec: np.ndarray, members: np.ndarray) -> int:
            for key, value in (("feature", -1), ("yes", -1), ("no", -1), ("vector", vec), ("items", members)):
                nodes[key].append(value)
            return len(nodes["feature"]) - 1

        root = new_node(root_vec[0], items)
        stack = [(root, items, root_vec[0], 0, np.zeros(self.graph.n_values, bool))]
        while stack:
            node, items, vec, depth, used = stack.pop()
            if depth >= self.max_depth or len(items) < 2:
                continue
            open_values = np.flatnonzero(allowed & ~used)
            sub = has[np.ix_(items, open_values)]  # (n, F)
            held = sub.sum(0)
            splits = (held > 0) & (held < len(items))
            if not splits.any():
                continue
            values, member = open_values[splits], sub[:, splits].T  # (K,), (K, n)
            v, c = vectors[items], counts[items]
            if len(values) > self.screen:  # the reference too weighs every value cheaply, then fits the best
                keep = np.sort(np.argsort(split_loss_at(v @ vec, c, member), kind="stable")[:self.screen])
                values, member = values[keep], member[keep]
            k = len(values)
            child_vec, child_loss = fit_node_vectors(v, c, np.vstack([member, ~member]), vec, **fit)
            yes_vec, no_vec = child_vec[:k], child_vec[k:]
            best = int(np.argmin(child_loss[:k] + child_loss[k:]))  # ties: the lowest value index
            now_used = used.copy()
            now_used[values[best]] = True
            yes_items, no_items = items[member[best]], items[~member[best]]
            yes_node, no_node = new_node(yes_vec[best], yes_items), new_node(no_vec[best], no_items)
            nodes["feature"][node], nodes["yes"][node], nodes["no"][node] = int(values[best]), yes_node, no_node
            stack.append((no_node, no_items, no_vec[best], depth + 1, now_used))
            stack.append((yes_node, yes_items, yes_vec[best], depth + 1, now_used))
        return root

    # ----- a conversation ---------------------------------------------------------------------
    def _check_trained(self) -> None:
        if self.item_vectors is None:
            raise ConfigError("the tree policy is untrained: fit it on validation episodes or load its artefact")

    def node_members(self, node: int) -> np.ndarray:
        """int64 the items a node holds (training items, in its tree's draw, consistent with its path)."""
        return self.node_items[self.node_items_indptr[node]:self.node_items_indptr[node + 1]]

    def walk(self, tree: int, known: dict[int, bool]) -> int:
        """The node of ``tree`` the answers ``known`` (value → accepted) lead to: the first node whose
        value is unanswered, or a leaf."""
        node = int(self.roots[tree])
        while self.feature[node] >= 0 and int(self.feature[node]) in known:
            node = int(self.yes[node] if known[int(self.feature[node])] else self.no[node])
        return node

    def fold_in(self, history: np.ndarray) -> np.ndarray | None:
        """float32 (dim + 1,) the user's history as a node: a vector fitted to the history's items
        among all items as a node's is, from zero; None for an empty history."""
        history = np.asarray(history, dtype=np.int64)
        if len(history) == 0:
            return None
        key = history.tobytes()
        if self._fold_cache[0] != key:
            counts = np.zeros(self.graph.n_items)
            counts[history] = 1.0
            vec, _ = fit_node_vectors(self.item_vectors, counts, np.ones((1, self.graph.n_items), bool),
                                      np.zeros(self.item_vectors.shape[1], np.float32), steps=4 * self.fit_steps,
                                      lr=self.lr, reg=self.reg)
            self._fold_cache = (key, vec[0])
        return self._fold_cache[1]

    def context(self, nodes: list[int], history: np.ndarray | None) -> np.ndarray:
        """float32 (dim + 1,): the mean of the nodes' vectors and the history's (weight ``history_weight``)."""
        total = self.node_vectors[nodes].sum(0) if nodes else np.zeros(self.node_vectors.shape[1], np.float32)
        weight = float(len(nodes))
        if history is not None and self.history_weight > 0:
            total, weight = total + self.history_weight * history, weight + self.history_weight
        return total / max(weight, 1e-12)

    def closest_tree(self, free: np.ndarray, known: dict[int, bool], target: np.ndarray) -> int:
        """Among the ``free`` trees, the one whose node reached by ``known`` has the vector of largest
        dot product with ``target`` (ties: the lowest index); −1 when none is free."""
        trees = np.flatnonzero(free)
        if not len(trees):
            return -1
        sims = np.array([float(self.node_vectors[self.walk(int(t), known)] @ target) for t in trees])
        return int(trees[int(np.argmax(sims))])

    def plan(self, state: ConversationState) -> tuple[dict[int, bool], np.ndarray | None, list[int], int]:
        """Replay the conversation from ``state``: the known answers, the history's vector, the
        nodes reached in the trees already used (one per rejected list) and the tree in use now
        (−1 when every tree is used)."""
        known = {int(v): True for v in state.accepted} | {int(v): False for v in state.rejected}
        history = self.fold_in(getattr(state, "history", np.zeros(0, np.int64)))
        free = np.ones(len(self.roots), bool)
        start = history if history is not None else np.zeros(self.node_vectors.shape[1], np.float32)
        tree = self.closest_tree(free, known, start)
        shown = np.asarray(state.rejected_items, dtype=np.int64)
        visited: list[int] = []
        for lo in range(0, len(shown), self.list_size):
            if tree < 0:
                break
            free[tree] = False
            visited.append(self.walk(tree, known))
            moved = self.context(visited, history)
            ranked = self.ranking(state, visited, history)
            toward = ranked[:self.toward]
            away = self.item_vectors[shown[lo:lo + self.list_size]].mean(0)
            if len(toward):
                moved = (moved + self.pull * self.item_vectors[toward].mean(0) - self.push * away) / (1 + self.pull - self.push)
            else:
                moved = moved - self.push * away
            tree = self.closest_tree(free, known, moved)
        return known, history, visited, tree

    def ranking(self, state: ConversationState, nodes: list[int], history: np.ndarray | None) -> np.ndarray:
        """int64 the candidates, best first: those with fewer rejected values first, then the last
        node's items, then by v_i · context."""
        cand = np.flatnonzero(state.candidates)
        if not len(cand):
            return cand
        score = self.item_vectors[cand] @ self.context(nodes, history)
        in_node = np.zeros(self.graph.n_items, bool)
        if nodes:
            in_node[self.node_members(nodes[-1])] = True
        rejected = self._has[:, state.rejected].sum(1)[cand] if state.rejected else np.zeros(len(cand), np.int64)
        return cand[np.lexsort((-score, ~in_node[cand], rejected))]

    def act(self, state: ConversationState, scorer: Scorer) -> Action:
        self._check_trained()
        known, history, visited, tree = self.plan(state)
        if tree >= 0:
            node = self.walk(tree, known)
            visited = visited + [node]
            value = int(self.feature[node])
            live = int(state.candidates[self.node_members(node)].sum())
            if value >= 0 and live > self.stop_items and state.turn < MAX_TURNS:
                return self.ask(state, self._question(value, node, state))
        items = self.ranking(state, visited, history)[:self.list_size]
        return Action("recommend", items=tuple(int(i) for i in items))

    def _question(self, value: int, node: int, state: ConversationState) -> np.ndarray:
        """float (V,): the node's value first; in the multi-choice variant the other values of its
        type follow by how evenly they split the node's live candidates."""
        ranking = np.full(self.graph.n_values, -np.inf)
        if self.multi_choice:
            members = self.node_members(node)
            live = members[state.candidates[members]]
            if len(live):
                share = self._has[live].mean(0)
                h = binary_entropy(share)
                ranking = np.where(h > 0, h, -np.inf)
        ranking[value] = 2.0  # above any entropy (≤ 1 bit)
        return ranking

    # ----- parameters and what was learned ---------------------------------------------------
    def params(self) -> dict:
        return super().params() | {
            "list_size": self.list_size, "n_trees": self.n_trees, "max_depth": self.max_depth, "dim": self.dim,
            "epochs": self.epochs, "fit_steps": self.fit_steps, "screen": self.screen, "lr": self.lr, "reg": self.reg,
            "feature_share": self.feature_share, "sample_share": self.sample_share, "stop_items": self.stop_items,
            "history_weight": self.history_weight, "toward": self.toward, "pull": self.pull, "push": self.push,
            "seed": self.seed}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The item vectors and the forest: per node its value (−1 at a leaf), children (−1), vector
        and items (CSR: ``node_items_indptr``, ``node_items``), and each tree's root."""
        self._check_trained()
        return {"item_vectors": self.item_vectors, "feature": self.feature, "yes": self.yes, "no": self.no,
                "node_vectors": self.node_vectors, "node_items_indptr": self.node_items_indptr,
                "node_items": self.node_items, "roots": self.roots}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if set(arrays) != set(ARRAYS):
            raise ValueError(f"the tree policy's state is {sorted(ARRAYS)}, not {sorted(arrays)}")
        vectors = np.asarray(arrays["item_vectors"], np.float32)
        n_nodes = len(arrays["feature"])
        if vectors.shape[0] != self.graph.n_items or np.asarray(arrays["node_vectors"]).shape != (n_nodes, vectors.shape[1]):
            raise ValueError(f"tree state over {vectors.shape[0]} items and {n_nodes} nodes does not fit this "
                             f"{self.graph.n_items}-item graph or its own node vectors")
        if int(np.max(arrays["feature"], initial=-1)) >= self.graph.n_values:
            raise ValueError("the tree splits on a value this graph does not have")
        self.item_vectors = vectors
        self.feature, self.yes, self.no = (np.asarray(arrays[k], np.int64) for k in ("feature", "yes", "no"))
        self.node_vectors = np.asarray(arrays["node_vectors"], np.float32)
        self.node_items_indptr = np.asarray(arrays["node_items_indptr"], np.int64)
        self.node_items = np.asarray(arrays["node_items"], np.int64)
        self.roots = np.asarray(arrays["roots"], np.int64)
        self._fold_cache = (b"", None)


@register
class PopularityTree(Policy):
    """Max-entropy asking under a popularity prior: ask the value that splits the candidates,
    weighted by their training popularity, most evenly; recommend once at most ``leaf_size`` remain.

    Args:
        multi_choice: offer this many values of the chosen value's type at once (0: one value).
        list_size: items per recommendation.
        leaf_size: recommend at this many candidates or fewer (chosen on validation episodes).
    """

    name = "popularity-tree"
    learned = True

    def __init__(self, graph: AttributeGraph, *, multi_choice: int = 0, list_size: int = LIST_SIZE,
                 leaf_size: int = LIST_SIZE) -> None:
        super().__init__(graph, multi_choice=multi_choice, list_size=list_size)
        self.leaf_size = leaf_size
        self.prior = np.ones(graph.n_items)

    def use_popularity(self, popularity: np.ndarray) -> None:
        self.prior = np.asarray(popularity, dtype=np.float64) + 1.0

    def act(self, state: ConversationState, scorer: Scorer) -> Action:
        if int(state.candidates.sum()) <= self.leaf_size:
            return self.recommend(state, scorer)
        h = binary_entropy(self.shares(self.prior * state.candidates))
        h[list(state.asked)] = 0.0
        if h.max() <= 0:
            return self.recommend(state, scorer)
        return self.ask(state, np.where(h > 0, h, -np.inf))

    def fit(self, trainer) -> PopularityTree:
        """Prior = training popularity of each item (+1); leaf size chosen on validation episodes."""
        self.prior = trainer.popularity + 1.0
        best = None
        for leaf in (10, 20, 50, 100, 200):
            self.leaf_size = leaf
            value = trainer.select_value(self)
            if best is None or value > best[0]:
                best = (value, leaf)
        self.leaf_size = best[1]
        return self

    def params(self) -> dict:
        return super().params() | {"leaf_size": self.leaf_size}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The popularity prior (training interactions per item + 1)."""
        return {"prior": self.prior}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if set(arrays) != {"prior"} or len(arrays["prior"]) != self.graph.n_items:
            raise ValueError(f"the popularity tree's state is its prior over {self.graph.n_items} items, "
                             f"not {sorted(arrays)}")
        self.prior = np.asarray(arrays["prior"], np.float64)
