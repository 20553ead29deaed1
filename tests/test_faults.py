"""A search killed with SIGKILL in the middle of a write resumes and keeps its trials."""

from __future__ import annotations

import pytest
from test_benchmarks import load_benchmark


@pytest.mark.slow
@pytest.mark.parametrize("mode, n", [("checkpoint", 2)])
def test_a_search_killed_mid_write_resumes_without_losing_trials(mode, n):
    faults = load_benchmark("faults")
    result = faults.kill_once(mode, n, rerun_limit=15, seed=0)
    assert result["killed"], result
    assert result["rerun_exit"] == 0, result
    assert result["lost"] == [], result
    assert result["completed_after"] >= max(1, result["completed_before"]), result
