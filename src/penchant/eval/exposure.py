"""Fair exposure of ad campaigns: the impression-variance gap per protected attribute.

Following "Towards Fairness in Personalized Ads" (Meta's Variance Reduction System, VRS, arXiv
2306.03293): for one campaign and one protected attribute with groups ``k = 1..K``, ``e_k`` is the
share of the campaign's *eligible audience* (who the advertiser's targeting allows) in group ``k``
and ``d_k`` the share of its *delivered impressions* shown to group ``k``. The campaign's gap is the
paper's *shuffle distance*

    gap = 1/2 * sum_k |d_k - e_k|

the smallest fraction of the campaign's impressions that would have to move between groups for
the delivered distribution to equal the eligible one (the total variation distance between the two;
0 = delivery mirrors the audience, 1 = disjoint). Over campaigns the gap is reported as the
impression-weighted mean (each impression counts once, the paper's aggregate) and as the share of
impressions whose campaign's gap is within a threshold (VRS's compliance targets are of this form,
e.g. gap <= 0.10 for gender).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from penchant.errors import ConfigError


def impression_counts(campaign: np.ndarray, group: np.ndarray, n_campaigns: int, n_groups: int,
                      weight: np.ndarray | None = None) -> np.ndarray:
    """Impressions per (campaign, group) from an impression log.

    campaign, group: int (n,) the campaign shown and the viewer's group per impression;
    weight: float (n,) impressions each row stands for (default 1). Returns float64 (C, K)."""
    campaign, group = np.asarray(campaign, dtype=np.int64), np.asarray(group, dtype=np.int64)
    if campaign.shape != group.shape:
        raise ConfigError(f"campaign {campaign.shape} and group {group.shape} must have the same shape")
    flat = campaign * n_groups + group
    return np.bincount(flat, weights=weight, minlength=n_campaigns * n_groups).astype(np.float64).reshape(
        n_campaigns, n_groups)


def shuffle_distance(delivered: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Per-campaign shuffle distance (total variation) between delivered and eligible group shares.

    delivered, eligible: (C, K) non-negative counts or shares (each row is normalised here).
    Returns float64 (C,) in [0, 1]; NaN for a campaign with no impressions or no eligible audience."""
    delivered, eligible = np.asarray(delivered, dtype=np.float64), np.asarray(eligible, dtype=np.float64)
    if delivered.shape != eligible.shape or delivered.ndim != 2:
        raise ConfigError(f"delivered {delivered.shape} and eligible {eligible.shape} must both be (campaigns, groups)")
    if (delivered < 0).any() or (eligible < 0).any():
        raise ConfigError("impression and audience counts must be non-negative")
    d_tot, e_tot = delivered.sum(1, keepdims=True), eligible.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = 0.5 * np.abs(delivered / d_tot - eligible / e_tot).sum(1)
    gap[(d_tot[:, 0] <= 0) | (e_tot[:, 0] <= 0)] = np.nan
    return gap


@dataclass(frozen=True)
class ExposureGap:
    """The impression-variance gap of a set of campaigns for one protected attribute.

    per_campaign: float64 (C,) shuffle distances (NaN: campaign not delivered);
    impressions: float64 (C,) impressions per campaign;
    weighted: impression-weighted mean gap over delivered campaigns (the headline number);
    mean: unweighted mean over delivered campaigns;
    within: share of impressions whose campaign's gap <= threshold; threshold: that threshold."""

    per_campaign: np.ndarray
    impressions: np.ndarray
    weighted: float
    mean: float
    within: float
    threshold: float

    def as_json(self) -> dict:
        return {"weighted": self.weighted, "mean": self.mean, "within": self.within, "threshold": self.threshold,
                "per_campaign": [None if np.isnan(g) else float(g) for g in self.per_campaign],
                "impressions": self.impressions.tolist()}


def exposure_gap(delivered: np.ndarray, eligible: np.ndarray, *, threshold: float = 0.1) -> ExposureGap:
    """The gap of every campaign (``shuffle_distance``) and its aggregates over campaigns.

    delivered: (C, K) impressions per campaign and group; eligible: (C, K) eligible audience per
    campaign and group (people, or any non-negative weights); threshold: the gap counted as within."""
    gap = shuffle_distance(delivered, eligible)
    imps = np.asarray(delivered, dtype=np.float64).sum(1)
    ok = ~np.isnan(gap)
    total = imps[ok].sum()
    if total <= 0:
        raise ConfigError("no campaign was delivered: the gap is undefined")
    return ExposureGap(per_campaign=gap, impressions=imps, weighted=float((gap[ok] * imps[ok]).sum() / total),
                       mean=float(gap[ok].mean()), within=float(imps[ok][gap[ok] <= threshold].sum() / total),
                       threshold=float(threshold))
