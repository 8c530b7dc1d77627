"""GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018): a GRU over the recent items."""

from __future__ import annotations

from penchant import DEFAULT_SEED
from penchant.errors import ConfigError
from penchant.models.registry import register
from penchant.models.search import Choice, Float
from penchant.models.sequential.neural import TRAINING_ARGS, NeuralSequential
from penchant.models.training import check_device


def _network(n_items: int, d: int, layers: int, dropout: float, items):
    import torch

    class GRU4Rec(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.items = items
            self.gru = torch.nn.GRU(d, d, num_layers=layers, batch_first=True)
            self.drop = torch.nn.Dropout(dropout)
            self.out = torch.nn.Linear(d, d)

        def forward(self, seqs, table=None):
            table = self.items() if table is None else table
            hidden, _ = self.gru(self.drop(table[seqs]))
            return self.out(self.drop(hidden))

    return GRU4Rec()


@register
class GRU4Rec(NeuralSequential):
    """Session-based recurrent recommender: a GRU reads the recent items; the next item's score is
    ``W h_t · e_item`` with tied item embeddings.

    Args:
        factors: embedding and hidden size.
        max_len: items of history read.
        layers: stacked GRU layers.
        dropout: dropout on the input embeddings and the GRU output.
        loss: ``ce`` (full softmax, the default), ``bpr-max`` or ``top1-max`` (the paper's ranking
            losses over shared sampled negatives), ``sampled`` (log-Q corrected softmax over
            ``negatives`` items drawn for each window: for large catalogues, where its epoch is
            13–25× shorter; with ``patience=40``: 1.008 ± 0.046 of ``ce`` on ML-100K over three
            seeds, ``gbce`` 0.90 ± 0.14; see docs/benchmarks.md),
            ``gbce`` (gSASRec's calibrated BCE) or ``bce``.
    """
    __doc__ = __doc__.rstrip() + TRAINING_ARGS

    name = "gru4rec"
    summary = "GRU4Rec: recurrent next-item model (torch; CE or the BPR-max/TOP1-max ranking losses)"
    search_space = {"factors": Choice((32, 64, 128)), "dropout": Float(0.0, 0.5), "lr": Float(3e-4, 1e-2, log=True),
                    "loss": Choice(("ce", "bpr-max", "top1-max"))}

    def __init__(self, *, factors: int = 64, max_len: int = 50, layers: int = 1, dropout: float = 0.2, loss: str = "ce",
                 negatives: int = 256, sampler: str = "uniform", gbce_t: float = 0.75, bpreg: float = 1.0, lr: float = 2e-3, weight_decay: float = 0.0, epochs: int = 200,
                 batch_size: int = 128, patience: int = 5, eval_every: int = 2, seed: int = DEFAULT_SEED,
                 item_text: str = "off", id_dropout: float = 0.1, text_model: str = "all-MiniLM-L6-v2", summaries: str = "",
                 long_len: int = 0, hashes: int = 4, hash_bits: int = 3, device: str = "auto",
                 finetune: str = "off", finetune_spo: float = 0.0, finetune_negatives: str = "rated",
                 finetune_beta: float = 0.1, finetune_lr: float = 3e-5, finetune_epochs: int = 1, finetune_flip: float = 0.1,
                 finetune_topk: int = 20, finetune_liked: float = 4.0, finetune_disliked: float = 2.0) -> None:
        self.device = check_device(device)
        self.finetune, self.finetune_spo, self.finetune_negatives = finetune, finetune_spo, finetune_negatives
        self.finetune_beta, self.finetune_lr, self.finetune_epochs = finetune_beta, finetune_lr, finetune_epochs
        self.finetune_flip, self.finetune_topk = finetune_flip, finetune_topk
        self.finetune_liked, self.finetune_disliked = finetune_liked, finetune_disliked
        self.item_text, self.id_dropout, self.text_model, self.summaries = item_text, id_dropout, text_model, summaries
        self.long_len, self.hashes, self.hash_bits = long_len, hashes, hash_bits
        self.factors, self.max_len, self.layers, self.dropout = factors, max_len, layers, dropout
        self.loss, self.negatives, self.bpreg, self.lr, self.weight_decay = loss, negatives, bpreg, lr, weight_decay
        self.sampler, self.gbce_t = sampler, gbce_t
        self.epochs, self.batch_size, self.patience, self.eval_every, self.seed = epochs, batch_size, patience, eval_every, seed
        self._check_common()
        if layers < 1:
            raise ConfigError("layers must be ≥ 1")

    def _network(self):
        return _network(self.n_items_, self.factors, self.layers, self.dropout, self._item_table())
