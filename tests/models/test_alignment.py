"""Preference fine-tuning of the sequential recommenders (models/sequential/alignment): each loss by
hand, preference degrees by hand, the samplers (on-policy from the model's own current top-K),
the driver at the end of fit, the artefact and the command line."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models import Recommender, create
from penchant.models.sequential.alignment import finetune as driver
from penchant.models.sequential.alignment.negatives import OnPolicyNegatives, known_liked, make_sampler
from penchant.models.sequential.alignment.pairs import SPO_CLASSES, Degrees, liked_next_items, rated_losers
from penchant.models.sequential.alignment.policy import next_item_log_probs
from tests.conftest import cli, tiny_log

SMALL = {"factors": 16, "max_len": 10, "epochs": 2, "blocks": 1}
OPTIONS = ("finetune", "finetune_spo", "finetune_negatives", "finetune_beta", "finetune_lr", "finetune_epochs",
           "finetune_flip", "finetune_topk")


@pytest.fixture(scope="module")
def log():
    return tiny_log()


@pytest.fixture(scope="module")
def base(log):
    """SASRec trained on the tiny log, not fine-tuned."""
    return create("sasrec", **SMALL).fit(log)


def tuned(base, log, **options):
    """A copy of ``base`` fine-tuned on ``log`` with ``options`` (finetune_* names without the prefix)."""
    model = copy.deepcopy(base)
    for key, value in options.items():
        setattr(model, f"finetune_{key}" if key != "finetune" else key, value)
    model.finetune_losses_ = driver.finetune(model, log)
    return model


def test_each_loss_by_hand():
    import torch

    from penchant.models.sequential.alignment.losses import (
        dpo_loss,
        ipo_loss,
        pair_loss,
        sft_loss,
        spo_degree_loss,
        spo_features,
    )

    pw, pl, rw, rl = (torch.tensor(v) for v in ([-1.0, -0.5], [-2.0, -1.0], [-1.5, -0.7], [-1.0, -1.2]))
    h = np.array([(-1.0 + 1.5) - (-2.0 + 1.0), (-0.5 + 0.7) - (-1.0 + 1.2)])  # log-ratio margins: 1.5, 0.0
    beta, eps = 0.5, 0.2

    def nls(x):  # −log σ(x)
        return np.log1p(np.exp(-x))

    dpo = nls(beta * h).mean()
    assert float(dpo_loss(pw, pl, rw, rl, beta)) == pytest.approx(dpo)
    assert float(pair_loss("dpo", pw, pl, rw, rl, beta=beta, flip_rate=eps)) == pytest.approx(dpo)  # dpo ignores ε
    rdpo = (((1 - eps) * nls(beta * h) - eps * nls(-beta * h)) / (1 - 2 * eps)).mean()
    assert float(pair_loss("rdpo", pw, pl, rw, rl, beta=beta, flip_rate=eps)) == pytest.approx(rdpo)
    ipo = ((h - 1 / (2 * beta)) ** 2).mean()  # (1.5 − 1)², (0 − 1)² → 0.625
    assert float(ipo_loss(pw, pl, rw, rl, beta)) == pytest.approx(0.625) == ipo
    assert float(pair_loss("ipo", pw, pl, rw, rl, beta=beta, flip_rate=eps)) == pytest.approx(ipo)
    assert float(sft_loss(pw)) == pytest.approx(0.75)
    logits, degree = np.array([[1.0, 0, 0, 0], [0, 2.0, 0, 1.0]]), np.array([0, 3])
    ce = np.mean([np.log(np.exp(r).sum()) - r[d] for r, d in zip(logits, degree, strict=True)])
    assert float(spo_degree_loss(torch.tensor(logits), torch.tensor(degree))) == pytest.approx(ce)
    hidden, ew, el = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -1.0]]), torch.tensor([[0.5, 4.0]])
    assert spo_features(hidden, ew, el).tolist() == [[3.0, -2.0, 0.5, 8.0]]
    with pytest.raises(ConfigError, match="pair loss must be one of"):
        pair_loss("kto", pw, pl, rw, rl, beta=beta, flip_rate=0.0)


def degree_log(ratings: bool) -> Dataset:
    """User a: items 0 1 2 3 4 2 (events 0-5, rated 5 4 1 5 2 3); user b: items 2 0 (events 6-7)."""
    users = np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int32)
    items = np.array([0, 1, 2, 3, 4, 2, 2, 0], np.int32)
    r = np.array([5, 4, 1, 5, 2, 3, 1, 5], np.float32)
    return Dataset(np.array(["a", "b"], dtype=object), np.array([f"i{k}" for k in range(8)], dtype=object), users, items,
                   ratings=r if ratings else None, timestamps=np.array([0, 1, 2, 3, 4, 5, 0, 1], np.float64))


def test_preference_degrees_are_rating_gaps_or_history_distances():
    queries = [(0, 3, 2),  # item 2 at events 2 and 5: the nearer (event 2, rated 1); gap 5 − 1 = 4; distance 1
               (0, 3, 4),  # rated 2: gap 3; distance 1
               (0, 1, 4),  # gap 4 − 2 = 2; distance 3
               (0, 1, 0),  # rated above the winner: gap −1 → weakest; distance 1
               (0, 1, 7),  # never consumed: the strongest class either way
               (0, 5, 0),  # distance 5, beyond the scale
               (1, 7, 2),  # user b's own item 2 (event 6), not user a's: gap 5 − 1 = 4; distance 1
               (1, 7, 4)]  # user a consumed item 4, user b did not
    user, pos, loser = (np.array(q) for q in zip(*queries, strict=True))
    assert SPO_CLASSES == 4
    assert Degrees(degree_log(True))(user, pos, loser).tolist() == [3, 2, 1, 0, 3, 0, 3, 3]
    # (0, 5, 0): winner item 2 rated 3 against item 0 rated 5 → gap −2 → weakest
    assert Degrees(degree_log(False))(user, pos, loser).tolist() == [0, 0, 2, 0, 3, 3, 0, 3]


def test_winners_are_liked_next_items_and_every_next_item_without_ratings():
    rated = liked_next_items(degree_log(True), max_len=3)
    assert rated.position.tolist() == [1, 3, 7] and rated.item.tolist() == [1, 3, 0]
    assert rated.history.tolist() == [[8, 8, 0], [0, 1, 2], [8, 8, 2]]
    unrated = liked_next_items(degree_log(False), max_len=3)
    assert unrated.position.tolist() == [1, 2, 3, 4, 5, 7] and unrated.rating is None
    rows, losers = rated_losers(degree_log(True), rated, disliked=2.0)
    assert rows.tolist() == [0, 1, 2] and set(losers[:2]) <= {2, 4} and losers[2] == 2  # b's only low rating: item 2


def current_top_k(model, winners, rows, k):
    """Each row's top-k allowed items under the model as it is now (inference mode), computed apart
    from the sampler: scores after the history with the winner, history and known-liked items removed."""
    was_training = model.net_.training
    model.net_.eval()
    scores = model._score_padded(winners.history[rows])
    if was_training:
        model.net_.train()
    liked = known_liked(tiny_log(), 4.0)[winners.user[rows]].toarray()
    for r, row in enumerate(rows):
        scores[r, winners.item[row]] = -np.inf
        scores[r, winners.history[row][winners.history[row] < model.n_items_]] = -np.inf
    scores[liked] = -np.inf
    return [set(np.argsort(-s, kind="stable")[:k]) for s in scores]


def test_on_policy_negatives_come_from_the_current_top_k_and_follow_the_model(base, log):
    import torch

    winners = liked_next_items(log, base.max_len)
    sampler = make_sampler("on-policy", log, winners, liked=4.0, topk=5)
    rows = np.arange(len(winners))

    def draw(model):
        with torch.no_grad():
            logp = next_item_log_probs(model.net_.eval(), torch.from_numpy(winners.history), model.n_items_)
        return sampler.draw(np.random.default_rng(0), rows, logp)

    before = draw(base)
    assert all(j in top for j, top in zip(before, current_top_k(base, winners, rows, 5), strict=True))
    changed = tuned(base, log, finetune="dpo", negatives="uniform", lr=3e-2, epochs=2)
    after = draw(changed)
    assert all(j in top for j, top in zip(after, current_top_k(changed, winners, rows, 5), strict=True))
    assert np.mean(after != before) > 0.2  # the same random numbers, another model: other negatives
    # offline draws would not stay inside the top 5 of 40 items
    uniform = make_sampler("uniform", log, winners, liked=4.0, topk=5).draw(np.random.default_rng(0), rows)
    assert np.mean([j in top for j, top in zip(uniform, current_top_k(base, winners, rows, 5), strict=True)]) < 0.5


def test_fine_tuning_draws_every_negative_from_the_model_as_it_is_at_that_step(base, log, monkeypatch):
    """Through the driver: each batch's negatives are in that step's top-K of the model being tuned;
    a driver that fell back to offline negatives would never call the on-policy sampler."""
    calls = []
    original = OnPolicyNegatives.draw

    def checked(self, rng, rows, log_probs=None):
        out = original(self, rng, rows, log_probs)
        calls.append(out)
        tops = current_top_k(model, self.winners, rows, self.topk)
        assert all(j in top for j, top in zip(out, tops, strict=True))
        return out

    monkeypatch.setattr(OnPolicyNegatives, "draw", checked)
    model = copy.deepcopy(base)
    model.finetune, model.finetune_negatives, model.finetune_topk, model.finetune_epochs = "dpo", "on-policy", 3, 2
    model.finetune_lr = 1e-2
    losses = driver.finetune(model, log)
    n = len(liked_next_items(log, model.max_len))
    assert len(losses) == 2 and len(calls) == 2 * -(-n // model.batch_size)
    assert not np.array_equal(np.concatenate(calls[: len(calls) // 2]), np.concatenate(calls[len(calls) // 2:]))


def test_offline_negatives_skip_the_winner_the_history_and_liked_items_and_popular_follows_popularity(log):
    winners = liked_next_items(log, 10)
    liked = known_liked(log, 4.0)
    rows = np.repeat(np.arange(len(winners)), 20)
    counts = {}
    for kind in ("uniform", "popular"):
        got = make_sampler(kind, log, winners, liked=4.0, topk=5).draw(np.random.default_rng(1), rows)
        assert not (got == winners.item[rows]).any()
        assert not (winners.history[rows] == got[:, None]).any()
        assert not np.asarray(liked[winners.user[rows], got]).any()
        counts[kind] = np.bincount(got, minlength=log.n_items)
    popularity = log.item_counts
    corr = {k: np.corrcoef(c, popularity)[0, 1] for k, c in counts.items()}
    assert corr["popular"] > 0.5 and corr["popular"] > corr["uniform"] + 0.3, corr


@pytest.mark.parametrize("options", [
    {"finetune": "dpo", "negatives": "rated"},
    {"finetune": "rdpo", "negatives": "popular", "flip": 0.2},
    {"finetune": "ipo", "negatives": "uniform"},
    {"finetune": "sft"},
    {"finetune": "dpo", "negatives": "on-policy", "spo": 0.5},
])
def test_each_option_fine_tunes_the_model(base, log, options):
    model = tuned(base, log, lr=1e-3, epochs=2, **options)
    assert len(model.finetune_losses_) == 2 and all(np.isfinite(model.finetune_losses_))
    users = np.arange(log.n_users)
    assert not np.allclose(model.score(users), base.score(users), atol=1e-4)
    if options["finetune"] == "sft":  # maximum likelihood of the winners: their probability goes up
        assert model.finetune_losses_[1] < model.finetune_losses_[0]


def test_the_spo_term_joins_the_alignment_loss(base, log, monkeypatch):
    """With λ > 0 each step adds λ × the degree head's cross-entropy, on the degrees of the pairs drawn."""
    seen = []
    original = driver.spo_degree_loss

    def spy(logits, degree):
        seen.append(degree.numpy().copy())
        return original(logits, degree)

    monkeypatch.setattr(driver, "spo_degree_loss", spy)
    plain = tuned(base, log, finetune="dpo", negatives="rated", lr=1e-4).finetune_losses_[0]
    assert not seen
    with_spo = tuned(base, log, finetune="dpo", negatives="rated", lr=1e-4, spo=2.0).finetune_losses_[0]
    degrees = np.concatenate(seen)
    assert set(degrees) <= set(range(SPO_CLASSES)) and len(set(degrees)) >= 2  # gaps of 2..4 stars
    # a fresh head starts near chance, cross-entropy ≈ log 4, and learns a little within one epoch
    assert 2.0 * 0.8 < with_spo - plain < 2.0 * (np.log(SPO_CLASSES) + 0.3)


