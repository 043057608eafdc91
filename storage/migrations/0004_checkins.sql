-- Check-ins (issue 7): one row per user and local day, written by checkins.CheckinStore.
-- The row makes a check-in durable: workers claim due rows with FOR UPDATE SKIP LOCKED, a
-- row stuck in 'sending' past its lease is claimed again, and a 'sent' row never is.
CREATE TABLE checkins (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         text        NOT NULL,
    -- The user's local day (in the scheduler's time zone) the check-in belongs to.
    day             date        NOT NULL,
    due_at          timestamptz NOT NULL,
    -- due_at at first, later than it while a failed attempt backs off.
    next_attempt_at timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    -- Attempts that ended (failed or lease expired); also fences a stale worker's writes.
    attempts        integer     NOT NULL DEFAULT 0,
    claimed_by      text,
    claimed_at      timestamptz,
    sent_at         timestamptz,
    last_error      text,
    -- What was (or is being) sent; kept so a retry sends the same draft.
    payload         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, day)
);
CREATE INDEX checkins_due_idx ON checkins (next_attempt_at) WHERE status = 'pending';
CREATE INDEX checkins_sending_idx ON checkins (claimed_at) WHERE status = 'sending';
