"""The contract of every click-through model, and the one training loop of the torch ones.

A :class:`CTRModel` learns P(click | user, item, context) from :class:`~penchant.data.ctr.CTRData`:

- ``fit(train, valid=None) -> self``: learns on ``train``; with ``valid``, stops early on the
  validation log loss and keeps the best state (``best_epoch_``, ``valid_log_loss_``).
- ``predict(data) -> float64 (n,)``: click probabilities of ``data``'s rows, which must be over the
  vocabulary the model was fitted on (the same feature ids); rows of new requests are encoded by
  the model's ``vocabulary_`` (:meth:`~penchant.data.ctr.FeatureVocabulary.encode`).
- ``save(path)`` / ``CTRModel.load(path)``: one artefact (:mod:`penchant.models.artefact`) holding
  the parameters, the feature vocabulary and the learned arrays; no pickle.

Subclasses implement ``_fit``, ``_predict_logits`` (float64 (n,) logits), ``_state`` and
``_load_state``. :class:`TorchCTRModel` does that for networks: a subclass only builds its
``torch.nn.Module`` (:meth:`TorchCTRModel._network`), whose ``forward(codes, dense, history)``
returns logits (b,) from ``codes`` int64 (b, S) feature ids (padding ``n_features``), ``dense``
float32 (b, D) and ``history`` int64 (b, L) item feature ids (padding ``n_features``; an empty
(b, 0) tensor when the data has no history), and may define ``penalty(codes) -> scalar`` for the
L2 term. The loop owns the prologue (seed, device, threads), the batches (shuffled by ``seed``),
Adam, binary cross-entropy on the logits, early stopping and the best state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from penchant.data.ctr import CTRData, FeatureVocabulary
from penchant.errors import ConfigError, DataError, NotFittedError
from penchant.models.artefact import Artefact

#: rows per forward pass at prediction
PREDICT_BATCH = 8192


class CTRModel:
    """Base of the ``ctr`` family (see the module)."""

    family: ClassVar[str] = "ctr"
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    search_space: ClassVar[dict[str, Any]] = {}
    #: whether the model reads ``history`` (fit refuses data without it)
    needs_history: ClassVar[bool] = False

    vocabulary_: FeatureVocabulary | None = None
    n_items_: int = 0
    history_length_: int = 0
    best_epoch_: int | None = None
    valid_log_loss_: float | None = None
    fit_seconds_: float = 0.0

    def params(self) -> dict[str, Any]:
        """The constructor's keyword arguments as set."""
        from penchant.models.registry import params_class

        return {k: getattr(self, k) for k in params_class(type(self)).model_fields}

    def selected(self) -> dict[str, Any]:
        """What validation chose (the epoch kept), for reports."""
        return {} if self.best_epoch_ is None else {"epoch": self.best_epoch_}

    def fit(self, train: CTRData, valid: CTRData | None = None) -> Self:
        """Learn on ``train`` (early stopping on ``valid``'s log loss when given); returns self."""
        if train.n == 0:
            raise DataError(f"{train.name} has no rows to learn from")
        if not ((train.label == 0) | (train.label == 1)).all():
            raise DataError(f"{train.name}: labels must be 0 or 1")
        if valid is not None:
            self._check_layout(valid, train.vocabulary)
            if valid.n == 0:
                valid = None
        if self.needs_history and train.history is None:
            raise DataError(f"{self.name} reads the user's history; {train.name} has none (no timestamps)",
                            expected="a log with a time column")
        self.vocabulary_ = train.vocabulary
        self.n_items_ = train.n_items
        self.history_length_ = 0 if train.history is None else int(train.history.shape[1])
        self.best_epoch_ = self.valid_log_loss_ = None
        start = time.perf_counter()
        self._fit(train, valid)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def predict(self, data: CTRData) -> np.ndarray:
        """Click probabilities, float64 (n,)."""
        return _sigmoid(self.predict_logits(data))

    def predict_logits(self, data: CTRData) -> np.ndarray:
        """Logits of the click probabilities, float64 (n,)."""
        self._check_fitted()
        assert self.vocabulary_ is not None
        self._check_layout(data, self.vocabulary_)
        if data.n == 0:
            return np.zeros(0)
        return np.asarray(self._predict_logits(data), dtype=np.float64)

    def logits(self, codes: np.ndarray, dense: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """The serving path: logits float64 (m,) of rows already encoded with ``vocabulary_`` —
        ``codes`` int64 (m, S), ``dense`` float32 (m, D) standardised, ``history`` int64 (m, L) item
        indices padded with ``n_items_`` (None where the model reads none). The caller vouches for
        the layout (no check, no data object beyond what the model's forward needs)."""
        self._check_fitted()
        vocab = self.vocabulary_
        assert vocab is not None
        m = len(codes)
        if m == 0:
            return np.zeros(0)
        zeros = np.zeros(m, np.int64)
        data = CTRData(np.zeros(m, np.float32), zeros, zeros, codes, vocab.slot_field, vocab.fields, vocab.n_features,
                       dense, vocab.dense_names, history, zeros, vocab, np.zeros(0, str),
                       np.arange(self.n_items_).astype(str), name="request")
        return np.asarray(self._predict_logits(data), dtype=np.float64)

    def _check_layout(self, data: CTRData, vocab: FeatureVocabulary) -> None:
        if data.n_features != vocab.n_features or data.fields != vocab.fields or \
                data.dense_names != vocab.dense_names or not np.array_equal(data.slot_field, vocab.slot_field):
            raise DataError(f"{data.name} is not encoded with the vocabulary the model was built on "
                            f"({data.n_features:,} feature ids over {', '.join(data.fields)}; the model's: "
                            f"{vocab.n_features:,} over {', '.join(vocab.fields)}); encode it with the model's vocabulary_")
        if self.needs_history and self.history_length_ and data.history is None:
            raise DataError(f"{self.name} reads the user's history; {data.name} has none", expected="history")

    def _check_fitted(self) -> None:
        if self.vocabulary_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    # ----- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """One self-describing artefact: parameters, the feature vocabulary and the learned arrays."""
        return self.to_artefact().write(path)

    def to_artefact(self) -> Artefact:
        """What :meth:`save` writes, in memory."""
        self._check_fitted()
        assert self.vocabulary_ is not None
        vocab, extra, arrays = self.vocabulary_.to_artefact()
        state = dict(self._state())
        clash = set(state) & set(arrays)
        if clash:
            raise ValueError(f"state arrays may not be named {sorted(clash)}")
        extra |= {"n_items": self.n_items_, "history_length": self.history_length_, "best_epoch": self.best_epoch_,
                  "valid_log_loss": self.valid_log_loss_}
        return Artefact(self.family, self.name, self.params(), arrays | state, vocab, extra)

    @classmethod
    def load(cls, path: str | Path) -> CTRModel:
        """A model written by :meth:`save` (of whichever registered class wrote it)."""
        from penchant.models.artefact import ArtefactError, load

        model = load(path)
        if not isinstance(model, cls):
            raise ArtefactError(f"holds a {type(model).__name__} ({getattr(model, 'name', '?')}), not a {cls.__name__}",
                                file=path)
        return model

    @classmethod
    def from_artefact(cls, art: Artefact) -> CTRModel:
        model = cls(**art.params)
        model.vocabulary_ = FeatureVocabulary.from_artefact(art.vocab, art.extra, art.arrays)
        model.n_items_ = int(art.extra["n_items"])
        model.history_length_ = int(art.extra["history_length"])
        model.best_epoch_ = art.extra.get("best_epoch")
        model.valid_log_loss_ = art.extra.get("valid_log_loss")
        model._load_state({k: v for k, v in art.arrays.items() if k not in ("dense_mean", "dense_std")})
        return model

    # ----- for subclasses ------------------------------------------------------------------------
    def _fit(self, train: CTRData, valid: CTRData | None) -> None:
        raise NotImplementedError

    def _predict_logits(self, data: CTRData) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def mean_log_loss(label: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of ``logits`` (float64 (n,)) against 0/1 ``label``, in nats,
    computed from the logits (no clipping needed)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


class TorchCTRModel(CTRModel):
    """A CTR network trained by the shared loop (see the module). Subclasses set the parameters
    below in their constructor (keyword-only, typed, documented in their ``Args:``) and implement
    :meth:`_network`."""

    epochs: int = 20
    batch_size: int = 1024
    lr: float = 1e-3
    l2: float = 0.0
    patience: int = 2
    seed: int = 0
    device: str = "auto"

    net_: Any = None

    def _check_training(self) -> None:
        from penchant.models.training import check_device

        for key in ("epochs", "batch_size", "patience"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model {self.name!r}: {key} must be at least 1, not {getattr(self, key)}")
        if self.lr <= 0 or self.l2 < 0:
            raise ConfigError(f"model {self.name!r}: lr must be > 0 and l2 >= 0")
        check_device(self.device)

    def _network(self, vocab: FeatureVocabulary, n_items: int, history_length: int) -> Any:
        """The ``torch.nn.Module`` (see the module for its ``forward``)."""
        raise NotImplementedError

    def _tensors(self, data: CTRData, rows: np.ndarray, device: Any) -> tuple[Any, Any, Any]:
        import torch

        codes = torch.from_numpy(data.codes[rows]).to(device)
        dense = torch.from_numpy(np.ascontiguousarray(data.dense[rows], dtype=np.float32)).to(device)
        if data.history is None or not self.history_length_:
            history = torch.zeros((len(rows), 0), dtype=torch.int64, device=device)
        else:
            history = torch.from_numpy(data.vocabulary.item_features(data.history[rows], data.n_items)).to(device)
        return codes, dense, history

    def _fit(self, train: CTRData, valid: CTRData | None) -> None:
        import torch

        from penchant.models.training import EarlyStopping, seed_torch, torch_device

        self._check_training()
        assert self.vocabulary_ is not None
        device = torch_device(self.device)
        seed_torch(self.seed)
        net = self._network(self.vocabulary_, self.n_items_, self.history_length_).to(device)
        self.net_ = net
        optimiser = torch.optim.Adam(net.parameters(), lr=self.lr)
        rng = np.random.default_rng(self.seed)
        labels = torch.from_numpy(train.label.astype(np.float32))
        stopper = EarlyStopping(self.patience, epochs=self.epochs)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        for epoch in range(1, self.epochs + 1):
            net.train()
            order = rng.permutation(train.n)
            for start in range(0, train.n, self.batch_size):
                rows = order[start:start + self.batch_size]
                codes, dense, history = self._tensors(train, rows, device)
                logits = net(codes, dense, history)
                loss = loss_fn(logits, labels[rows].to(device))
                if self.l2 > 0 and hasattr(net, "penalty"):
                    loss = loss + self.l2 * net.penalty(codes)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            if valid is not None:
                net.eval()
                value = mean_log_loss(valid.label, self._predict_logits(valid))
                if stopper.update(epoch, -value, lambda: {k: v.detach().clone() for k, v in net.state_dict().items()}):
                    break
        if valid is not None and stopper.best_state is not None:
            net.load_state_dict(stopper.best_state)
            self.best_epoch_, self.valid_log_loss_ = stopper.best_epoch, -stopper.best_value
        net.eval()
        self.__dict__.pop("_forward_np", None)  # the numpy forward is built from the final weights

    def _predict_logits(self, data: CTRData) -> np.ndarray:
        import torch

        from penchant.models.training import net_device

        net = self.net_
        device = net_device(net)
        out = np.empty(data.n, dtype=np.float64)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            for start in range(0, data.n, PREDICT_BATCH):
                rows = np.arange(start, min(data.n, start + PREDICT_BATCH))
                out[rows] = net(*self._tensors(data, rows, device)).double().cpu().numpy()
        net.train(was_training)
        return out

    def _numpy_forward(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
        """Where a subclass has one: the network's inference forward in numpy (weights copied from
        ``net_``), ``forward(codes int64 (m, S), dense float32 (m, D)) -> logits (m,)``, equal to the
        torch forward in eval mode to float32 rounding; None: :meth:`logits` runs torch. For models
        that read no history. A request of ~100 rows costs microseconds of arithmetic, so torch's
        per-module dispatch is most of its time; numpy's few gathers and matmuls are not."""
        return None

    def logits(self, codes: np.ndarray, dense: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """As :meth:`CTRModel.logits`: the subclass's numpy forward (:meth:`_numpy_forward`, built
        once per fitted or loaded network) where it has one, else one forward pass under
        ``torch.inference_mode`` over the arrays as given (no per-batch copies, no data object): the
        per-request path of a service."""
        self._check_fitted()
        assert self.vocabulary_ is not None
        if len(codes) == 0:
            return np.zeros(0)
        if "_forward_np" not in self.__dict__:
            self._forward_np = self._numpy_forward()
        if self._forward_np is not None:
            return np.asarray(self._forward_np(np.asarray(codes, np.int64), np.asarray(dense, np.float32)), np.float64)
        import torch

        from penchant.models.training import net_device

        net = self.net_
        device = net_device(net)
        if history is None or not self.history_length_:
            hist = torch.zeros((len(codes), 0), dtype=torch.int64, device=device)
        else:
            hist = torch.from_numpy(self.vocabulary_.item_features(history, self.n_items_)).to(device)
        if net.training:  # pragma: no cover - fit and load leave it in eval mode
            net.eval()
        with torch.inference_mode():
            out = net(torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64)).to(device),
                      torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32)).to(device), hist)
        return out.double().cpu().numpy()

    def _state(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        from penchant.models.training import torch_device

        assert self.vocabulary_ is not None
        net = self._network(self.vocabulary_, self.n_items_, self.history_length_)
        # copied: the arrays may be read-only maps
        net.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")})
        device = torch_device("cpu" if self.device == "auto" else self.device)
        self.net_ = net.to(device).eval()
        self.__dict__.pop("_forward_np", None)

