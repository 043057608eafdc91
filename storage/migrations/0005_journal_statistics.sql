-- The frame journal's planner statistics: only for the columns its readers filter on.
-- ANALYZE sorts a sample of every column that has statistics, and on the journal (the JSON
-- payload, the times, the sources) it took 100-380 ms of a core (23,000 rows to 1M); while a
-- young journal grows, autovacuum runs it about once a minute, on the cores the sessions run
-- on. The readers (storage/cli.py TIMELINE_SQL, experiments/stored.py FINAL_TRANSCRIPTS_SQL)
-- filter on session_id, the primary key's prefix, and on kind; no plan uses the others'
-- statistics. A target of 10 samples 3,000 rows: enough for the sessions' count and the few
-- dozen kinds. ANALYZE of the same journals: 7-14 ms.
ALTER TABLE frame_journal
    ALTER COLUMN session_id SET STATISTICS 10,
    ALTER COLUMN kind SET STATISTICS 10,
    ALTER COLUMN seq SET STATISTICS 0,
    ALTER COLUMN mono_ns SET STATISTICS 0,
    ALTER COLUMN wall_time SET STATISTICS 0,
    ALTER COLUMN direction SET STATISTICS 0,
    ALTER COLUMN source SET STATISTICS 0,
    ALTER COLUMN payload SET STATISTICS 0;
