"""A search as a chain of processes: the chain's rules on a fake segment and clock."""

from __future__ import annotations

import pytest

from kerasnas import segments
from kerasnas.testing import FakeClock


class FakeSegments:
    """Stands in for the processes: each call creates trial folders in `project_dir`, as
    many as its environment allows (up to `stop_at` in all), and advances the clock by
    `seconds`."""

    def __init__(self, project_dir, clock, seconds=10.0, stop_at=None, status=0):
        self.project_dir, self.clock, self.seconds = project_dir, clock, seconds
        self.stop_at, self.status, self.calls = stop_at, status, []

    def command(self, until):
        return ["segment", until]

    def __call__(self, argv, env=None):
        start = segments.trials_created(self.project_dir)
        allowed = segments.process_trials(env or {})
        target = start + allowed if self.stop_at is None else min(start + allowed, self.stop_at)
        self.calls.append((target, argv[1]))
        for i in range(start, target):
            trial = self.project_dir / f"trial_{i:04d}"
            trial.mkdir(parents=True)
            (trial / "trial.json").write_text("{}")
        self.clock.advance(self.seconds)
        return self.status


def chain(tmp_path, fake, **kwargs):
    return segments.run_in_segments(
        fake.command, tmp_path, clock=fake.clock, run=fake, **{"trials_per_process": 3, **kwargs}
    )


def test_segments_go_on_until_one_starts_fewer_trials_than_it_might(tmp_path):
    fake = FakeSegments(tmp_path, FakeClock(), stop_at=8)  # e.g. max_trials=8, or time up
    assert chain(tmp_path, fake) == 0
    assert [calls[0] for calls in fake.calls] == [3, 6, 8]
    assert segments.trials_created(tmp_path) == 8
    exact = FakeSegments(tmp_path / "exact", FakeClock(), stop_at=6)
    chain(tmp_path / "exact", exact)
    assert [calls[0] for calls in exact.calls] == [3, 6, 6]  # the third finds nothing to do
    told = FakeSegments(tmp_path / "told", FakeClock(), stop_at=6)
    chain(tmp_path / "told", told, max_trials=6)
    assert [calls[0] for calls in told.calls] == [3, 6]  # no process for nothing


def test_a_resumed_chain_counts_from_the_trials_already_there_unless_it_starts_afresh(
    tmp_path,
):
    FakeSegments(tmp_path, FakeClock())(["segment", None], {segments.PROCESS_TRIALS: "4"})
    fake = FakeSegments(tmp_path, FakeClock(), stop_at=8)
    chain(tmp_path, fake)
    assert [calls[0] for calls in fake.calls] == [7, 8]
    fresh = FakeSegments(tmp_path / "fresh", FakeClock(), stop_at=5)
    (tmp_path / "fresh").mkdir()
    chain(tmp_path / "fresh", fresh, fresh=True)
    assert [calls[0] for calls in fresh.calls] == [3, 5]


def test_a_segment_reads_its_quota_from_the_environment():
    assert segments.process_trials({}) is None
    assert segments.process_trials({segments.PROCESS_TRIALS: "20"}) == 20
    for bad in ("0", "-1", "x", "2.5"):
        with pytest.raises(ValueError, match=segments.PROCESS_TRIALS):
            segments.process_trials({segments.PROCESS_TRIALS: bad})


def test_every_segment_gets_the_chains_end_and_none_starts_without_time(tmp_path):
    clock = FakeClock()
    end = clock() + 44.0
    fake = FakeSegments(tmp_path, clock, seconds=20.0)
    chain(tmp_path, fake, time_limit=44.0)
    # At 40 s, 4 s are left: a new process would only load.
    assert fake.calls == [(3, end), (6, end)]
    assert segments.MIN_SEGMENT_SECONDS == 5.0


def test_a_failed_segment_ends_the_chain_with_its_status(tmp_path):
    fake = FakeSegments(tmp_path, FakeClock(), status=2)
    assert chain(tmp_path, fake) == 2
    assert len(fake.calls) == 1


def test_trials_are_counted_by_their_files(tmp_path):
    assert segments.trials_created(tmp_path / "missing") == 0
    (tmp_path / "trial_0000").mkdir()  # created but not yet written: not counted
    (tmp_path / "oracle.json").write_text("{}")
    assert segments.trials_created(tmp_path) == 0
    (tmp_path / "trial_0000" / "trial.json").write_text("{}")
    assert segments.trials_created(tmp_path) == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_trials_per_process_must_be_a_positive_int(tmp_path, bad):
    with pytest.raises(ValueError, match="trials_per_process"):
        chain(tmp_path, FakeSegments(tmp_path, FakeClock()), trials_per_process=bad)
