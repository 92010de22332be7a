//! Intake's own records: which placements an agency requested, under which
//! case reference. This is the one piece of Refer's local state that is not
//! rebuilt from the stream, on purpose: the agency's case reference must never
//! travel on the bus. It is flushed to disk before a request is answered; if
//! it is lost, every need survives on the stream, but the link from the
//! agency's case file to its placements must come from a backup.

use refer_domain::ids::{GroupId, NeedId, OrgId, PlacementId};
use refer_domain::kinds::NeedKind;
use refer_domain::request::Cohesion;
use refer_domain::{IdempotencyKey, Timestamp};
use refer_eventstore::GroupFlush;
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementRecord {
    pub placement: PlacementId,
    pub agency: OrgId,
    pub case_reference: String,
    pub group: Option<GroupId>,
    pub needs: Vec<(NeedId, NeedKind)>,
    pub requested_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub group: GroupId,
    pub agency: OrgId,
    pub cohesion: Cohesion,
    pub placements: Vec<PlacementId>,
}

/// What one idempotency key of an agency was used for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Claim {
    Placement(PlacementRecord),
    Group(GroupRecord, Vec<PlacementRecord>),
}

#[derive(Clone)]
pub struct Records {
    tree: sled::Tree,
    /// Requests answered at the same moment share one flush.
    durable: GroupFlush,
}

fn placement_key(id: PlacementId) -> Vec<u8> {
    format!("p/{id}").into_bytes()
}

fn claim_key(agency: OrgId, key: &IdempotencyKey) -> Vec<u8> {
    format!("k/{agency}/{}", key.as_str()).into_bytes()
}

/// Newest first when scanned in reverse.
fn listing_key(agency: OrgId, at: Timestamp, id: PlacementId) -> Vec<u8> {
    let mut k = format!("a/{agency}/").into_bytes();
    k.extend_from_slice(&at.millis().to_be_bytes());
    k.extend_from_slice(id.as_uuid().as_bytes());
    k
}

impl Records {
    pub fn open(db: &sled::Db) -> sled::Result<Self> {
        let tree = db.open_tree("intake-records")?;
        Ok(Self {
            durable: GroupFlush::new(tree.clone()),
            tree,
        })
    }

    /// Stores a new placement (or group) under the agency's idempotency key,
    /// unless that key was used before: then the earlier claim is returned,
    /// so a retried request names the same people and needs. The claim and
    /// its placement records are written in one transaction, so no crash
    /// leaves a claim whose placements cannot be looked up.
    pub async fn claim(&self, agency: OrgId, key: &IdempotencyKey, claim: Claim) -> sled::Result<Claim> {
        let claim_key = claim_key(agency, key);
        let bytes = postcard::to_stdvec(&claim).expect("records encode");
        let people: Vec<&PlacementRecord> = match &claim {
            Claim::Placement(p) => vec![p],
            Claim::Group(_, people) => people.iter().collect(),
        };
        let records: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = people
            .into_iter()
            .map(|p| {
                (
                    placement_key(p.placement),
                    postcard::to_stdvec(p).expect("records encode"),
                    listing_key(p.agency, p.requested_at, p.placement),
                )
            })
            .collect();
        let earlier = self
            .tree
            .transaction(|tx| {
                if let Some(current) = tx.get(&claim_key)? {
                    return Ok(Some(current));
                }
                tx.insert(claim_key.as_slice(), bytes.as_slice())?;
                for (placement, record, listing) in &records {
                    tx.insert(placement.as_slice(), record.as_slice())?;
                    tx.insert(listing.as_slice(), &[] as &[u8])?;
                }
                Ok(None)
            })
            .map_err(|err: TransactionError<()>| match err {
                TransactionError::Storage(err) => err,
                TransactionError::Abort(()) => unreachable!("the transaction never aborts"),
            })?;
        // A retry may arrive while the first request still waits for its
        // flush: it too is answered only once the claim is on disk.
        self.durable.flush().await?;
        Ok(match earlier {
            Some(current) => postcard::from_bytes(&current).expect("a claim this service wrote"),
            None => claim,
        })
    }

    pub fn placement(&self, id: PlacementId) -> sled::Result<Option<PlacementRecord>> {
        Ok(self
            .tree
            .get(placement_key(id))?
            .and_then(|v| postcard::from_bytes(&v).ok()))
    }

    /// The agency's placements, newest first, starting after `after` (a listing key).
    pub fn list(
        &self,
        agency: OrgId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> sled::Result<Vec<(Vec<u8>, PlacementRecord)>> {
        let prefix = format!("a/{agency}/").into_bytes();
        let mut end = prefix.clone();
        *end.last_mut().expect("non-empty") += 1;
        let upper = match after {
            Some(a) if a.starts_with(&prefix) => a.to_vec(),
            _ => end,
        };
        let mut out = Vec::new();
        for entry in self.tree.range(prefix..upper).rev() {
            let (k, _) = entry?;
            let id = uuid::Uuid::from_slice(&k[k.len() - 16..]).expect("listing keys end with an id");
            if let Some(record) = self.placement(PlacementId::from_uuid(id))? {
                out.push((k.to_vec(), record));
            }
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_racing_with_one_key_get_one_placement_and_the_same_answer() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let records = Records::open(&db).unwrap();
        let agency = OrgId::from_u128(1);
        let key = IdempotencyKey::new("night-1").unwrap();
        let tries = (0..8u128).map(|i| {
            let (records, key) = (records.clone(), key.clone());
            let record = PlacementRecord {
                placement: PlacementId::from_u128(i),
                agency,
                case_reference: format!("case-{i}"),
                group: None,
                needs: vec![],
                requested_at: Timestamp(i as i64),
            };
            tokio::spawn(async move { records.claim(agency, &key, Claim::Placement(record)).await })
        });
        let answers: Vec<Claim> = futures::future::join_all(tries)
            .await
            .into_iter()
            .map(|answer| answer.unwrap().unwrap())
            .collect();
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        let Claim::Placement(winner) = &answers[0] else {
            panic!("a placement was claimed")
        };
        let listed = records.list(agency, None, 10).unwrap();
        assert_eq!(listed.len(), 1, "one placement stored");
        assert_eq!(&listed[0].1, winner);
        assert_eq!(records.placement(winner.placement).unwrap().as_ref(), Some(winner));
    }
}
