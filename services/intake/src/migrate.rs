//! Migration of the records an older intake kept in one sled tree
//! (`intake-records`: placement, agency, case reference in clear, needs) to
//! sealed placement files on the stream. Run at start; each record is sealed
//! and recorded under a key of its own (a rerun after a crash records
//! nothing twice), then the tree, the last clear copy, is dropped.

use crate::IntakeService;
use refer_domain::ids::{GroupId, NeedId, OrgId, PlacementId};
use refer_domain::kinds::NeedKind;
use refer_domain::placement::{Placement, PlacementCommand, PlacementFile};
use refer_domain::{CommandMeta, IdempotencyKey, Timestamp};
use refer_service::sealing::{self, purpose};
use serde::{Deserialize, Serialize};

/// The tree the records lived in.
pub const TREE: &str = "intake-records";

/// A placement record as versions before sealed files wrote it (under `p/<id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyRecord {
    pub placement: PlacementId,
    pub agency: OrgId,
    pub case_reference: String,
    pub group: Option<GroupId>,
    pub needs: Vec<(NeedId, NeedKind)>,
    pub requested_at: Timestamp,
}

/// Moves every legacy record into a sealed placement file; returns how many.
pub async fn sled_records(service: &IntakeService) -> anyhow::Result<usize> {
    let db = service.shell.store.local().db();
    if !db.tree_names().iter().any(|name| name.as_ref() == TREE.as_bytes()) {
        return Ok(0);
    }
    let tree = db.open_tree(TREE)?;
    let mut moved = 0;
    for entry in tree.scan_prefix(b"p/") {
        let (_, value) = entry?;
        let Ok(record) = postcard::from_bytes::<LegacyRecord>(&value) else {
            tracing::error!("an intake record that does not decode was skipped in the migration");
            continue;
        };
        let placement = record.placement;
        let case_reference = match record.case_reference.as_str() {
            "" => None,
            case => Some(
                sealing::seal(&service.shell.vault, "case", case, &purpose::case_reference(placement))
                    .await
                    .map_err(|e| anyhow::anyhow!("sealing a migrated case reference: {}", e.message()))?,
            ),
        };
        let file = PlacementFile {
            agency: record.agency,
            group: record.group,
            needs: record.needs,
            requested_at: record.requested_at,
            case_reference: case_reference.clone(),
        };
        let meta = CommandMeta {
            occurred_at: service.shell.clock.now(),
            correlation_id: refer_domain::ids::CorrelationId::from_uuid(uuid::Uuid::new_v4()),
            causation_id: None,
            idempotency_key: Some(IdempotencyKey::new("migrated").expect("valid")),
        };
        let done = service
            .shell
            .store
            .execute::<Placement>(placement.as_uuid(), &PlacementCommand::Record(file), &meta, None)
            .await;
        sealing::erase_if_unwritten(&service.shell.vault, case_reference.as_ref(), &done)
            .await
            .map_err(|e| anyhow::anyhow!("erasing a stray key: {}", e.message()))?;
        match done {
            Ok(_) | Err(refer_eventstore::StoreError::Domain(refer_domain::DomainError::AlreadyRegistered)) => {
                moved += 1
            }
            Err(err) => return Err(anyhow::anyhow!("migrating an intake record: {err}")),
        }
    }
    drop(tree);
    db.drop_tree(TREE)?;
    db.flush_async().await?;
    tracing::info!(
        moved,
        "intake records migrated to sealed placement files; the sled tree is dropped"
    );
    Ok(moved)
}

/// Writes records as the old intake did (for the migration's test).
pub fn write_legacy(db: &sled::Db, records: &[LegacyRecord]) -> sled::Result<()> {
    let tree = db.open_tree(TREE)?;
    for record in records {
        let key = format!("p/{}", record.placement);
        tree.insert(key, postcard::to_stdvec(record).expect("records encode"))?;
    }
    tree.flush()?;
    Ok(())
}
