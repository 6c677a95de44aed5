-- Issue 14: the same tables and meaning as migrations/postgres/0004_rewards.sql
-- (read it for the columns). NULL is unknown, never 0.
CREATE TABLE rewards (
    epoch                   INTEGER NOT NULL CHECK (epoch >= 0),
    validator_index         INTEGER NOT NULL CHECK (validator_index >= 0),
    attestation_reward_gwei INTEGER,
    attestation_ideal_gwei  INTEGER,
    sync_reward_gwei        INTEGER,
    proposer_reward_gwei    INTEGER CHECK (proposer_reward_gwei >= 0),
    missed_gwei             INTEGER,
    estimated               INTEGER NOT NULL CHECK (estimated IN (0, 1)),
    PRIMARY KEY (epoch, validator_index)
) STRICT, WITHOUT ROWID;
CREATE INDEX rewards_validator_epoch ON rewards (validator_index, epoch);

CREATE TABLE network_epochs (
    epoch       INTEGER PRIMARY KEY CHECK (epoch >= 0),
    duties      INTEGER NOT NULL CHECK (duties >= 0),
    included    INTEGER NOT NULL CHECK (included >= 0 AND included <= duties),
    empty_slots INTEGER NOT NULL CHECK (empty_slots >= 0),
    slots       INTEGER NOT NULL CHECK (slots >= empty_slots)
) STRICT, WITHOUT ROWID;
