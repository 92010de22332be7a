//! The matcher's status: counts only, for coalition admins only.

use refer_proto::matcher::v1::matcher_client::MatcherClient;
use refer_proto::matcher::v1::GetStatusRequest;
use refer_service::testing::{authed, refused};
use refer_tests::*;
use tonic::Code;

#[tokio::test]
async fn only_admins_read_the_matcher_status() {
    let c = Coalition::start(1, 1).await;
    let mut matcher = MatcherClient::new(c.channel(3));
    let status = matcher
        .get_status(authed(ADMIN, GetStatusRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            status.providers,
            status.unplaced_needs,
            status.accepted_needs,
            status.pending_referrals
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        refused(matcher.get_status(tonic::Request::new(GetStatusRequest {})).await),
        Code::Unauthenticated
    );
    assert_eq!(
        refused(matcher.get_status(authed("forged", GetStatusRequest {})).await),
        Code::Unauthenticated
    );
    for token in [INTAKE.to_string(), provider_token(0), business_token(0)] {
        let err = matcher
            .get_status(authed(&token, GetStatusRequest {}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{token}");
    }
}
