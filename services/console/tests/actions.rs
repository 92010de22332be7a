//! Safe actions, as a browser meets them: a POST that worked answers with
//! a redirect (a reload repeats nothing), cancelling asks first, and a page
//! that could not do what was asked says so with the right HTTP status.

mod browse;

use browse::*;
use refer_client::authed;
use refer_proto::common::v1 as pb;
use refer_proto::intake::v1 as ik;
use refer_tests::*;

/// The partners the registry holds.
fn partners(c: &Coalition) -> Vec<refer_client::tokens::Partner> {
    refer_client::tokens::partners(c.setup.tokens_file()).unwrap()
}

/// A token (64 hex digits) shown on a page, other than its forms' CSRF token.
fn token_on(page: &str) -> Option<String> {
    let forms = page.contains("name=\"csrf\"").then(|| csrf(page));
    let hex = |w: &&str| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()) && Some(*w) != forms.as_deref();
    page.split(|c: char| !c.is_ascii_alphanumeric())
        .find(hex)
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_added_is_shown_once_and_a_reload_adds_no_second() {
    let c = Coalition::start(0, 0).await;
    let ca = c.setup.keys.ca_file();
    let console = refer_console::launch(&config(&c)).await.unwrap();
    let at = (console.addr, ca.as_path());
    let id = sign_in(at, ADMIN).await.session.expect("the admin is signed in");
    let page = http(at, "GET", "/admin", Some(&id), "").await;
    let before = partners(&c).len();

    // Given the admin adds a partner,
    let form = format!("csrf={}&name=Night+Shelter&role=provider&org=", csrf(&page.body));
    let added = http(at, "POST", "/admin", Some(&id), &form).await;
    // then the POST answers with a redirect, not the token page,
    assert_eq!((added.status, added.location.as_deref()), (303, Some("/admin")));
    assert_eq!(token_on(&added.body), None, "the POST's answer shows no token");
    assert_eq!(partners(&c).len(), before + 1);
    // the page it leads to shows the token once,
    let shown = http(at, "GET", "/admin", Some(&id), "").await;
    assert_eq!(shown.status, 200);
    let token = token_on(&shown.body).expect("the new partner's token is shown");
    assert!(shown.body.contains("shown only this once"), "{}", shown.body);
    // and reloading it shows it no more and adds nobody.
    let reloaded = http(at, "GET", "/admin", Some(&id), "").await;
    assert_eq!(token_on(&reloaded.body), None, "the token is shown a second time");
    assert_eq!(partners(&c).len(), before + 1, "a reload added a partner");
    let newest = partners(&c).pop().unwrap();
    assert_eq!(
        (newest.name.as_str(), newest.role),
        ("Night Shelter", refer_client::Role::Provider)
    );
    assert_ne!(token, ADMIN);

    // A partner that cannot be added is refused with the field named and a 422, and nothing is added.
    for (form, field) in [
        ("name=Somebody&role=intake&org=not-a-uuid", "org"),
        ("name=&role=intake&org=", "name"),
        ("name=%22quoted%22&role=intake&org=", "name"),
    ] {
        let form = format!("csrf={}&{form}", csrf(&page.body));
        let refused = http(at, "POST", "/admin", Some(&id), &form).await;
        assert_eq!(refused.status, 422, "{form}: {}", refused.body);
        assert!(refused.body.contains(&format!("{field}:")), "{form}: {}", refused.body);
    }
    assert_eq!(partners(&c).len(), before + 1);

    // The same form posted twice (a double tap), even at once, adds one partner.
    let page = http(at, "GET", "/admin", Some(&id), "").await;
    let field = "name=\"new_org\" value=\"";
    let at_org = page.body.find(field).expect("the form's organisation") + field.len();
    let new_org = page.body[at_org..].split('"').next().unwrap().to_owned();
    let form = format!(
        "csrf={}&name=Day+Centre&role=intake&org=&new_org={new_org}",
        csrf(&page.body)
    );
    let (a, b) = tokio::join!(
        http(at, "POST", "/admin", Some(&id), &form),
        http(at, "POST", "/admin", Some(&id), &form)
    );
    assert_eq!((a.status, b.status), (303, 303));
    let again = http(at, "POST", "/admin", Some(&id), &form).await;
    assert_eq!(again.status, 303);
    let day_centres = partners(&c).iter().filter(|p| p.name == "Day Centre").count();
    assert_eq!(day_centres, 1, "a form posted three times added {day_centres}");
    let shown = http(at, "GET", "/admin", Some(&id), "").await;
    assert!(token_on(&shown.body).is_some(), "its token is shown");
    console.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_need_asks_first() {
    let c = Coalition::start(0, 0).await;
    let ca = c.setup.keys.ca_file();
    let console = refer_console::launch(&config(&c)).await.unwrap();
    let at = (console.addr, ca.as_path());
    let id = sign_in(at, INTAKE).await.session.expect("intake is signed in");
    let placed = request_person(&c, "cancel-asks-1", person("case-cancel", &[pb::NeedKind::Shelter])).await;
    let need = placed.needs[0].need_id.clone();
    let status = || async {
        let get = ik::GetPlacementRequest {
            placement_id: placed.placement_id.clone(),
        };
        let placement = c.intake.clone().get_placement(authed(INTAKE, get)).await.unwrap();
        placement.into_inner().needs[0].status
    };

    // The placements page offers Cancel as a way to a question, not a form that cancels.
    let page = http(at, "GET", "/intake", Some(&id), "").await;
    let ask = format!("/intake/needs/{need}/cancel");
    let link = format!("{ask}?placement={}", placed.placement_id);
    assert!(page.body.contains(&format!("href=\"{link}\"")), "{}", page.body);
    assert!(!page.body.contains(&format!("action=\"{ask}\"")), "a one-tap cancel");
    // Asking names what would be cancelled and cancels nothing.
    let question = http(at, "GET", &link, Some(&id), "").await;
    assert_eq!(question.status, 200);
    assert!(question.body.contains("Cancel this request?"), "{}", question.body);
    assert!(
        question.body.contains("case-cancel"),
        "the case is named: {}",
        question.body
    );
    assert!(question.body.contains("href=\"/intake\""), "a way back");
    assert_ne!(status().await, ik::NeedStatus::Cancelled as i32);
    // Confirmed, it is cancelled and the page follows with a redirect.
    let form = format!("csrf={}", csrf(&question.body));
    let done = http(at, "POST", &ask, Some(&id), &form).await;
    assert_eq!((done.status, done.location.as_deref()), (303, Some("/intake")));
    // (Intake's view folds the cancel a moment after it is written.)
    placement_until(&c.intake, &placed.placement_id, "cancelled", |p| {
        p.needs[0].status == ik::NeedStatus::Cancelled as i32
    })
    .await;
    // A second tap (or a reload of the answer) acts once and answers alike.
    let again = http(at, "POST", &ask, Some(&id), &form).await;
    assert_eq!((again.status, again.location.as_deref()), (303, Some("/intake")));
    assert_eq!(status().await, ik::NeedStatus::Cancelled as i32);
    // Asked again, the question says it is over, with a 409.
    let over = http(at, "GET", &link, Some(&id), "").await;
    assert_eq!(over.status, 409, "{}", over.body);
    assert!(!over.body.contains("Yes, cancel"), "{}", over.body);
    // Another agency, or a need that is not there, is not found.
    let other = sign_in(at, OTHER_INTAKE)
        .await
        .session
        .expect("another agency is signed in");
    for (path, who) in [
        (&link, &other),
        (&ask, &other),
        (&"/intake/needs/ffffffffffffffffffffffffffffffff/cancel".to_owned(), &id),
    ] {
        let answer = http(at, "GET", path, Some(who), "").await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(
            !answer.body.contains("case-cancel"),
            "{path}: the case is named to another agency"
        );
    }
    // What the state refuses is said with a 409: a cancelled person did not arrive.
    let arrived = http(at, "POST", &format!("/intake/needs/{need}/fulfil"), Some(&id), &form).await;
    assert_eq!(arrived.status, 409, "{}", arrived.body);
    assert_eq!(status().await, ik::NeedStatus::Cancelled as i32);
    console.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_failed_answers_with_its_status() {
    let c = Coalition::start(0, 0).await;
    let ca = c.setup.keys.ca_file();
    // The matcher is away: its address answers nothing.
    let mut config = config(&c);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.matcher_url = format!("https://{}", closed.local_addr().unwrap());
    drop(closed);
    let console = refer_console::launch(&config).await.unwrap();
    let at = (console.addr, ca.as_path());
    let id = sign_in(at, INTAKE).await.session.expect("intake is signed in");

    let nowhere = http(at, "GET", "/nowhere", Some(&id), "").await;
    assert_eq!(nowhere.status, 404);
    assert!(nowhere.body.contains("Not found"), "{}", nowhere.body);
    let away = http(at, "GET", "/reports", Some(&id), "").await;
    assert_eq!(away.status, 503, "{}", away.body);
    assert!(away.body.contains("matcher"), "the service is named: {}", away.body);
    // A request with no place chosen: the form again, with a 422.
    let form_page = http(at, "GET", "/intake/new", Some(&id), "").await;
    let form = format!("csrf={}&key=k1&needs0=shelter&coords=", csrf(&form_page.body));
    let refused = http(at, "POST", "/intake/new", Some(&id), &form).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("Where they are now: pick a place from the list"),
        "the field is named as the page names it: {}",
        refused.body
    );
    // What the service refuses is named as the page names it too, in the
    // page's language: a person with no need ticked.
    let form = format!(
        "csrf={}&key=k2&place=Long+Beach&p0.case=N1&p0.languages=es",
        csrf(&form_page.body)
    );
    let refused = http(at, "POST", "/intake/new", Some(&id), &form).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("Person 1, Needs: must hold 1 to 8 needs"),
        "{}",
        refused.body
    );
    let spanish = http(at, "GET", "/lang/es", Some(&id), "").await;
    assert_eq!(spanish.status, 303, "{}", spanish.body);
    let refused = http(at, "POST", "/intake/new", Some(&id), &form).await;
    assert!(
        refused
            .body
            .contains("Persona 1, Necesidades: debe tener de 1 a 8 necesidades"),
        "{}",
        refused.body
    );
    console.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_finished_is_cut_off_and_long_addresses_are_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = Coalition::start(0, 0).await;
    let ca = c.setup.keys.ca_file();
    let console = refer_console::launch(&config(&c)).await.unwrap();
    let at = (console.addr, ca.as_path());
    let id = sign_in(at, INTAKE).await.session.expect("intake is signed in");

    // A client that starts a request and never ends its head holds nothing for long.
    let mut slow = refer_service::tls::connect(console.addr, &ca, None).await.unwrap();
    let head = format!(
        "GET /reports?from={} HTTP/1.1\r\nHost: console\r\nCookie: ",
        "y".repeat(9_000)
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let deadline = refer_console::HEAD_DEADLINE + std::time::Duration::from_secs(5);
    let mut rest = Vec::new();
    let cut = tokio::time::timeout(deadline, slow.read_to_end(&mut rest)).await;
    assert!(cut.is_ok(), "the connection is still open after {deadline:?}");

    // Nor one whose head came and whose body never does.
    let mut stalled = refer_service::tls::connect(console.addr, &ca, None).await.unwrap();
    let head = "POST /signin HTTP/1.1\r\nHost: console\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nsignin=";
    stalled.write_all(head.as_bytes()).await.unwrap();
    let deadline = refer_console::BODY_DEADLINE + std::time::Duration::from_secs(5);
    let mut answer = Vec::new();
    let cut = tokio::time::timeout(deadline, stalled.read_to_end(&mut answer)).await;
    assert!(cut.is_ok(), "a stalled body holds the connection after {deadline:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Complete requests with long addresses are answered, signed in or not.
    for len in [1_000, 9_000, 20_000] {
        for session in [Some(id.as_str()), None] {
            let long = format!("/reports?from={}", "y".repeat(len));
            let answer = http(at, "GET", &long, session, "").await;
            assert!((200..500).contains(&answer.status), "{len} bytes: {}", answer.status);
        }
    }
    console.stop().await.unwrap();
}

/// A coalition outside Los Angeles names its own places in a file: its
/// forms offer those, a person is placed at one typed by name, counted in
/// its county, and the demo coalition's places are no longer offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coalition_offers_its_own_places() {
    let c = Coalition::start(0, 0).await;
    let ca = c.setup.keys.ca_file();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("places.toml");
    std::fs::write(
        &file,
        "[[county]]\nregion = \"US-48-201\"\nname = \"Harris County\"\nname_es = \"condado de Harris\"\n\
         [[place]]\nname = \"Houston\"\nlat = 29.76\nlon = -95.37\nregion = \"US-48-201\"\n",
    )
    .unwrap();
    let mut config = config(&c);
    config.places = Some(refer_console::places::Places::read(&file).unwrap());
    let console = refer_console::launch(&config).await.unwrap();
    let at = (console.addr, ca.as_path());
    let id = sign_in(at, INTAKE).await.session.expect("intake is signed in");
    let form_page = http(at, "GET", "/intake/new", Some(&id), "").await;
    assert!(
        form_page.body.contains("<option value=\"Houston, Harris County\">"),
        "{}",
        form_page.body
    );
    assert!(!form_page.body.contains("Long Beach"), "{}", form_page.body);
    let form = format!(
        "csrf={}&key=h1&place=houston&p0.case=H1&p0.needs=shelter&p0.languages=en",
        csrf(&form_page.body)
    );
    let requested = http(at, "POST", "/intake/new", Some(&id), &form).await;
    assert_eq!(requested.status, 303, "{}", requested.body);
    // Waitlisted (there is no provider), in the county of Houston, which
    // the admin reads by its name.
    let admin = sign_in(at, ADMIN).await.session.expect("the admin is signed in");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = http(at, "GET", "/admin", Some(&admin), "").await;
        if page.body.contains("<td>Harris County</td>") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not waitlisted in Harris County: {}",
            page.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    console.stop().await.unwrap();
}
