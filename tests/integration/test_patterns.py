"""Pattern analysis over synthetic 14-day histories in the real (embedded) PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from datetime import date, datetime, time
from pathlib import Path

import pytest

from storage.cli import analyze_patterns
from storage.database import Database
from storage.patterns import group_titles, normalize_title, typical_time_of_day
from tests.support.histories import STEADY_MAIN, USERS, GeneratedHistory

ROOT = Path(__file__).resolve().parents[2]


def minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def test_two_phrasings_of_a_quest_are_one_group() -> None:
    groups = group_titles(
        ["ship onboarding", "Ship the onboarding flow!", "ship the pricing page", "ship onboarding"]
    )
    assert groups == [{"ship onboarding", "Ship the onboarding flow!"}, {"ship the pricing page"}]
    assert normalize_title("Um, actually shipping the Onboarding flow") == normalize_title(
        "ship onboarding flows"
    )


def test_typical_time_of_day_wraps_around_midnight() -> None:
    day = date(2026, 3, 1)
    late = [datetime.combine(day, time(23, 50)), datetime.combine(day, time(0, 10))]
    assert typical_time_of_day(late) == time(0, 0)
    assert typical_time_of_day([]) is None


async def test_steady_user_patterns(
    database: Database, histories: dict[str, GeneratedHistory]
) -> None:
    patterns = await database.patterns.analyze("steady")

    usual = patterns.common_main_quests[0]
    print(patterns)
    # All three phrasings of the recurring quest count as one, on most of the 14 days.
    assert set(usual.variants) == set(STEADY_MAIN)
    assert usual.days >= 10 and usual.count == usual.days
    assert patterns.preferred_session_time is not None
    assert abs(minutes(patterns.preferred_session_time) - 8 * 60) <= 10
    assert patterns.session_count == len(histories["steady"].sessions)
    assert patterns.average_quests_per_day == pytest.approx(3.0)
    assert patterns.completion_rate is not None and 0.3 < patterns.completion_rate < 0.9
    assert [t.phrase for t in patterns.speaking_triggers] == ["my main quest"]
    assert await database.patterns.get("steady") == patterns


async def test_coaching_ranks_who_needs_it(
    database: Database, histories: dict[str, GeneratedHistory]
) -> None:
    probability = {}
    for user in USERS:
        patterns = await database.patterns.analyze(user)
        assert patterns.needs_coaching_probability is not None
        probability[user] = patterns.needs_coaching_probability
        assert 0 <= probability[user] <= 1
    assert probability["nocrit"] > probability["steady"]
    assert probability["scattered"] > probability["steady"]
    nocrit = await database.patterns.get("nocrit")
    assert nocrit is not None and nocrit.coaching_factors["no_success_criteria"] == 1.0


async def test_scattered_user_triggers_and_groups(
    database: Database, histories: dict[str, GeneratedHistory]
) -> None:
    patterns = await database.patterns.analyze("scattered")
    triggers = {t.phrase: t for t in patterns.speaking_triggers}
    assert triggers["actually"].kind == "correction" and triggers["actually"].count >= 3
    assert triggers["the main thing"].kind == "priority"
    assert "okay the main" not in triggers and "actually make it" not in triggers
    # A different quest most days: no group stands out.
    assert max(g.days for g in patterns.common_main_quests) <= 2
    assert patterns.preferred_session_time is not None


async def test_a_user_without_history(database: Database) -> None:
    patterns = await database.patterns.analyze("nobody")
    assert patterns.session_count == 0
    assert patterns.common_main_quests == [] and patterns.speaking_triggers == []
    assert patterns.needs_coaching_probability is None
    assert patterns.preferred_session_time is None
    assert await database.patterns.get("nobody") == patterns


async def test_analyze_all_reports_progress(
    database: Database, histories: dict[str, GeneratedHistory]
) -> None:
    seen: list[tuple[int, int]] = []
    users = await database.patterns.analyze_all(progress=lambda d, t, _u: seen.append((d, t)))
    assert sorted(users) == sorted(USERS)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    count = await database.pool.fetchval("SELECT count(*) FROM user_patterns")
    assert count == 3

    out, err = io.StringIO(), io.StringIO()
    assert await analyze_patterns(database.patterns, out, err=err) == 0
    assert "3/3" in err.getvalue()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].startswith("user")
    assert any(line.startswith("steady") and "onboarding" in line for line in lines)


async def test_cli_patterns_all_writes_rows(
    database_dsn: str, database: Database, histories: dict[str, GeneratedHistory]
) -> None:
    env = {**os.environ, "DATABASE_URL": database_dsn}
    for args in (["--all"], ["--user", "steady"]):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "storage",
            "patterns",
            *args,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()
        print(stdout.decode(), stderr.decode())
        assert "steady" in stdout.decode()
        if args == ["--all"]:
            assert "3/3" in stderr.decode()
            rows = await database.pool.fetch(
                "SELECT user_id, needs_coaching_probability, completion_rate FROM user_patterns"
            )
            assert sorted(r["user_id"] for r in rows) == sorted(USERS)
            assert all(r["needs_coaching_probability"] is not None for r in rows)
