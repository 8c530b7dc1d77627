"""The return-conditioned decision transformer (DT4IER's two returns) in the long-term world."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from penchant.simulate.decision_transformer import (
    DecisionTransformer,
    DTRerank,
    RewardWeighting,
    Trajectories,
    _sequences,
    balance_loss,
    collect,
    contrastive_action_loss,
    train_decision_transformer,
    validation_clicks,
    windows,
)
from penchant.simulate.experiment import run_policies, summary
from penchant.simulate.long_term_policies import HistoryGreedy, Oracle


def test_sequences_hold_each_users_lists_in_order_with_both_returns_to_go():
    """User 0 is shown lists at steps 0, 1 and 3 (clicks at 0 and 3); user 1 only at step 2 (no click)."""
    acted = np.array([[True, False], [True, False], [False, True], [True, False]])
    states = np.broadcast_to(np.arange(4.0)[:, None, None], (4, 2, 8)) * acted[..., None]
    actions = np.broadcast_to(np.arange(4.0)[:, None, None], (4, 2, 6)) * acted[..., None]
    clicks = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    got = _sequences(states, actions, acted, clicks)
    assert got.lengths.tolist() == [3, 1]
    assert got.states[0, :, 0].tolist() == [0.0, 1.0, 3.0] and got.actions[1, 0, 0] == 2.0
    assert got.rtg[0].tolist() == [[2.0, 3.0], [1.0, 2.0], [1.0, 1.0]]   # clicks still to come, lists still to come
    assert got.rtg[1, 0].tolist() == [0.0, 1.0] and got.rtg[1, 1:].sum() == 0
    rtg, states, actions, mask = windows(got, context=2)
    assert len(rtg) == 4 and mask.tolist() == [[False, True], [True, True], [True, True], [False, True]]
    assert states[2, :, 0].tolist() == [1.0, 3.0] and states[0, 0].abs().sum() == 0   # left-padded with zeros


def test_reward_weighting_combines_the_two_returns_with_the_users_weights():
    """Weights softmax(log 3, 0) = (0.75, 0.25): the return conditioned on is 2 · w ⊙ rtg, so (2, 4) → (3, 2);
    the balance term −(1.5 + 1.0) + (1.5 − 1.0)² = −2.25; the user's attributes skip padded steps."""
    net = RewardWeighting(attributes=3, hidden=4)
    with torch.no_grad():
        net.net[2].weight.zero_()
        net.net[2].bias.copy_(torch.tensor([np.log(3.0), 0.0]))
    w = net(torch.randn(1, 3))
    assert torch.allclose(w, torch.tensor([[0.75, 0.25]]))
    rtg = torch.tensor([[[2.0, 4.0]]])
    assert torch.allclose(RewardWeighting.combine(w, rtg), torch.tensor([[[3.0, 2.0]]]))
    assert float(balance_loss(w, rtg, torch.tensor([[True]])).detach()) == pytest.approx(-2.25)
    torch.manual_seed(0)
    model = DecisionTransformer(8, 3, heads=1)
    states = torch.rand(1, 2, 8) + 0.1
    padded = torch.cat([torch.zeros(1, 1, 8), states], dim=1)
    assert torch.allclose(model.user_weights(states), model.user_weights(padded))
    assert not torch.allclose(model.user_weights(states), model.user_weights(states * 3))


def test_contrastive_action_loss_is_low_for_separated_actions_and_log_n_plus_1_for_confused_ones():
    """Three windows with returns-to-go 0, 1, 2 apart (each the others' negatives): predicting one's own
    action with the others 1 away gives log(1 + 2e^-10); when all actions coincide, log 3; windows with the
    same return have no negatives and add 0."""
    actions = torch.eye(3, 6) * np.sqrt(3.0)                   # pairwise mean squared distance 1
    rtg = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    separated = float(contrastive_action_loss(actions, actions, rtg, margin=0.5, tau=0.1))
    assert separated == pytest.approx(np.log(1 + 2 * np.exp(-10)), rel=1e-3) and separated < 1e-3
    same = torch.ones(3, 6)
    assert float(contrastive_action_loss(same, same, rtg)) == pytest.approx(np.log(3.0))
    assert float(contrastive_action_loss(same, same, torch.zeros(3, 2))) == 0.0


def test_action_tokens_make_three_tokens_per_list_and_only_past_actions_are_seen():
    """With action tokens the step's prediction changes with an earlier list's action but not with its
    own (the causal mask); without them, actions change nothing."""
    torch.manual_seed(0)
    rtg, states, actions = torch.rand(2, 4, 2), torch.rand(2, 4, 8) + 0.1, torch.randn(2, 4, 6)
    model = DecisionTransformer(16, 4, heads=1)
    assert model.per_step == 3 and model.causal.shape == (12, 12)
    base = model(rtg, states, actions)[:, -1]
    own, earlier = actions.clone(), actions.clone()
    own[:, -1] += 5.0
    earlier[:, 0] += 5.0
    assert torch.allclose(model(rtg, states, own)[:, -1], base)
    assert not torch.allclose(model(rtg, states, earlier)[:, -1], base, atol=1e-4)
    plain = DecisionTransformer(16, 4, heads=1, action_tokens=False)
    assert plain.per_step == 2 and torch.allclose(plain(rtg, states, earlier), plain(rtg, states, actions))


@pytest.mark.slow
def test_asking_for_a_high_return_beats_greedy_and_a_low_one(worlds):
    """Offline: 12 behaviour runs of 100 training users (one random ranking θ per run, noise per list;
    mean 67.2 clicks per user), 600 steps of training at the defaults (no action tokens; reward
    weighting and the contrastive loss on), the checkpoint chosen by validation users' clicks (step
    600); then 600 test users (seed 99), ranking with observed features only. Measured: greedy 68.5
    clicks [66.0, 71.0], retention 0.280; asking for the logs' 90th-percentile returns 88.7 [86.6,
    90.9], 0.450; asking for the 10th percentile 60.3 [58.4, 62.2], 0.195 (the model without DT4IER's
    parts: 84.7, 0.437 and 63.9, 0.237)."""
    data = collect(worlds, worlds.scores, episodes=12, seed=0)
    assert isinstance(data, Trajectories) and len(data.lengths) == 1200
    returns = data.initial_returns()
    target = np.percentile(returns, 90, axis=0)
    model, history = train_decision_transformer(data, seed=0, select=validation_clicks(worlds("valid", 7), worlds.scores,
                                                                                       target))
    assert history[-1]["step"] == 600 and all("valid_clicks" in r for r in history)
    policies = {"greedy": HistoryGreedy(worlds.scores), "oracle": Oracle(None),
                **{f"ask {q}": DTRerank(worlds.scores, worlds.template, model, np.percentile(returns, q, axis=0))
                   for q in (10, 90)}}
    episodes = run_policies(worlds, policies, 200, seed=99)
    report = {name: summary(ep, episodes["oracle"]) for name, ep in episodes.items()}
    high, low, greedy = report["ask 90"], report["ask 10"], report["greedy"]
    assert high["return"]["click"]["ci"][0] > greedy["return"]["click"]["ci"][1]
    assert high["retention"]["ci"][0] > greedy["retention"]["ci"][1]
    assert high["return"]["click"]["ci"][0] > low["return"]["click"]["ci"][1]   # the return asked for matters
    assert high["return"]["click"]["mean"] > returns[:, 0].mean()              # above the behaviour runs' mean
