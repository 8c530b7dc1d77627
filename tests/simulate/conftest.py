"""The long-term world over ML-100K (ALS tastes), shared by the simulator's test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def worlds(ml100k):
    from penchant.models import create
    from penchant.simulate.experiment import movielens_worlds

    return movielens_worlds(ml100k, create("als", factors=32).fit(ml100k))
