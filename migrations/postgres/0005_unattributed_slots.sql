-- Issue 11: no slot is absent from the history. When no node serves an
-- epoch's proposer duties any more, a slot without a block cannot be
-- blamed on anybody: it is stored as `unknown` with the reason and without
-- a validator (NULL), instead of being left out.
ALTER TABLE proposals ALTER COLUMN validator_index DROP NOT NULL;
