-- Issue 14: rewards and penalties per watched validator and epoch (Gwei,
-- signed: a penalty is negative), from the nodes' rewards routes, and the
-- network's baseline per epoch counted from canonical blocks.
--
-- NULL means unknown (the node did not serve that route), never 0.
-- `missed_gwei` = ideal - actual attestation reward, plus the estimated
-- reward of a missed proposal; `estimated` says an estimate is in it.
CREATE TABLE rewards (
    epoch                   BIGINT  NOT NULL CHECK (epoch >= 0),
    validator_index         BIGINT  NOT NULL CHECK (validator_index >= 0),
    attestation_reward_gwei BIGINT,
    attestation_ideal_gwei  BIGINT,
    sync_reward_gwei        BIGINT,
    proposer_reward_gwei    BIGINT  CHECK (proposer_reward_gwei >= 0),
    missed_gwei             BIGINT,
    estimated               BOOLEAN NOT NULL,
    PRIMARY KEY (epoch, validator_index)
);
CREATE INDEX rewards_validator_epoch ON rewards (validator_index, epoch);

-- Whole-network attestation duties of the epoch and how many a canonical
-- block included (first inclusion), and the empty slots.
CREATE TABLE network_epochs (
    epoch       BIGINT PRIMARY KEY CHECK (epoch >= 0),
    duties      BIGINT NOT NULL CHECK (duties >= 0),
    included    BIGINT NOT NULL CHECK (included >= 0 AND included <= duties),
    empty_slots BIGINT NOT NULL CHECK (empty_slots >= 0),
    slots       BIGINT NOT NULL CHECK (slots >= empty_slots)
);
