-- Alerting: incidents, the notifications they caused, and the outbox of
-- deliveries (one per notification and channel) with every attempt.
--
-- Times are BIGINT milliseconds since the Unix epoch, the same in both
-- backends, so the store code and its tests are shared.
--
-- An incident's id is text chosen by the engine: `rule/subject/opened_ms`
-- for conditions, `rule/subject/epoch` for events, so replaying an epoch
-- cannot create a second event incident (the primary key refuses it).

CREATE TABLE incidents (
    id                  TEXT PRIMARY KEY,
    rule                TEXT    NOT NULL,
    -- A group name, a node name, 'network' or 'monitor'.
    subject             TEXT    NOT NULL,
    severity            TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    -- Events (a missed proposal) are notified once and closed at once.
    is_event            BOOLEAN NOT NULL,
    -- JSON array of the validator indices concerned, ascending.
    validators          TEXT    NOT NULL,
    epoch               BIGINT CHECK (epoch >= 0),
    summary             TEXT    NOT NULL,
    opened_at_ms        BIGINT  NOT NULL,
    last_notified_at_ms BIGINT  NOT NULL,
    resolved_at_ms      BIGINT,
    resolution          TEXT
);

-- At most one open incident per rule and subject: the engine's invariant,
-- enforced so that two writers (or a restart racing itself) cannot page
-- twice for the same cause.
CREATE UNIQUE INDEX incidents_one_open ON incidents (rule, subject)
    WHERE resolved_at_ms IS NULL;
CREATE INDEX incidents_opened ON incidents (opened_at_ms);

CREATE TABLE notifications (
    id            BIGSERIAL PRIMARY KEY,
    incident_id   TEXT   NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    kind          TEXT   NOT NULL
        CHECK (kind IN ('firing', 'update', 'reminder', 'resolved', 'event')),
    created_at_ms BIGINT NOT NULL,
    -- The rendered message (JSON), sent as is by every channel.
    payload       TEXT   NOT NULL
);
CREATE INDEX notifications_incident ON notifications (incident_id);

CREATE TABLE deliveries (
    id                 BIGSERIAL PRIMARY KEY,
    notification_id    BIGINT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel            TEXT   NOT NULL,
    status             TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'abandoned')),
    attempts           BIGINT NOT NULL CHECK (attempts >= 0),
    next_attempt_at_ms BIGINT NOT NULL,
    last_error         TEXT,
    finished_at_ms     BIGINT,
    UNIQUE (notification_id, channel)
);
-- The outbox query: a channel's pending deliveries, oldest first.
CREATE INDEX deliveries_pending ON deliveries (channel, id) WHERE status = 'pending';

CREATE TABLE delivery_attempts (
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt     BIGINT NOT NULL CHECK (attempt >= 1),
    at_ms       BIGINT NOT NULL,
    ok          BOOLEAN NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
