"""Ad campaigns with eligible audiences, delivered by relevance, and a VRS-style exposure controller.

The world (``campaign_world``): users with protected attributes, campaigns with an eligible audience
each (the advertiser's targeting, on a *non*-protected attribute), a bid per campaign and a click
probability per (user, campaign). Each round a random batch of users arrives; each arriving user is
shown the eligible campaign of highest ``bid * pCTR`` (a first-price-free, one-slot auction). Groups
differ in what they engage with, so plain delivery skews a campaign's impressions away from its
eligible audience even though no one targets by the protected attribute.

On ML-100K (``campaign_world(data)``) the protected attributes are the users' gender and age band:
*stand-ins* for the attributes VRS protects (gender and estimated race); ML-100K is a film-rating data
set, not ads. One campaign per genre; the pCTR of user ``u`` for genre ``g``'s campaign is a scorer
computed from the log, ``ctr_level * lift``, the lift being the user's smoothed share of positive
ratings (>= 4) in ``g`` over the population's share. Targeting picks a random subset of occupations
per campaign (occupation is not protected, but correlates with age, as real targeting correlates
with protected attributes).

The controller (``deliver(world, knob=λ)``) follows the Variance Reduction System of "Towards Fairness
in Personalized Ads" (arXiv 2306.03293): it keeps, per campaign and attribute, the measured group
distribution of the impressions delivered so far (optionally with Laplace noise on the counts, the
paper's privacy-preserving aggregate measurement) and, before each auction, multiplies a campaign's
score for a viewer by a boost that is > 1 where the viewer's group is under-delivered against the
campaign's eligible audience and < 1 where it is over-delivered:

    score'(u, c) = bid_c * pCTR(u, c) * prod_a (e_{c,a,g_a(u)} / d_{c,a,g_a(u)}) ** λ

``e`` the eligible share and ``d`` the delivered share (smoothed towards ``e`` by ``prior``
pseudo-impressions) of the viewer's group ``g_a(u)`` for attribute ``a``. λ = 0 is plain delivery.
Simplification: VRS *learns* its boost policy with reinforcement learning (trained in a simulator, the
state being the campaign's current variance and the viewer's estimated group probabilities); here the
policy is this fixed multiplicative proportional controller with one gain λ, and the viewer's groups
are known (one-hot), not estimated. Because the arrivals do not depend on λ and λ = 0 takes each
round's value-maximising winner, the utility given up at λ > 0 is never negative.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from penchant.data.dataset import Dataset
from penchant.errors import ConfigError, DataError
from penchant.eval.exposure import ExposureGap, exposure_gap


@dataclass(frozen=True)
class CampaignWorld:
    """Users, campaigns and who may see what.

    ctr: float64 (U, C) click probability per impression; bid: float64 (C,) value of a click;
    eligible: bool (U, C) the campaign's targeting admits the user;
    groups: attribute -> int64 (U,) the user's group; group_names: attribute -> group labels;
    campaign_names: (C,) labels."""

    ctr: np.ndarray
    bid: np.ndarray
    eligible: np.ndarray
    groups: dict[str, np.ndarray]
    group_names: dict[str, tuple[str, ...]]
    campaign_names: tuple[str, ...]

    @property
    def n_users(self) -> int:
        return self.ctr.shape[0]

    @property
    def n_campaigns(self) -> int:
        return self.ctr.shape[1]

    @property
    def value(self) -> np.ndarray:
        """float64 (U, C): expected value of an impression, bid * pCTR."""
        return self.ctr * self.bid

    def audience(self, attribute: str) -> np.ndarray:
        """float64 (C, K): eligible users per campaign and group of ``attribute``."""
        onehot = np.eye(len(self.group_names[attribute]))[self.groups[attribute]]
        return self.eligible.T.astype(np.float64) @ onehot


def synthetic_campaign_world(n_users: int = 400, n_campaigns: int = 8, *, groups: int = 2, skew: float = 1.0,
                             seed: int = 0) -> CampaignWorld:
    """A small world for checks: one attribute ``group`` with ``groups`` equally likely groups; each
    campaign's log-pCTR gets ``skew * N(0, 1)`` per group (groups engage differently) plus user noise;
    each user is eligible for a campaign with probability 0.7."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, n_users)
    taste = skew * rng.standard_normal((groups, n_campaigns))
    logit = -3.0 + taste[group] + 0.5 * rng.standard_normal((n_users, n_campaigns))
    eligible = rng.random((n_users, n_campaigns)) < 0.7
    return CampaignWorld(ctr=1.0 / (1.0 + np.exp(-logit)), bid=np.exp(0.3 * rng.standard_normal(n_campaigns)),
                         eligible=eligible, groups={"group": group},
                         group_names={"group": tuple(f"g{k}" for k in range(groups))},
                         campaign_names=tuple(f"c{c}" for c in range(n_campaigns)))


