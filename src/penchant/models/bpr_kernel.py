"""BPR's CPU epoch as compiled loops (numba): the same lazy-Adam step as
:func:`penchant.models.bpr.bpr_row_gradients` + :meth:`penchant.models.bpr.LazyAdam.update`, without
torch's ~25 passes over each batch.

Per batch of B (user, positive, negative) triples, :func:`bpr_epoch` makes

1. one pass over the pairs: the score difference x = p_u·(q_i − q_j) + b_i − b_j from the rows as
   they were before the step, g = −σ(−x)/B, and each pair's gradient added into preallocated
   gradient rows (users (n_users, d), items (n_items, d + 1)), with reg's 2·reg/B·row per
   occurrence (not on the bias column); the first touch of a row marks it (a byte per table row)
   and appends it to the step's list of touched rows — no sort;
2. one pass over the touched rows: Adam on each row's value and moments in place, with the bias
   correction of the global step, and the gradient row and its mark cleared for the next step.

An untouched row and its moments do not move (lazy Adam). Floats are float32 like the torch
path; a row's gradient is summed in pair order, so the factors equal the torch step's up to float
rounding (tests/models/test_bpr_compiled.py: ≤ 1e-5 after several steps) and one seed gives the
same factors on every run. Each table is one (n, 4, w) float32 array — a row's value, gradient and
two moments side by side — and the rows of the pairs (pass 1) and of the listed rows (pass 2)
``AHEAD`` places on are prefetched: the step is bound by random rows' memory latency (1.6M pairs
on the 20M shape: separate arrays 1.9 s, one row layout 1.8 s, with prefetching 0.9 s of CPU).

Threads: a loop over pairs in parallel would race on a row met by several pairs of a step, so
with ``threads`` > 1 (:class:`LazyAdamState`) a step runs in three phases instead — margins by
ranges of pairs, gradients by row owner, Adam by owner — no row is written by two threads and the
factors do not depend on the thread count. On a busy machine (every core taken) the phases cost
1.7–2× the CPU of one thread and lose in wall time too; penchant's thread rule picks one thread there.

:func:`seen` answers :class:`penchant.models.training.NegativeSampler`'s membership question on
large logs from the CSR rows (a binary search in the user's sorted items) instead of a search over
all n_users × n_items keys.

The first call in a fresh environment compiles (``cache=True`` keeps the machine code in
``__pycache__`` for later processes; where no cache folder is writable, :func:`machine_code_cache`
compiles in each process and warns).
"""

from __future__ import annotations

import warnings

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def machine_code_cache() -> bool:
    """``cache=`` of the kernels below: True where numba can keep their machine code for later
    processes (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside this file, else the user's cache
    folder, ``~/.cache/numba``). Where none is writable (a read-only install and no writable home: a
    read-only container, a service user without one) numba's ``cache=True`` would raise at import
    and no BPR fit could run; the kernels are then compiled in each process instead (about 3 CPU s
    at a process's first BPR fit) and this says so once, as a warning naming the way out."""
    from numba.core.caching import FunctionCache

    try:
        FunctionCache(machine_code_cache)  # the locator search numba's cache=True makes for this file
        return True
    except RuntimeError:
        warnings.warn("penchant.models.bpr_kernel: numba finds no writable cache folder (this package's "
                      "__pycache__, NUMBA_CACHE_DIR, ~/.cache/numba), so BPR's compiled epoch is compiled "
                      "again in each process (about 3 CPU s); set NUMBA_CACHE_DIR to a writable folder to "
                      "keep it", RuntimeWarning, stacklevel=2)
        return False


CACHE = machine_code_cache()
#: pairs (pass 1) and rows (pass 2) ahead of the current one whose state is prefetched
AHEAD = 8
#: float32s a cache line holds
LINE = 16


