-- One row a bot session: who, which room, when, why it ended, and which engine ran
-- each stage (e.g. {"stt": "deepgram", "llm": "openai", "tts": "openai"}).
CREATE TABLE sessions (
    id          uuid        PRIMARY KEY,
    user_id     text        NOT NULL,
    room        text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    end_reason  text,
    engines     jsonb       NOT NULL DEFAULT '{}'::jsonb
);

-- Active sessions (counted by /health and the API) are those not yet ended.
CREATE INDEX sessions_active_idx ON sessions (started_at) WHERE ended_at IS NULL;
CREATE INDEX sessions_user_idx ON sessions (user_id, started_at DESC);
