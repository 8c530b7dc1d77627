"""Long histories at linear cost: hash-based sampling of the past behaviours relevant to each
candidate item (SDIM, Cao et al., "Sampling Is All You Need on Modeling Long-Term User Behaviors
for CTR Prediction", CIKM 2022).

Every item embedding e is hashed by ``hashes`` SimHash functions of ``bits`` random hyperplanes
each: code_h(e) = Σ_b [r_hb · e > 0] 2^b. Two vectors share a code with probability
(1 − θ/π)^bits (θ their angle), so a candidate item j "attends" to the past behaviours that fall
in its bucket, with no attention weights computed. For a long history x_1..x_L:

    S_h[c] = mean{ e_{x_l} : code_h(e_{x_l}) = c }              (B, hashes, 2^bits, d), O(L)
    long_j = (1/hashes) Σ_h  (W S_h[code_h(e_j)]) · e_j           (B, n_items), independent of L

Building the bucket means is linear in L and scoring every candidate costs
O(hashes · 2^bits · n_items · d) whatever L is; full self-attention over L items costs O(L² d).
The hyperplanes are fixed (seeded); codes are recomputed from the current embeddings, without
gradient through the discrete hash. W starts at zero, so training starts from the short-term model.
"""

from __future__ import annotations


def hashed_interest(n_items: int, d: int, hashes: int, bits: int, seed: int):
    """A torch module: ``forward(long, table)`` → float32 (B, n_items) long-term scores.

    ``long``: int64 (B, L) right-aligned past items padded with ``n_items``; ``table``: the
    (n_items + 1, d) item table (last row padding).
    """
    import torch
    import torch.nn.functional as F

    class HashedInterest(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            gen = torch.Generator().manual_seed(seed)
            self.register_buffer("planes", torch.randn(hashes * bits, d, generator=gen))
            self.register_buffer("powers", 2 ** torch.arange(bits))
            self.proj = torch.nn.Linear(d, d, bias=False)
            torch.nn.init.zeros_(self.proj.weight)

        def codes(self, vectors):
            """int64 (..., hashes) bucket of each vector under each hash."""
            signs = (vectors @ self.planes.T > 0).view(*vectors.shape[:-1], hashes, bits).long()
            return (signs * self.powers).sum(-1)

        def forward(self, long, table):
            codes = self.codes(table.detach())  # (n_items + 1, hashes)
            real = (long != n_items).to(table.dtype)  # (B, L)
            member = F.one_hot(codes[long], 2 ** bits).to(table.dtype) * real[..., None, None]  # (B, L, h, c)
            sums = torch.einsum("blhc,bld->bhcd", member, table[long])
            means = sums / member.sum(1).clamp(min=1.0)[..., None]  # (B, h, c, d)
            per_bucket = torch.einsum("bhcd,nd->bhcn", self.proj(means), table[:n_items])  # (B, h, c, n)
            index = codes[:n_items].T[None, :, None, :].expand(len(long), -1, 1, -1)  # (B, h, 1, n)
            return per_bucket.gather(2, index)[:, :, 0].mean(1)

    return HashedInterest()
