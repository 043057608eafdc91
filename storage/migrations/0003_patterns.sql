-- Pattern analysis (issue 7, storage.patterns.PatternStore): what the owner's user_patterns
-- columns do not hold. completion_rate is the share of quests set that got done; the coaching
-- factors are the inputs of needs_coaching_probability, kept so the number can be explained.
ALTER TABLE user_patterns
    ADD COLUMN completion_rate  real    CHECK (completion_rate BETWEEN 0 AND 1),
    ADD COLUMN session_count    integer NOT NULL DEFAULT 0,
    ADD COLUMN coaching_factors jsonb   NOT NULL DEFAULT '{}'::jsonb;
