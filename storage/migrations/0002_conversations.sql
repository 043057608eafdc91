-- The owner's schema (DESIGN.md §4) plus the frame journal, current quests and UI
-- interactions. Free-form structures are jsonb; scores are real; times are timestamptz.

-- What ran in a session's pipeline (services, models, voices, params), as the bot built it.
ALTER TABLE sessions ADD COLUMN pipeline jsonb NOT NULL DEFAULT '{}'::jsonb;

-- One row a session: what was said, what the coach answered, and how it went.
CREATE TABLE conversations (
    session_id               uuid        PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    user_id                  text        NOT NULL,
    "timestamp"              timestamptz NOT NULL DEFAULT now(),
    audio_url                text,
    transcript               text,
    ai_response              text,
    quests_created           integer     NOT NULL DEFAULT 0,
    quest_refinements        integer     NOT NULL DEFAULT 0,
    emotional_journey        jsonb,
    speaking_pace            real,
    clarity_score            real,
    correction_count         integer     NOT NULL DEFAULT 0,
    main_quest_identified    boolean     NOT NULL DEFAULT false,
    success_criteria_defined boolean     NOT NULL DEFAULT false,
    duration_s               real,
    user_audio_url           text,
    bot_audio_url            text,
    turn_count               integer,
    pipeline                 jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX conversations_user_idx ON conversations (user_id, "timestamp" DESC);

-- The current quests of each user; every change is also a row of quest_history.
CREATE TABLE quests (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text        NOT NULL,
    title            text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('main', 'side')),
    status           text        NOT NULL DEFAULT 'active',
    success_criteria jsonb       NOT NULL DEFAULT '[]'::jsonb,
    version          integer     NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quests_user_idx ON quests (user_id, status);
-- A person has at most one main quest at a time.
CREATE UNIQUE INDEX quests_one_active_main_idx ON quests (user_id)
    WHERE kind = 'main' AND status = 'active';

-- Every version of every quest. No foreign key to quests: history outlives deleted quests.
CREATE TABLE quest_history (
    quest_id              uuid        NOT NULL,
    version               integer     NOT NULL,
    title                 text        NOT NULL,
    changes_from_previous jsonb,
    trigger_phrase        text,
    confidence            real,
    "timestamp"           timestamptz NOT NULL DEFAULT now(),
    user_id               text        NOT NULL,
    session_id            uuid        REFERENCES sessions (id) ON DELETE SET NULL,
    source                text,
    kind                  text,
    status                text,
    PRIMARY KEY (quest_id, version)
);
CREATE INDEX quest_history_user_idx ON quest_history (user_id, "timestamp" DESC);
CREATE INDEX quest_history_session_idx ON quest_history (session_id);

-- What KANE has learned about each user across sessions.
CREATE TABLE user_patterns (
    user_id                    text        PRIMARY KEY,
    common_main_quests         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    speaking_triggers          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    average_quests_per_day     real,
    preferred_session_time     time,
    needs_coaching_probability real CHECK (needs_coaching_probability BETWEEN 0 AND 1),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);

-- What the person did on the phone during a session (taps, edits, confirmations).
CREATE TABLE ui_interactions (
    session_id uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq        bigint      NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    kind       text        NOT NULL,
    payload    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (session_id, seq)
);

-- Every frame the tap saw except raw audio, written by storage.journal.JournalWriter with
-- COPY. Deliberately no foreign key and no index beyond the primary key: ingest speed
-- matters more than anything else here, and events may arrive before the session row.
CREATE TABLE frame_journal (
    session_id uuid        NOT NULL,
    seq        bigint      NOT NULL,
    mono_ns    bigint      NOT NULL,
    wall_time  timestamptz NOT NULL,
    kind       text        NOT NULL,
    direction  text        NOT NULL,
    source     text        NOT NULL,
    payload    jsonb       NOT NULL,
    PRIMARY KEY (session_id, seq)
);
