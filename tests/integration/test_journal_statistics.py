"""The frame journal's planner statistics against a real (embedded) PostgreSQL.

ANALYZE (autovacuum's, while the journal grows) computes statistics only for the columns the
journal's readers filter on, and their plans still find a session's rows by the primary key
with a fair estimate of how many there are.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from experiments.stored import FINAL_TRANSCRIPT, FINAL_TRANSCRIPTS_SQL, JOINED
from storage.cli import TIMELINE_SQL
from storage.database import Database
from storage.journal import COLUMNS

SESSIONS = 50
EVENTS_PER_SESSION = 400
KINDS = (FINAL_TRANSCRIPT, "InterimTranscriptionFrame", "LLMTextFrame", "BotSpeakingFrame")


async def fill_journal(database: Database) -> list[uuid.UUID]:
    """Journals of `SESSIONS` sessions, by COPY as the journal's writer writes them, analyzed."""
    sessions = [uuid.uuid4() for _ in range(SESSIONS)]
    now = datetime.now(UTC)
    records = [
        (
            session,
            seq,
            time.monotonic_ns(),
            now,
            KINDS[seq % len(KINDS)],
            "downstream",
            f"Processor#{seq % 7}",
            {"text": f"what the person said, part {seq}", "confidence": 0.9},
        )
        for session in sessions
        for seq in range(EVENTS_PER_SESSION)
    ]
    await database.pool.copy_records_to_table("frame_journal", records=records, columns=COLUMNS)
    await database.pool.execute("ANALYZE frame_journal")
    return sessions


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan node and every node under it."""
    nodes = [node]
    for child in node.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


async def test_analyze_keeps_statistics_only_for_the_columns_readers_filter_on(
    database: Database,
) -> None:
    await fill_journal(database)

    analyzed = await database.pool.fetch(
        "SELECT attname FROM pg_stats WHERE tablename = 'frame_journal'"
    )

    assert {row["attname"] for row in analyzed} == {"session_id", "kind"}


async def test_a_sessions_rows_are_found_by_the_primary_key_with_a_fair_estimate(
    database: Database,
) -> None:
    sessions = await fill_journal(database)

    for query, args in (
        (TIMELINE_SQL, (sessions[7],)),
        (FINAL_TRANSCRIPTS_SQL, (sessions[7], FINAL_TRANSCRIPT, JOINED)),
    ):
        explained = await database.pool.fetchval("EXPLAIN (FORMAT JSON) " + query, *args)
        nodes = plan_nodes(explained[0]["Plan"])  # the pool decodes json
        by_key = [node for node in nodes if node.get("Index Name") == "frame_journal_pkey"]
        assert by_key, f"not by the primary key: {explained}"
        # Without statistics on session_id the planner guesses 0.5% of the table (100 rows).
        assert EVENTS_PER_SESSION / 2 <= by_key[0]["Plan Rows"] <= EVENTS_PER_SESSION * 2
