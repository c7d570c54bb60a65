"""The default thread count: the idle cores at the start of a run, shared by its processes."""

from __future__ import annotations

import pytest

from convnet.train import distributed as D


@pytest.mark.parametrize(
    "usable, world, idle, want",
    [
        (2, 1, 2.0, 2),  # a quiet 2-core machine: both cores, as before
        (2, 1, 1.1, 1),  # one competitor spinning: one thread, not two that wait on it
        (2, 1, 0.0, 1),  # all busy: still one thread
        (8, 1, 5.4, 5),
        (8, 2, 6.0, 3),  # two processes share the idle cores
        (8, 2, 16.0, 4),  # never more than the usable cores per process
        (1, 1, 4.0, 1),  # a taskset of one core
    ],
)
def test_default_threads_is_the_idle_cores_per_process(monkeypatch, usable, world, idle, want):
    monkeypatch.setattr(D, "usable_cores", lambda: usable)
    assert D.default_threads(world, idle=idle) == want


def test_idle_cores_is_the_idle_share_of_proc_stat_times_the_cores(monkeypatch):
    samples = iter([(100, 1000), (150, 1100)])  # 50 of 100 jiffies idle
    monkeypatch.setattr(D, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(D.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(D.time, "sleep", lambda s: None)
    assert D.idle_cores() == pytest.approx(2.0)


def test_idle_cores_falls_back_on_the_load_average(monkeypatch):
    monkeypatch.setattr(D, "_cpu_times", lambda: None)
    monkeypatch.setattr(D.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(D.os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert D.idle_cores() == pytest.approx(2.5)


def test_proc_stat_reading_counts_idle_and_iowait(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  10 20 30 400 50 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda p, *a, **k: real_open(stat if p == "/proc/stat" else p, *a, **k)
    )
    assert D._cpu_times() == (450, 10 + 20 + 30 + 400 + 50 + 6 + 7 + 8)