@intrinsic
def _prefetch(typingctx, state, row, offset):
    """Ask the CPU to bring ``state[row]``'s float ``offset`` (within the row) into the cache ahead of
    its use (LLVM's ``llvm.prefetch``, for writing, keep in all levels): the random rows of a step
    are fetched several at a time instead of one miss after another."""

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        stride = cgutils.unpack_tuple(builder, ary.strides)[0]
        base = builder.ptrtoint(ary.data, ir.IntType(64))
        at = builder.add(base, builder.add(builder.mul(args[1], stride), builder.mul(args[2], ir.Constant(ir.IntType(64), 4))))
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p] + [ir.IntType(32)] * 3),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.inttoptr(at, i8p)] + [ir.Constant(ir.IntType(32), v) for v in (1, 3, 1)])
        return context.get_dummy_value()

    return types.void(state, types.int64, types.int64), codegen


@njit(cache=CACHE, nogil=True, inline="always")
def _prefetch_row(state, row, floats) -> None:
    """Prefetch the first ``floats`` float32s of ``state[row]`` (state float32 (n, 4, w), C order)."""
    for off in range(0, floats, LINE):
        _prefetch(state, np.int64(row), np.int64(off))


#: the planes of a table's state (n, 4, w): a row's value, gradient and Adam moments side by side,
#: so that a step's random row touches read one contiguous 4·w floats (one cache-line stream) instead
#: of four arrays' rows
VALUE, GRAD, M, V = 0, 1, 2, 3


FAST = {"reassoc", "contract"}  # the dot product x may be summed in any order (torch's order is its own too)


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def bpr_epoch(su: np.ndarray, sq: np.ndarray, mark_u: np.ndarray, mark_i: np.ndarray, rows_u: np.ndarray,
              rows_i: np.ndarray, users: np.ndarray, items: np.ndarray, negatives: np.ndarray, batch: int,
              lr: float, beta1: float, beta2: float, eps: float, reg: float, t: int) -> int:
    """Lazy-Adam BPR steps over one epoch's triples, in place, on one thread; returns the global step
    after them.

    ``su`` float32 (n_users, 4, d) and ``sq`` float32 (n_items, 4, d + 1) the users' and items'
    state, planes :data:`VALUE` (the factors; the item bias is ``sq``'s last column), :data:`GRAD`
    (zero on entry, left zero), :data:`M` and :data:`V` (Adam's first and second moments);
    ``mark_u`` (n_users,) and ``mark_i`` (n_items,) uint8 zero (left zero); ``rows_u`` (batch,) and
    ``rows_i`` (2·batch,) int32 scratch for a step's touched rows; ``users``, ``items``,
    ``negatives`` int32 (N,) the triples in step order, ``batch`` of them a step (the last step takes
    the rest); ``t`` the global step before the first. Each step: mean −log σ(x_ui − x_uj) over its
    pairs + reg·Σ(‖p_u‖² + ‖q_i‖² + ‖q_j‖²)/B over its occurrences, one Adam step on the rows it
    touches.
    """
    n, d = len(users), su.shape[2]
    f32 = np.float32
    b1, b2, e = f32(beta1), f32(beta2), f32(eps)
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        c, scale = f32(2.0 * reg / (stop - start)), f32(-1.0 / (stop - start))
        nu = 0
        ni = 0
        for s in range(start, stop):  # pass 1: gradients onto the touched rows
            if s + AHEAD < stop:  # the value and gradient planes of a later pair's rows
                _prefetch_row(su, users[s + AHEAD], 2 * d)
                _prefetch_row(sq, items[s + AHEAD], 2 * d + 2)
                _prefetch_row(sq, negatives[s + AHEAD], 2 * d + 2)
            u, i, j = users[s], items[s], negatives[s]
            g = _margin_gradient(su, sq, u, i, j, scale)
            if mark_u[u] == 0:  # first touches: marked and listed
                mark_u[u] = 1
                rows_u[nu] = u
                nu += 1
            if mark_i[i] == 0:
                mark_i[i] = 1
                rows_i[ni] = i
                ni += 1
            if mark_i[j] == 0:
                mark_i[j] = 1
                rows_i[ni] = j
                ni += 1
            gu, gi, gj = su[u, GRAD], sq[i, GRAD], sq[j, GRAD]
            pu, qi, qj = su[u, VALUE], sq[i, VALUE], sq[j, VALUE]
            for k in range(d):  # one loop for the three rows (as _add_user and _add_item, fused)
                gu[k] += g * (qi[k] - qj[k]) + c * pu[k]
                gi[k] += g * pu[k] + c * qi[k]
                gj[k] += c * qj[k] - g * pu[k]
            gi[d] += g
            gj[d] -= g
        t += 1  # pass 2: Adam on the touched rows, with the bias correction of step t
        step, correct2 = f32(lr / (1.0 - beta1 ** t)), f32(1.0 - beta2 ** t)
        _adam_rows(su, mark_u, rows_u, nu, b1, b2, e, step, correct2)
        _adam_rows(sq, mark_i, rows_i, ni, b1, b2, e, step, correct2)
    return t


