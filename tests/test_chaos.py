"""The chaos run's short form (bench/chaos.py): mixed traffic through the real bot, its worker process
and a real SQLite file while the worker is killed and stalled, the database locked by another process
and Discord's calls fail. It asserts the run's targets, which are counts, not timings."""

from __future__ import annotations

import pytest

from bench.chaos import run

pytestmark = pytest.mark.slow


async def test_the_short_chaos_run_loses_nothing_and_leaves_nobody_waiting(tiny_models, tmp_path):
    report = await run("short", 1, tiny_models, tmp_path)
    print(report.render())
    assert set(report.faults) == {
        "kill_worker",
        "stall_worker",
        "lock_database",
        "discord_5xx",
        "discord_unknown_interaction",
        "discord_expired_interaction",
    }
    assert report.sent >= 30 and report.outcomes["answered"] > 0
    assert report.acknowledged_tags > 0 and report.lost_tags == []
    assert report.outcomes["stuck"] == 0, report.examples
    assert report.outcomes["silent"] == 0, report.examples  # every member answered or told (or Discord refused)
    assert report.pings == 0
    assert report.errors_logged == 0 and report.discord_misuse == 0
    assert report.recovery_seconds is not None  # every kind of request answered normally after the last fault
