"""Pairwise preference data, models and evaluation: by hand, against choix, and on worlds whose
Bayes-optimal accuracy is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.data import Dataset, read_text_comparisons
from penchant.data.preference_worlds import cyclic_world, flip_labels, plural_world
from penchant.data.preferences import PreferencePairs, pairs_from_ratings, rating_pair_split, split_pairs, write_trl
from penchant.eval.prefs import evaluate_pairs, expected_calibration_error, fit_temperature, paired_difference
from penchant.models.preference import PreferenceModel, create_preference
from tests.conftest import cli, write


def rated(users, items, ratings, n_users=None, n_items=None) -> Dataset:
    n_users = n_users or max(users) + 1
    n_items = n_items or max(items) + 1
    return Dataset(np.array([f"u{i}" for i in range(n_users)], dtype=object),
                   np.array([f"i{i}" for i in range(n_items)], dtype=object), np.array(users, np.int32),
                   np.array(items, np.int32), ratings=np.array(ratings, np.float32))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 9), st.integers(1, 5)), min_size=2, max_size=60),
       st.integers(0, 1000))
def test_rating_pairs_prefer_the_higher_rating_and_count_what_they_drop(rows, seed):
    seen = {}
    for u, i, r in rows:
        seen[(u, i)] = r
    users, items, ratings = zip(*[(u, i, r) for (u, i), r in seen.items()])
    ds = rated(users, items, ratings, 5, 10)
    pairs = pairs_from_ratings(ds, pairs_per_rating=3, seed=seed)
    truth = {(u, i): r for u, i, r in zip(users, items, ratings)}
    for u, w, l in zip(pairs.user, pairs.winner, pairs.loser):
        assert truth[(u, w)] > truth[(u, l)]
    drawn, ties, repeats = (s.count for s in pairs.steps[-3:])
    assert drawn == len(pairs) + ties + repeats
    keys = {(u, min(w, l), max(w, l)) for u, w, l in zip(pairs.user, pairs.winner, pairs.loser)}
    assert len(keys) == len(pairs)


def test_rating_pairs_by_hand():
    ds = rated([0, 0, 0], [0, 1, 2], [5, 3, 3])
    pairs = pairs_from_ratings(ds, pairs_per_rating=100, seed=0)  # capped at the 3 possible pairs
    assert sorted(zip(pairs.winner.tolist(), pairs.loser.tolist())) == [(0, 1), (0, 2)]
    assert pairs.steps[-2].name == "ties dropped" and pairs.steps[-2].count >= 1


def test_rating_pair_split_shares_no_rating_across_parts(ml100k):
    sp = rating_pair_split(ml100k, seed=3)
    keys = [set(zip(np.concatenate([p.user, p.user]).tolist(), np.concatenate([p.winner, p.loser]).tolist()))
            for p in (sp.train, sp.valid, sp.test)]
    assert not keys[0] & keys[2] and not keys[0] & keys[1] and not keys[1] & keys[2]


def test_splits_by_group_and_by_user_keep_each_on_one_side():
    world = plural_world(n_users=50, n_items=20, pairs_per_user=10, seed=1)
    pairs = world.pairs
    grouped = PreferencePairs(pairs.user, pairs.winner, pairs.loser, pairs.group // 7, pairs.user_ids, pairs.option_ids)
    for by, key in (("group", "group"), ("user", "user")):
        sp = split_pairs(grouped, (0.6, 0.2, 0.2), by=by, seed=0)
        sides = [set(getattr(p, key).tolist()) for p in (sp.train, sp.valid, sp.test)]
        assert not sides[0] & sides[1] and not sides[0] & sides[2] and not sides[1] & sides[2]
        assert len(sp.train) + len(sp.valid) + len(sp.test) == len(pairs)


def test_trl_export_reads_back(tmp_path, shared_data):

    pairs = read_text_comparisons(shared_data / "hh-rlhf" / "relabeled-both-test.jsonl.gz")
    assert pairs.n_users == 2 and pairs.steps[-1].name == "identical replies dropped"
    back = read_text_comparisons(write_trl(pairs.subset(np.arange(20)), tmp_path / "out.jsonl"))
    assert list(back.chosen_text) == [pairs.option_text[w] for w in pairs.winner[:20]]
    assert list(back.prompt) == [pairs.option_context[w] for w in pairs.winner[:20]]
    assert list(back.user_ids[back.user]) == [pairs.user_ids[u] for u in pairs.user[:20]]


def test_labelled_responses_layout_and_its_errors(tmp_path):
    row = {"prompt": "p", "responses": ["a", "b"], "label": 1, "objective": "helpful"}
    tc = read_text_comparisons(write(tmp_path / "v.jsonl", json.dumps(row) + "\n"))
    assert (tc.chosen_text[0], tc.rejected_text[0], tc.user_ids[tc.user[0]]) == ("b", "a", "helpful")
    with pytest.raises(Exception, match="label"):
        read_text_comparisons(write(tmp_path / "bad.jsonl", json.dumps(row | {"label": 2}) + "\n"))


def test_bradley_terry_agrees_with_choix():
    choix = pytest.importorskip("choix")
    rng = np.random.default_rng(0)
    n, strength = 12, rng.normal(size=12)
    a, b = rng.integers(0, n, 600), rng.integers(0, n, 600)
    keep = a != b
    a, b = a[keep], b[keep]
    a_wins = rng.random(len(a)) < 1 / (1 + np.exp(-(strength[a] - strength[b])))
    w, l = np.where(a_wins, a, b), np.where(a_wins, b, a)
    pairs = PreferencePairs(np.full(len(w), -1), w, l, np.arange(len(w)), np.array([], dtype=object),
                            np.arange(n).astype(str).astype(object))
    for alpha in (0.01, 1.0):
        ours = create_preference("bt", alpha=alpha).fit(pairs).theta_
        theirs = choix.opt_pairwise(n, list(zip(w.tolist(), l.tolist())), alpha=alpha, method="BFGS", tol=1e-10)
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_gpm_is_skew_symmetric_and_saves_exactly(tmp_path):
    world = cyclic_world(n_triples=4, n_pairs=600, seed=2)
    model = create_preference("gpm", blocks=2, epochs=5).fit(world.pairs)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 12, 50), rng.integers(0, 12, 50)
    u = np.full(50, -1)
    np.testing.assert_allclose(model.margin(u, a, b), -model.margin(u, b, a), atol=1e-6)
    np.testing.assert_allclose(model.prob(u, a, b) + model.prob(u, b, a), 1.0, atol=1e-6)
    with pytest.raises(NotImplementedError):
        model.score(u, a)
    restored = PreferenceModel.load(model.save(tmp_path / "gpm.npz"))
    assert np.array_equal(restored.margin(u, a, b), model.margin(u, a, b))


def test_gpm_learns_cycles_that_bradley_terry_cannot():
    """Cyclic world: GPM ≥ 95% of the Bayes-optimal held-out accuracy; on cycle edges Bradley–Terry
    stays at or below the 2/3 that any scalar score can reach on a 3-cycle."""
    world = cyclic_world(seed=0)
    sp = split_pairs(world.pairs, (0.8, 0.1, 0.1), seed=0)
    test_idx = sp.indices("test")
    cycle = world.on_cycle[test_idx]
    bayes = world.bayes_accuracy(test_idx)
    gpm = create_preference("gpm", blocks=2).fit(sp.train, sp.valid)
    bt = create_preference("bt").fit(sp.train, sp.valid)
    acc = {name: (m.prob(sp.test.user, sp.test.winner, sp.test.loser) > 0.5) for name, m in (("gpm", gpm), ("bt", bt))}
    assert acc["gpm"].mean() >= 0.95 * bayes, (acc["gpm"].mean(), bayes)
    # BT versus the Bayes choice on cycle edges: agreement ≤ 2/3 (+ sampling slack)
    bayes_choice = world.p_true[test_idx] > 0.5
    assert np.mean(acc["bt"][cycle] == bayes_choice[cycle]) <= 2 / 3 + 0.03


def test_pair_loss_forms_by_hand():
    import torch

    from penchant.models.preference.train import pair_loss

    m = torch.tensor([0.7, -1.2])
    sp = torch.nn.functional.softplus
    assert float(pair_loss(m)) == pytest.approx(float(sp(-m).mean()))
    weight = torch.tensor([3.0, 1.0])
    assert float(pair_loss(m, weight=weight)) == pytest.approx(float((3 * sp(-m[0]) + sp(-m[1])) / 4))
    eps = 0.2
    assert float(pair_loss(m, loss="smooth", epsilon=eps)) == pytest.approx(float(((1 - eps) * sp(-m) + eps * sp(m)).mean()))
    unbiased = ((1 - eps) * sp(-m) - eps * sp(m)) / (1 - 2 * eps)
    assert float(pair_loss(m, loss="robust", epsilon=eps)) == pytest.approx(float(unbiased.mean()))
    sig = torch.sigmoid(m)
    forward = -torch.log((1 - eps) * sig + eps * (1 - sig))
    assert float(pair_loss(m, loss="forward", epsilon=eps)) == pytest.approx(float(forward.mean()), rel=1e-6)


@pytest.mark.parametrize("loss", ["plain", "smooth", "robust", "forward"])
def test_numpy_losses_match_torch_and_their_derivatives(loss):
    """Bradley–Terry's L-BFGS objective uses the numpy losses: same values as the torch ones, and
    derivatives that match central differences."""
    import torch

    from penchant.models.preference.train import pair_loss, pair_loss_np

    m = np.linspace(-6, 6, 25)
    value, slope = pair_loss_np(m, loss, 0.2)
    for k in range(len(m)):
        assert value[k] == pytest.approx(float(pair_loss(torch.tensor([m[k]], dtype=torch.float64), loss=loss, epsilon=0.2)))
    h = 1e-6
    numeric = (pair_loss_np(m + h, loss, 0.2)[0] - pair_loss_np(m - h, loss, 0.2)[0]) / (2 * h)
    np.testing.assert_allclose(slope, numeric, rtol=1e-5, atol=1e-8)


def test_calibration_measures_by_hand():
    p = np.array([0.9, 0.9, 0.6, 0.4, 0.5])
    # bins over confidence: 0.9 twice (both right), 0.6 twice (one right, one wrong), 0.5 once (half)
    expected = (2 * abs(1 - 0.9) + 2 * abs(0.5 - 0.6) + abs(0.5 - 0.5)) / 5
    assert expected_calibration_error(p) == pytest.approx(expected)
    # margins twice as confident as the truth: the fitted temperature is about 2
    rng = np.random.default_rng(0)
    true = rng.normal(0, 1.5, 20000)
    sign = np.where(rng.random(20000) < 1 / (1 + np.exp(-true)), 1, -1)
    assert fit_temperature(2 * true * sign) == pytest.approx(2.0, rel=0.05)


def test_flip_labels_counts_and_swaps():
    world = plural_world(n_users=20, n_items=10, pairs_per_user=20, seed=0)
    noisy = flip_labels(world.pairs, 0.25, seed=1)
    swapped = noisy.winner != world.pairs.winner
    assert swapped.sum() == noisy.steps[-1].count and 0.15 < swapped.mean() < 0.35
    assert np.array_equal(noisy.loser[swapped], world.pairs.winner[swapped])


def test_personal_bt_beats_global_bradley_terry_on_movielens_rating_pairs(ml100k):
    """ML-100K rating-derived pairs (no rating shared between train and test): personalised
    Bradley–Terry (the setting the benchmark selects on valid) beats global Bradley–Terry, with a
    user-level bootstrap interval above zero; without regularisation personal factors overfit."""
    sp = rating_pair_split(ml100k, seed=0)
    bt = evaluate_pairs(create_preference("bt", alpha=0.3).fit(sp.train, sp.valid), sp.test, sp.valid)
    personal = create_preference("pbt", weight_decay=1e-5, reg=0.03, factors=16).fit(sp.train, sp.valid)
    report = evaluate_pairs(personal, sp.test, sp.valid)
    diff, lo, hi = paired_difference(report, bt, sp.test.user)
    assert 0.69 < bt.accuracy < 0.72
    assert diff >= 0.012 and lo > 0, (bt.accuracy, report.accuracy, lo, hi)
    naive = create_preference("pbt", weight_decay=0.0, factors=16).fit(sp.train, sp.valid)
    assert evaluate_pairs(naive, sp.test).accuracy < bt.accuracy


def test_length_baseline_learns_that_longer_replies_win():
    rng = np.random.default_rng(0)
    texts = np.array(["x" * int(n) for n in rng.integers(5, 400, 40)], dtype=object)
    a, b = rng.integers(0, 40, 300), rng.integers(0, 40, 300)
    keep = (a != b) & (np.array([len(t) for t in texts])[a] != np.array([len(t) for t in texts])[b])
    a, b = a[keep], b[keep]
    longer_a = np.array([len(t) for t in texts])[a] > np.array([len(t) for t in texts])[b]
    w, l = np.where(longer_a, a, b), np.where(longer_a, b, a)
    pairs = PreferencePairs(np.full(len(w), -1), w, l, np.arange(len(w)), np.array([], dtype=object),
                            np.arange(40).astype(str).astype(object), option_text=texts)
    model = create_preference("bt", features="length", alpha=0.01).fit(pairs)
    assert np.all(model.prob(np.full(len(w), -1), w, l) > 0.5)
    bow = create_preference("bt", features="bow").fit(pairs)
    assert bow.theta_.shape == (40,)


@pytest.mark.slow
@pytest.mark.xdist_group("minilm-layers-hh-rlhf")  # one worker: the later tests read the cached states
def test_minilm_layer_reward_beats_length_and_bag_of_words_on_harmless_base(shared_data):
    """Real dialogue: on HH-RLHF harmless-base prompts never seen in training, a linear reward on
    frozen MiniLM layer states beats both text baselines (each picks its L2 weight on valid)."""

    pairs = read_text_comparisons(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    sp = split_pairs(pairs, (0.7, 0.15, 0.15), by="group", seed=0)
    assert not set(sp.train.group.tolist()) & set(sp.test.group.tolist())
    acc = {}
    for features in ("length", "bow", "layers"):
        fitted = [create_preference("bt", features=features, alpha=a).fit(sp.train) for a in (0.1, 1.0, 10.0)]
        best = max(fitted, key=lambda m: evaluate_pairs(m, sp.valid).accuracy)
        acc[features] = evaluate_pairs(best, sp.test).accuracy
    assert acc["layers"] > acc["bow"] + 0.03 and acc["layers"] > acc["length"] + 0.05, acc


@pytest.mark.xdist_group("minilm-layers-hh-rlhf")
def test_text_reward_artefact_scores_unseen_replies_above_length(shared_data, tmp_path):
    """`prefs fit` on the training prompts of harmless-base, `prefs score` on a file of prompts and
    replies it never saw: the MiniLM-layer reward, rebuilt from its artefact alone (its fitted
    standardisation kept), beats the length-only reward on the same rows."""

    pairs = read_text_comparisons(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    sp = split_pairs(pairs, (0.85, 0.0, 0.15), by="group", seed=0)
    train, test = write_trl(sp.train, tmp_path / "train.jsonl"), write_trl(sp.test, tmp_path / "test.jsonl")
    seen = [json.loads(line) for line in train.read_text().splitlines()]
    unseen = [json.loads(line) for line in test.read_text().splitlines()]
    assert not {r["prompt"] for r in seen} & {r["prompt"] for r in unseen}  # no held-out prompt was trained on
    replies = {t for r in seen for t in (r["chosen"], r["rejected"])}  # and few replies recur word for word
    assert sum(r["chosen"] in replies or r["rejected"] in replies for r in unseen) <= 0.05 * len(unseen)
    acc = {}
    for features in ("length", "layers"):
        model = tmp_path / f"{features}.npz"
        code, _, err = cli("prefs", "fit", "--train", train, "--model", "bt", "--param", f"features={features}",
                           "--param", "alpha=10", "--out", model)
        assert code == 0, err
        code, _, err = cli("prefs", "score", "--model-path", model, "--pairs", test, "--json", tmp_path / f"{features}.json")
        assert code == 0, err
        got = json.loads((tmp_path / f"{features}.json").read_text())
        assert got["model"] == "bt" and got["pairs_scored"] == len(sp.test) == len(got["prob"])
        prob = np.array(got["prob"])
        assert got["accuracy"] == pytest.approx(np.mean((prob > 0.5) + 0.5 * (prob == 0.5)))
        acc[features] = got["accuracy"]
    assert acc["layers"] > acc["length"] + 0.05, acc


def test_text_files_read_apart_share_prompts_and_replies(tmp_path):
    """Train and test TRL files map onto one vocabulary: the same (prompt, reply) is one option and
    the same prompt one group, whichever file it is in; id files merge by id."""
    from penchant.data.pair_files import comparison_layout, read_pair_files

    a = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in [
        {"prompt": "P1", "chosen": "yes", "rejected": "no", "user": "ann"},
        {"prompt": "P2", "chosen": "fine", "rejected": "bad"}]) + "\n")
    b = write(tmp_path / "b.jsonl", json.dumps({"prompt": "P1", "chosen": "no", "rejected": "maybe", "user": "bob"}) + "\n")
    merged, (pa, pb) = read_pair_files([a, b])
    assert comparison_layout(a) == "text" and len(merged) == 3 and merged.n_options == 5
    assert pb.winner[0] == pa.loser[0] and pb.group[0] == pa.group[0] != pa.group[1]
    assert list(merged.user_ids) == ["ann", "bob"] and list(merged.user) == [0, -1, 1]
    x = write(tmp_path / "x.csv", "winner,loser\ni1,i2\n")
    y = write(tmp_path / "y.csv", "user,winner,loser\nu,i3,i1\n")
    merged, (px, py) = read_pair_files([x, y])
    assert list(merged.option_ids) == ["i1", "i2", "i3"] and px.winner[0] == py.loser[0] and list(merged.user) == [-1, 0]
    with pytest.raises(Exception, match="neither layout"):
        comparison_layout(write(tmp_path / "z.csv", "a,b\n1,2\n"))