def _user_groups(data: Dataset, attribute: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """int64 (U,) group per user and the group labels; ``age`` becomes age bands (penchant's CTR bands)."""
    from penchant.data.ctr import AGE_BANDS, AGE_EDGES

    if attribute not in data.user_attributes:
        raise DataError(f"the data has no user attribute {attribute!r} (has: {sorted(data.user_attributes)})")
    att = data.user_attributes[attribute]
    matrix = att.matrix.tocsr()
    has = np.diff(matrix.indptr) > 0
    first = np.zeros(data.n_users, dtype=np.int64)
    first[has] = matrix.indices[matrix.indptr[:-1][has]]
    labels = np.asarray(att.values, dtype=str)
    if attribute == "age":
        ages = np.array([float(v) if v.replace(".", "", 1).isdigit() else np.nan for v in labels])[first]
        band = np.searchsorted(np.asarray(AGE_EDGES), ages, side="right")
        used = np.unique(band[has & np.isfinite(ages)])
        names = [AGE_BANDS[b] for b in used]
        group = np.searchsorted(used, band)
        has &= np.isfinite(ages)
    else:
        used = np.unique(first[has])
        names = [str(labels[v]) for v in used]
        group = np.searchsorted(used, first)
    if not has.all():
        group[~has] = len(names)
        names.append("?")
    return group.astype(np.int64), tuple(names)


def campaign_world(data: Dataset, *, attributes: tuple[str, ...] = ("gender", "age"), ctr_level: float = 0.03,
                   positive: float = 4.0, smoothing: float = 5.0, occupation_share: float = 0.6,
                   seed: int = 0) -> CampaignWorld:
    """A campaign world from a log with user attributes and item genres (ML-100K; see the module).

    One campaign per genre (the item attribute ``class``/``genre``; ``unknown`` dropped). pCTR =
    ``ctr_level * lift`` (clipped to [1e-6, 0.99]), lift = (positives of the user in the genre +
    ``smoothing`` * population share) / (the user's positives + ``smoothing``) / population share.
    Targeting: each campaign admits a random ``occupation_share`` of the occupations (every user when
    the data has no occupation). Bids: exp(0.3 * N(0, 1)) per campaign."""
    genre_key = next((k for k in ("class", "genre", "genres") if k in data.item_attributes), None)
    if genre_key is None:
        raise DataError("a campaign world needs item genres (an item attribute 'class' or 'genre')")
    if not 0 < occupation_share <= 1:
        raise ConfigError(f"occupation_share must be in (0, 1], got {occupation_share}")
    rng = np.random.default_rng(seed)
    genres = data.item_attributes[genre_key]
    keep = np.flatnonzero(np.asarray(genres.values, dtype=str) != "unknown")
    item_genre = genres.matrix.tocsc()[:, keep].astype(np.float64)  # (I, G)
    ratings = data.ratings
    pos = np.ones(len(data.users), dtype=bool) if ratings is None else ratings >= positive
    import scipy.sparse as sp

    liked = sp.csr_matrix((np.ones(int(pos.sum())), (data.users[pos], data.items[pos])),
                          shape=(data.n_users, data.n_items))
    counts = np.asarray((liked @ item_genre).todense())  # (U, G) genre tags among a user's positives
    population = counts.sum(0) / max(counts.sum(), 1.0)
    if (population <= 0).any():
        keep, counts, population = keep[population > 0], counts[:, population > 0], population[population > 0]
    share = (counts + smoothing * population) / (counts.sum(1, keepdims=True) + smoothing)
    ctr = np.clip(ctr_level * share / population, 1e-6, 0.99)
    n_campaigns = len(keep)
    if "occupation" in data.user_attributes:
        occupation, names = _user_groups(data, "occupation")
        admits = rng.random((n_campaigns, len(names))) < occupation_share
        admits[np.arange(n_campaigns), rng.integers(0, len(names), n_campaigns)] = True
        eligible = admits[:, occupation].T
    else:
        eligible = np.ones((data.n_users, n_campaigns), dtype=bool)
    groups, group_names = {}, {}
    for a in attributes:
        groups[a], group_names[a] = _user_groups(data, a)
    return CampaignWorld(ctr=ctr, bid=np.exp(0.3 * rng.standard_normal(n_campaigns)), eligible=eligible,
                         groups=groups, group_names=group_names,
                         campaign_names=tuple(str(v) for v in np.asarray(genres.values, dtype=str)[keep]))


@dataclass(frozen=True)
class Delivery:
    """What one run delivered.

    knob: the controller's gain λ; delivered: attribute -> float64 (C, K) impressions per campaign and
    group; gaps: attribute -> ExposureGap against the eligible audience; value: sum of bid * pCTR
    over impressions; clicks: expected clicks (sum of pCTR); impressions: total."""

    knob: float
    delivered: dict[str, np.ndarray]
    gaps: dict[str, ExposureGap]
    value: float
    clicks: float
    impressions: int
    extra: dict = field(default_factory=dict)


def deliver(world: CampaignWorld, knob: float = 0.0, *, rounds: int = 100, arrivals: int = 200, prior: float = 20.0,
            measurement_noise: float = 0.0, threshold: float = 0.1, seed: int = 0) -> Delivery:
    """Run ``rounds`` auctions rounds of ``arrivals`` users each (drawn without replacement within a
    round, the same users for every ``knob`` at one seed) with the VRS-style controller at gain ``knob``.

    prior: pseudo-impressions at the eligible distribution the controller's delivered share starts
    from (so its first rounds do not swing); measurement_noise: Laplace scale (impressions) of the noise
    on each delivered count the controller reads (0 = exact). Returns the delivery and its gaps."""
    if knob < 0 or rounds < 1 or arrivals < 1 or prior <= 0 or measurement_noise < 0:
        raise ConfigError("knob and measurement_noise must be >= 0, rounds and arrivals >= 1, prior > 0")
    arrive_rng, noise_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    n_users = world.n_users
    m = min(arrivals, n_users)
    log_value = np.log(np.maximum(world.value, 1e-300))
    log_value[~world.eligible] = -np.inf
    audience = {a: world.audience(a) for a in world.groups}
    eligible_share = {a: e / np.maximum(e.sum(1, keepdims=True), 1e-12) for a, e in audience.items()}
    delivered = {a: np.zeros_like(e) for a, e in audience.items()}
    value = clicks = 0.0
    shown = 0
    rows = np.arange(m)
    for _ in range(rounds):
        users = arrive_rng.choice(n_users, size=m, replace=False)
        score = log_value[users]
        if knob > 0:
            for a, share in eligible_share.items():
                seen = delivered[a]
                if measurement_noise > 0:
                    seen = np.maximum(seen + noise_rng.laplace(0.0, measurement_noise, seen.shape), 0.0)
                d = (seen + prior * share) / (seen.sum(1, keepdims=True) + prior)
                with np.errstate(divide="ignore", invalid="ignore"):
                    log_ratio = np.where(share > 0, np.log(share / d), 0.0)  # (C, K)
                score = score + knob * log_ratio[:, world.groups[a][users]].T
        winner = score.argmax(1)
        ok = np.isfinite(score[rows, winner])
        u, c = users[ok], winner[ok]
        for a, counts in delivered.items():
            k = counts.shape[1]
            counts += np.bincount(c * k + world.groups[a][u], minlength=counts.size).reshape(counts.shape)
        value += float(world.value[u, c].sum())
        clicks += float(world.ctr[u, c].sum())
        shown += int(ok.sum())
    gaps = {a: exposure_gap(delivered[a], audience[a], threshold=threshold) for a in world.groups}
    return Delivery(knob=float(knob), delivered=delivered, gaps=gaps, value=value, clicks=clicks, impressions=shown)


def sweep(world: CampaignWorld, knobs: list[float] | tuple[float, ...], **kwargs: object) -> list[dict]:
    """``deliver`` at λ = 0 and at every knob (same arrivals): per knob the gap per attribute
    (impression-weighted, mean, share within the threshold) and the utility given up against λ = 0
    (value_lost, clicks_lost: fractions of the plain delivery's value and expected clicks)."""
    knobs = sorted({0.0, *(float(k) for k in knobs)})
    runs = [deliver(world, k, **kwargs) for k in knobs]  # type: ignore[arg-type]
    base = runs[0]
    out = []
    for r in runs:
        out.append({"knob": r.knob, "impressions": r.impressions, "value": r.value, "clicks": r.clicks,
                    "value_lost": 1.0 - r.value / base.value if base.value > 0 else 0.0,
                    "clicks_lost": 1.0 - r.clicks / base.clicks if base.clicks > 0 else 0.0,
                    "gap": {a: g.weighted for a, g in r.gaps.items()},
                    "gap_mean": {a: g.mean for a, g in r.gaps.items()},
                    "within": {a: g.within for a, g in r.gaps.items()},
                    "per_campaign": {a: g.as_json()["per_campaign"] for a, g in r.gaps.items()}})
    return out