def test_ppo_runs_through_the_same_option(base, log):
    model = tuned(base, log, finetune="ppo", negatives="rated", lr=1e-3, epochs=1)
    assert len(model.finetune_losses_) == 1
    users = np.arange(log.n_users)
    assert not np.allclose(model.score(users), base.score(users), atol=1e-5)


def test_bad_options_and_combinations_are_config_errors(log):
    for bad, message in (({"finetune": "kto"}, "finetune must be one of"),
                         ({"finetune_negatives": "hard"}, "finetune_negatives must be one of"),
                         ({"finetune": "sft", "finetune_spo": 0.5}, "finetune_spo"),
                         ({"finetune": "ppo", "finetune_spo": 0.5}, "finetune_spo"),
                         ({"finetune": "rdpo", "finetune_flip": 0.5}, "finetune_flip"),
                         ({"finetune": "dpo", "finetune_topk": 0}, "finetune_topk"),
                         ({"finetune_liked": 2.0}, "finetune_liked"),
                         ({"finetune": "dpo", "long_len": 20}, "long_len"),
                         ({"finetune": "dpo", "item_text": "fuse", "summaries": "s.json"}, "summaries")):
        with pytest.raises(ConfigError, match=message):
            create("gru4rec", **bad)
    unrated = dataclasses.replace(log, ratings=None)
    with pytest.raises(ConfigError, match="no ratings"):
        create("sasrec", finetune="dpo", **SMALL).fit(unrated)
    assert len(create("sasrec", finetune="sft", **SMALL).fit(unrated).finetune_losses_) == 1  # sft reads no negatives


