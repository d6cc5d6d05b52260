"""How often ``vrec run`` asks the database where a batch stands."""

from __future__ import annotations

import pytest

from worker.service.follow import POLL_DUTY, pause


def test_fast_queries_poll_at_the_given_interval() -> None:
    assert pause(0.2, 0.005) == 0.2


@pytest.mark.parametrize("spent", [0.13, 1.0])
def test_slow_queries_keep_the_database_busy_at_most_the_duty_share(spent: float) -> None:
    # A million-job batch's counts take ~130 ms: the follower then waits long enough that
    # querying is at most POLL_DUTY of each round.
    assert spent / (spent + pause(0.2, spent)) == pytest.approx(POLL_DUTY)
