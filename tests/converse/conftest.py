"""Fixtures shared by the conversation tests that train on MovieLens-100K's cold users: one setup,
and EAR and CPR trained once on it (one shared FM), with greedy's and max-entropy's results on the
same test episodes. The files that use them run in one xdist group, so one worker fits them once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cold_setup(shared_data):
    """New users on MovieLens-100K, coarse attributes: 300 test and 300 validation episodes."""
    from penchant.converse.experiment import prepare
    from penchant.data import load

    return prepare(load(shared_data / "ml-100k"), "coarse", setting="cold", episodes=300, valid_episodes=300, seed=0)


@pytest.fixture(scope="session")
def trained(cold_setup):
    """EAR and CPR trained on the cold setup (one shared FM of 8 epochs; policy updates every 10
    episodes, 3 epochs), and their test results with greedy's and max-entropy's."""
    from penchant.converse.experiment import TASK
    from penchant.converse.policies import create_policy

    policies = {"ear": create_policy("ear", cold_setup.graph, fm_epochs=8),
                "cpr": create_policy("cpr", cold_setup.graph, fm_epochs=8)}
    results = {}
    for name, policy in policies.items():
        policy.fit(cold_setup.trainer(epochs=3, batch=10))
        results[name] = TASK.test(policy, cold_setup)[0]
    for name in ("greedy", "maxent"):
        results[name] = TASK.test(create_policy(name, cold_setup.graph), cold_setup)[0]
    return policies, results