def test_the_artefact_keeps_the_fine_tuned_model(log, tmp_path):
    options = {**SMALL, "finetune": "dpo", "finetune_negatives": "on-policy", "finetune_lr": 1e-3}
    model = create("gru4rec", **{k: v for k, v in options.items() if k != "blocks"}).fit(log)
    plain = create("gru4rec", **{k: v for k, v in SMALL.items() if k != "blocks"}).fit(log)
    users = np.arange(log.n_users)
    assert not np.allclose(model.score(users), plain.score(users), atol=1e-4)
    loaded = Recommender.load(model.save(tmp_path / "m.npz"))
    assert loaded.params()["finetune"] == "dpo" and loaded.params()["finetune_negatives"] == "on-policy"
    np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=1e-5, atol=1e-5)


def test_penchant_fit_fine_tunes_from_the_command_line(log, tmp_path):
    from penchant.data.write import write_log

    train = write_log(log, tmp_path / "train.csv")
    params = [a for k, v in {**SMALL, "finetune": "dpo", "finetune_negatives": "on-policy", "finetune_spo": 0.5}.items()
              for a in ("--param", f"{k}={v}")]
    code, out, err = cli("fit", "--train", train, "--model", "sasrec", *params, "--out", tmp_path / "m.npz")
    assert code == 0, err
    assert "fine-tuned by dpo + SPO (λ 0.5) against on-policy negatives (β 0.1): mean loss" in " ".join(out.split())
    model = Recommender.load(tmp_path / "m.npz")
    assert {k: model.params()[k] for k in OPTIONS[:3]} == {"finetune": "dpo", "finetune_spo": 0.5,
                                                          "finetune_negatives": "on-policy"}
    direct = create("sasrec", **SMALL).fit(log)
    assert not np.allclose(model.score(np.arange(5)), direct.score(np.arange(5)), atol=1e-6)
    code, _, err = cli("fit", "--train", train, "--model", "sasrec", "--param", "finetune=sft",
                       "--param", "finetune_spo=1", "--out", tmp_path / "x.npz")
    assert code == 2 and "finetune_spo" in err
