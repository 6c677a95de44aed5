//! IO that reads a node's operation pools for the double-signing watch:
//! the attestation pool sliced by slot and committee, and the attester and
//! proposer slashings waiting for a block.
//!
//! Owns: which pool routes are asked and how "not served" is told from a
//! failure. Must not: judge (the comparison is `analysis::doublesign`).

use crate::beacon::{BeaconError, BeaconPool};
use crate::chain::{Attestation, AttesterSlashing, ProposerSlashing, Slot};

/// What a node answered about one of its pools.
#[derive(Debug)]
pub enum PoolRead<T> {
    Served(T),
    /// The node answered 404 on the route (v2 and v1): it keeps no such
    /// pool, or does not expose it. Not an error.
    NotServed,
}

/// The aggregates of the attestation pool for each `(slot, committee)` of
/// `queries` (`None`: the whole slot), in the order asked. One request per
/// query; a route not served ends the read at once.
pub async fn pool_votes(
    pool: &BeaconPool,
    queries: &[(Slot, Option<u64>)],
) -> Result<PoolRead<Vec<Attestation>>, BeaconError> {
    let mut out = Vec::new();
    for &(slot, committee) in queries {
        let answer = pool
            .call("/eth/v2/beacon/pool/attestations", |c| async move {
                c.pool_attestations_at(Some(slot), committee).await
            })
            .await?;
        match answer {
            Some((_, atts)) => out.extend(atts),
            None => return Ok(PoolRead::NotServed),
        }
    }
    Ok(PoolRead::Served(out))
}

/// The attester and proposer slashings of the pools. A route that is not
/// served reads as empty; `NotServed` only when neither is.
pub async fn pool_slashings(
    pool: &BeaconPool,
) -> Result<PoolRead<(Vec<AttesterSlashing>, Vec<ProposerSlashing>)>, BeaconError> {
    let attester = pool
        .call("/eth/v2/beacon/pool/attester_slashings", |c| async move {
            c.pool_attester_slashings().await
        })
        .await?;
    let proposer = pool
        .call("/eth/v1/beacon/pool/proposer_slashings", |c| async move {
            c.pool_proposer_slashings().await
        })
        .await?;
    if attester.is_none() && proposer.is_none() {
        return Ok(PoolRead::NotServed);
    }
    Ok(PoolRead::Served((
        attester.unwrap_or_default(),
        proposer.unwrap_or_default(),
    )))
}