@njit(cache=CACHE, nogil=True, inline="always", fastmath=FAST)
def _margin_gradient(su, sq, u, i, j, scale):
    """−σ(−x)/B (``scale`` = −1/B) for x = p_u·(q_i − q_j) + b_i − b_j, from the VALUE planes."""
    pu, qi, qj = su[u, VALUE], sq[i, VALUE], sq[j, VALUE]
    d = su.shape[2]
    x = qi[d] - qj[d]
    for k in range(d):
        x += pu[k] * (qi[k] - qj[k])
    return scale / (np.float32(1.0) + np.exp(x))


@njit(cache=CACHE, nogil=True, inline="always", fastmath=FAST)
def _add_user(su, sq, mark, rows, count, u, i, j, g, c):
    """User ``u``'s gradient of one pair, g·(q_i − q_j) + c·p_u, into its GRAD plane (the row marked
    and listed on its first touch); returns the listed rows' count."""
    if mark[u] == 0:  # first touch: marked and listed (a helper for these four lines ran 2× slower)
        mark[u] = 1
        rows[count] = u
        count += 1
    pu, qi, qj, gu = su[u, VALUE], sq[i, VALUE], sq[j, VALUE], su[u, GRAD]
    for k in range(su.shape[2]):
        gu[k] += g * (qi[k] - qj[k]) + c * pu[k]
    return count


@njit(cache=CACHE, nogil=True, inline="always", fastmath=FAST)
def _add_item(su, sq, mark, rows, count, u, row, i, j, g, c):
    """Item ``row``'s gradient of one pair (``row`` is ``i``, the positive, or ``j``, the negative):
    ±g·[p_u, 1] + c·[q_row, 0] into its GRAD plane; returns the listed rows' count."""
    if mark[row] == 0:
        mark[row] = 1
        rows[count] = row
        count += 1
    sign = np.float32(1.0) if row == i else np.float32(-1.0)
    pu, qr, gr = su[u, VALUE], sq[row, VALUE], sq[row, GRAD]
    d = su.shape[2]
    for k in range(d):
        gr[k] += sign * g * pu[k] + c * qr[k]
    gr[d] += sign * g
    return count


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def margins(su: np.ndarray, sq: np.ndarray, users: np.ndarray, items: np.ndarray, negatives: np.ndarray,
            start: int, stop: int, first: int, scale: float, g: np.ndarray) -> None:
    """``g[s − first]`` = −σ(−x)/B for the pairs ``start ≤ s < stop`` (float32 ``g``; ``scale`` = −1/B):
    the first phase of a step on several threads (:meth:`LazyAdamState.epoch`), each on its range."""
    d = su.shape[2]
    for s in range(start, stop):
        if s + AHEAD < stop:
            _prefetch_row(su, users[s + AHEAD], d)
            _prefetch_row(sq, items[s + AHEAD], d + 1)
            _prefetch_row(sq, negatives[s + AHEAD], d + 1)
        g[s - first] = _margin_gradient(su, sq, users[s], items[s], negatives[s], np.float32(scale))


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def owned_gradients(su: np.ndarray, sq: np.ndarray, mark_u: np.ndarray, mark_i: np.ndarray, rows_u: np.ndarray,
                    rows_i: np.ndarray, users: np.ndarray, items: np.ndarray, negatives: np.ndarray, start: int,
                    stop: int, g: np.ndarray, c: float, owner: int, owners: int) -> tuple[int, int]:
    """The second phase on several threads: thread ``owner`` of ``owners`` reads every pair of the
    step (``start ≤ s < stop``, ``g`` from :func:`margins`) and adds the gradients of the rows it owns
    (row mod owners = owner) — no row is written by two threads, and each row sums its pairs in pair
    order, as :func:`bpr_epoch`. ``rows_u``, ``rows_i`` this owner's lists; returns their counts."""
    nu = 0
    ni = 0
    cc = np.float32(c)
    for s in range(start, stop):
        u, i, j = users[s], items[s], negatives[s]
        gs = g[s - start]
        if u % owners == owner:
            nu = _add_user(su, sq, mark_u, rows_u, nu, u, i, j, gs, cc)
        if i % owners == owner:
            ni = _add_item(su, sq, mark_i, rows_i, ni, u, i, i, j, gs, cc)
        if j % owners == owner:
            ni = _add_item(su, sq, mark_i, rows_i, ni, u, j, i, j, gs, cc)
    return nu, ni


