//! `refer <role> reads`: the read log of sealed items (docs/privacy.md):
//! who opened which item when, never what it holds. An admin sees every
//! read; a partner its own and the reads of its items by others.

use crate::output::{table, time};
use refer_proto::common::v1::SealedRead;

/// Every page of `ListSealedReads` from `$client`, oldest first.
macro_rules! all_reads {
    ($client:expr, $settings:expr, $fail:expr) => {{
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = $client
                .list_sealed_reads($crate::client::request(
                    $settings,
                    refer_proto::common::v1::ListSealedReadsRequest {
                        page_size: 500,
                        page_token: token,
                    },
                )?)
                .await
                .map_err($fail)?
                .into_inner();
            all.extend(page.reads);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        all
    }};
}
pub(crate) use all_reads;

/// One row per read: when, who (role, organisation), which item, whose.
pub fn show(json: bool, reads: &[SealedRead]) {
    let rows = reads
        .iter()
        .map(|r| {
            vec![
                time(r.at_ms),
                r.reader_role.clone(),
                r.reader_org_id.clone(),
                r.kind.clone(),
                r.of_id.clone(),
                r.owner_org_id.clone(),
                r.item.clone(),
            ]
        })
        .collect();
    table(
        json,
        &["when", "reader", "reader_org", "kind", "of", "owner_org", "item"],
        rows,
    );
}
