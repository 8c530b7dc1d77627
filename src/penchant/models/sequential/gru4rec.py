"""GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018): a GRU over the recent items."""

from __future__ import annotations

from penchant.models.registry import register
from penchant.models.search import Choice, Float
from penchant.models.sequential.neural import TRAINING_ARGS, NeuralSequential


def _network(n_items: int, d: int, layers: int, dropout: float):
    import torch

    class GRU4Rec(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item_emb = torch.nn.Embedding(n_items + 1, d, padding_idx=n_items)
            self.gru = torch.nn.GRU(d, d, num_layers=layers, batch_first=True)
            self.drop = torch.nn.Dropout(dropout)
            self.out = torch.nn.Linear(d, d)
            torch.nn.init.normal_(self.item_emb.weight, std=d ** -0.5)
            with torch.no_grad():
                self.item_emb.weight[n_items].zero_()

        def forward(self, seqs):
            hidden, _ = self.gru(self.drop(self.item_emb(seqs)))
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
        loss: ``ce`` (full softmax), ``bpr-max`` or ``top1-max`` (the paper's ranking losses over
            shared sampled negatives), ``sampled`` or ``bce``.
    """
    __doc__ = __doc__.rstrip() + TRAINING_ARGS

    name = "gru4rec"
    summary = "GRU4Rec: recurrent next-item model (torch; CE or the BPR-max/TOP1-max ranking losses)"
    search_space = {"factors": Choice((32, 64, 128)), "dropout": Float(0.0, 0.5), "lr": Float(3e-4, 1e-2, log=True),
                    "loss": Choice(("ce", "bpr-max", "top1-max"))}

    def __init__(self, *, factors: int = 64, max_len: int = 50, layers: int = 1, dropout: float = 0.2, loss: str = "ce",
                 negatives: int = 256, bpreg: float = 1.0, lr: float = 2e-3, weight_decay: float = 0.0, epochs: int = 200,
                 batch_size: int = 128, patience: int = 5, eval_every: int = 2, seed: int = 0) -> None:
        self.factors, self.max_len, self.layers, self.dropout = factors, max_len, layers, dropout
        self.loss, self.negatives, self.bpreg, self.lr, self.weight_decay = loss, negatives, bpreg, lr, weight_decay
        self.epochs, self.batch_size, self.patience, self.eval_every, self.seed = epochs, batch_size, patience, eval_every, seed
        self._check_common()
        if layers < 1:
            raise ValueError("layers must be ≥ 1")

    def _network(self):
        return _network(self.n_items_, self.factors, self.layers, self.dropout)
