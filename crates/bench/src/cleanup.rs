//! After a run against services the bench did not start (`--connect`):
//! nothing it made up may ever take part in a real referral. Its partners'
//! providers are suspended, its business's donations withdrawn and its
//! agency's open needs cancelled (those of earlier runs too: they share the
//! bench's organisations).

use crate::cluster::{self, Cluster, PROVIDER_ORGS};
use refer_client::tokens::authed;
use refer_proto::capacity::v1 as cap;
use refer_proto::donations::v1 as don;
use refer_proto::intake::v1 as intake;

/// What was taken out of service: providers, donations, needs.
pub struct Cleaned {
    pub providers: usize,
    pub donations: usize,
    pub needs: usize,
}

pub async fn clean_up(cluster: &Cluster) -> anyhow::Result<Cleaned> {
    let tag = cluster::run_tag();
    let mut cleaned = Cleaned {
        providers: 0,
        donations: 0,
        needs: 0,
    };
    // Providers first, so nothing new is referred while the rest goes.
    for org in 0..PROVIDER_ORGS {
        let token = cluster::provider_token(org);
        let mut client = cluster.capacity.clone();
        let mut page_token = String::new();
        loop {
            let page = client
                .list_providers(authed(
                    &token,
                    cap::ListProvidersRequest {
                        page_size: 500,
                        page_token,
                    },
                ))
                .await?
                .into_inner();
            for provider in page.providers.iter().filter(|p| !p.suspended) {
                let request = cap::SuspendProviderRequest {
                    idempotency_key: format!("bench-{tag}suspend-{}", provider.provider_id),
                    provider_id: provider.provider_id.clone(),
                };
                client.suspend_provider(authed(&token, request)).await?;
                cleaned.providers += 1;
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    let mut client = cluster.donations.clone();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_donations(authed(
                &cluster::business(),
                don::ListDonationsRequest {
                    page_size: 500,
                    page_token,
                },
            ))
            .await?
            .into_inner();
        for donation in page.donations.iter().filter(|d| !d.withdrawn) {
            let request = don::WithdrawDonationRequest {
                idempotency_key: format!("bench-{tag}withdraw-{}", donation.donation_id),
                donation_id: donation.donation_id.clone(),
            };
            client.withdraw_donation(authed(&cluster::business(), request)).await?;
            cleaned.donations += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut client = cluster.intake.clone();
    let mut page_token = String::new();
    let open = [
        intake::NeedStatus::Requested,
        intake::NeedStatus::Proposed,
        intake::NeedStatus::Declined,
        intake::NeedStatus::Expired,
        intake::NeedStatus::Waitlisted,
    ]
    .map(|s| s as i32);
    loop {
        let page = client
            .list_placements(authed(
                &cluster::intake(),
                intake::ListPlacementsRequest {
                    page_size: 500,
                    page_token,
                },
            ))
            .await?
            .into_inner();
        for need in page.placements.iter().flat_map(|p| &p.needs) {
            if !open.contains(&need.status) {
                continue;
            }
            let request = intake::CancelNeedRequest {
                idempotency_key: format!("bench-{tag}cancel-{}", need.need_id),
                need_id: need.need_id.clone(),
            };
            // A need answered meanwhile cannot be cancelled; that is fine.
            if client.cancel_need(authed(&cluster::intake(), request)).await.is_ok() {
                cleaned.needs += 1;
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok(cleaned)
}