@njit(cache=CACHE, nogil=True)
def adam_rows(state: np.ndarray, mark: np.ndarray, rows: np.ndarray, count: int, beta1: float, beta2: float,
              eps: float, step: float, correct2: float) -> None:
    """The third phase on several threads: :func:`_adam_rows` on one owner's rows."""
    f32 = np.float32
    _adam_rows(state, mark, rows, count, f32(beta1), f32(beta2), f32(eps), f32(step), f32(correct2))


@njit(cache=CACHE, nogil=True, inline="always")
def _adam_rows(state, mark, rows, count, b1, b2, eps, step, correct2) -> None:
    """Adam on ``rows[:count]`` of ``state`` (n, 4, w), as :meth:`LazyAdam.update` (m ← m + (1 − β1)
    (g − m), v ← β2·v + (1 − β2)·g², value −= step·m / (√(v / correct2) + eps)); each row's gradient
    and mark are cleared."""
    one = np.float32(1.0)
    w = state.shape[2]
    for r in range(count):
        if r + AHEAD < count:
            _prefetch_row(state, rows[r + AHEAD], 4 * w)
        row = state[rows[r]]
        value, grad, m, v = row[VALUE], row[GRAD], row[M], row[V]
        for k in range(w):
            gr = grad[k]
            m[k] += (one - b1) * (gr - m[k])
            v[k] = b2 * v[k] + (one - b2) * gr * gr
            value[k] -= step * m[k] / (np.sqrt(v[k] / correct2) + eps)
            grad[k] = 0
        mark[rows[r]] = 0


class LazyAdamState:
    """A local CPU fit's lazy-Adam state in the compiled layout: users (n_users, 4, d) and items
    (n_items, 4, d + 1) float32 (:data:`VALUE`, :data:`GRAD`, :data:`M`, :data:`V` planes), the
    touched-row marks and lists, and the global step ``t``; :meth:`epoch` runs an epoch's steps,
    :meth:`values` gives the factors back.

    ``threads`` > 1: each step in three phases, each split over that many threads (Python threads
    running the compiled, GIL-free phases): the pairs' margins by ranges of pairs, the gradients by
    owner of the rows (row mod threads), Adam by owner. No row is written by two threads and each
    row sums its pairs in pair order, so the factors do not depend on the thread count (up to the
    dot product's summation order) and one seed gives one result.
    """

    def __init__(self, p: np.ndarray, q: np.ndarray, batch: int, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, reg: float = 0.0, threads: int = 1) -> None:
        """``p`` (n_users, d) and ``q`` (n_items, d + 1, the bias last) the initial factors (copied)."""
        self.users = np.zeros((p.shape[0], 4, p.shape[1]), np.float32)
        self.items = np.zeros((q.shape[0], 4, q.shape[1]), np.float32)
        self.users[:, VALUE], self.items[:, VALUE] = p, q
        self.marks = np.zeros(len(p), np.uint8), np.zeros(len(q), np.uint8)
        self.threads = max(1, threads)
        self.touched = np.empty((self.threads, batch), np.int32), np.empty((self.threads, 2 * batch), np.int32)
        self.batch, self.lr, self.betas, self.eps, self.reg, self.t = batch, lr, betas, eps, reg, 0

    def epoch(self, users: np.ndarray, items: np.ndarray, negatives: np.ndarray) -> None:
        """Steps over the triples ``users``, ``items``, ``negatives`` int (N,), in this order."""
        users, items, negatives = (np.asarray(a, np.int32) for a in (users, items, negatives))  # one signature to compile
        if self.threads == 1:
            self.t = bpr_epoch(self.users, self.items, *self.marks, self.touched[0][0], self.touched[1][0], users, items,
                               negatives, self.batch, self.lr, *self.betas, self.eps, self.reg, self.t)
            return
        from concurrent.futures import ThreadPoolExecutor

        g = np.empty(self.batch, np.float32)
        with ThreadPoolExecutor(self.threads) as pool:
            for start in range(0, len(users), self.batch):
                self._step(pool, users, items, negatives, start, min(len(users), start + self.batch), g)

    def _step(self, pool, users: np.ndarray, items: np.ndarray, negatives: np.ndarray, start: int, stop: int,
              g: np.ndarray) -> None:
        """One step on ``self.threads`` threads of ``pool`` over the pairs ``start ≤ s < stop`` (``g``
        float32 (batch,) scratch for their margins' gradients)."""
        owners, size = self.threads, stop - start
        cuts = np.linspace(start, stop, owners + 1).astype(np.int64)
        list(pool.map(lambda k: margins(self.users, self.items, users, items, negatives, cuts[k], cuts[k + 1], start,
                                        -1.0 / size, g), range(owners)))
        counts = list(pool.map(lambda k: owned_gradients(
            self.users, self.items, *self.marks, self.touched[0][k], self.touched[1][k], users, items, negatives,
            start, stop, g, 2.0 * self.reg / size, k, owners), range(owners)))
        self.t += 1
        (b1, b2), t = self.betas, self.t
        step, correct2 = self.lr / (1.0 - b1 ** t), 1.0 - b2 ** t

        def adam(k: int) -> None:
            adam_rows(self.users, self.marks[0], self.touched[0][k], counts[k][0], b1, b2, self.eps, step, correct2)
            adam_rows(self.items, self.marks[1], self.touched[1][k], counts[k][1], b1, b2, self.eps, step, correct2)

        list(pool.map(adam, range(owners)))

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """(users (n_users, d), items (n_items, d + 1)): views of the current factors."""
        return self.users[:, VALUE], self.items[:, VALUE]


@njit(cache=CACHE, nogil=True)
def seen(indptr: np.ndarray, indices: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """bool (n,): whether ``users[k]`` has ``items[k]`` in a CSR with sorted rows (``indptr``
    (n_users + 1,), ``indices`` int32 (nnz,)); a binary search in the user's row, whose first
    probes' lines (eighths of the row) are prefetched ``AHEAD`` queries early."""
    out = np.empty(len(users), dtype=np.bool_)
    for k in range(len(users)):
        if k + AHEAD < len(users):
            a, b = indptr[users[k + AHEAD]], indptr[users[k + AHEAD] + 1]
            for m in range(8):
                _prefetch(indices, np.int64(a + (b - a) * m // 8), np.int64(0))
        lo, hi, item = indptr[users[k]], indptr[users[k] + 1], items[k]
        while lo < hi:
            mid = (lo + hi) >> 1
            if indices[mid] < item:
                lo = mid + 1
            else:
                hi = mid
        out[k] = lo < indptr[users[k] + 1] and indices[lo] == item
    return out
