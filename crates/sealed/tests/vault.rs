//! Sealed data against a real nats-server with JetStream.

use refer_sealed::{Kek, SealError, Vault};
use refer_testkit::NatsServer;

async fn vault(nats: &NatsServer, current: Kek, previous: Vec<Kek>) -> Vault {
    let js = async_nats::jetstream::new(nats.connect().await);
    Vault::create_bucket(&js, "sealed-test", 1).await.unwrap();
    Vault::open(&js, "sealed-test", current, previous).await.unwrap()
}

#[tokio::test]
async fn a_sealed_item_opens_for_its_purpose_only_and_never_after_it_is_erased() {
    let nats = NatsServer::start().await.unwrap();
    let v = vault(&nats, Kek::from_bytes([7; 32]), vec![]).await;
    let handoff = b"Bring her to the side door; ask for Ana, 555-0100";
    let sealed = v.seal("handoff.h1", handoff, b"agency-42").await.unwrap();
    assert!(!sealed.ciphertext.windows(4).any(|w| w == b"Bring"[..4].as_ref()));
    assert_eq!(v.open_sealed(&sealed, b"agency-42").await.unwrap(), handoff);
    // Bound to its name and purpose.
    assert!(matches!(
        v.open_sealed(&sealed, b"agency-43").await,
        Err(SealError::Tampered(_))
    ));
    let mut altered = sealed.clone();
    altered.ciphertext[0] ^= 1;
    assert!(matches!(
        v.open_sealed(&altered, b"agency-42").await,
        Err(SealError::Tampered(_))
    ));
    // A name is sealed once.
    assert!(matches!(
        v.seal("handoff.h1", b"other", b"x").await,
        Err(SealError::Exists(_))
    ));

    v.erase("handoff.h1").await.unwrap();
    assert!(matches!(
        v.open_sealed(&sealed, b"agency-42").await,
        Err(SealError::Erased(_))
    ));
    // Nothing of the key is left in the bucket's history, for anyone, the
    // KEK's holder included (a fresh vault with the same KEK).
    let js = async_nats::jetstream::new(nats.connect().await);
    let bucket = js.get_key_value("sealed-test").await.unwrap();
    use futures::StreamExt;
    let history: Vec<_> = bucket.history("dek.handoff.h1").await.unwrap().collect().await;
    assert!(
        history.iter().all(|e| e.as_ref().unwrap().value.is_empty()),
        "{history:?}"
    );
    let again = vault(&nats, Kek::from_bytes([7; 32]), vec![]).await;
    assert!(again.open_sealed(&sealed, b"agency-42").await.is_err());
    v.erase("handoff.h1").await.unwrap();
}

/// The attacker holds a copy of the server's store directory and the KEK.
#[tokio::test]
async fn an_erased_key_cannot_be_recovered_from_the_disk_with_the_kek() {
    use refer_testkit::forensic::{copy_dir, recover};
    // The attacker holds the store's key too: they read what an
    // unencrypted store holds.
    let nats = NatsServer::start_with(refer_testkit::ServerOptions::unencrypted())
        .await
        .unwrap();
    let v = vault(&nats, Kek::from_bytes([9; 32]), vec![]).await;
    let items: Vec<String> = ["case.c1", "note.n1", "handoff.h1"].map(String::from).into();
    for item in &items {
        v.seal(item, b"secret", b"p").await.unwrap();
    }
    let copies = tempfile::tempdir().unwrap();
    let before = copy_dir(&nats.store_dir(), copies.path()).unwrap();
    let found = recover(&[before], [9; 32], &items);
    assert_eq!(found.len(), 3, "the attacker finds live keys: {found:?}");

    v.erase("case.c1").await.unwrap();
    v.erase("note.n1").await.unwrap();
    let after = copy_dir(&nats.store_dir(), copies.path()).unwrap();
    let found = recover(&[after], [9; 32], &items);
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["handoff.h1"],
        "only the live item's key is left on disk"
    );
}

/// A bucket made by async-nats (or an earlier Refer) refuses secure
/// deletes: the vault will not use it rather than promise what it cannot.
#[tokio::test]
async fn a_bucket_that_cannot_overwrite_is_refused() {
    let nats = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(nats.connect().await);
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: "plain".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let err = Vault::open(&js, "plain", Kek::from_bytes([1; 32]), vec![])
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("refuses secure deletes"), "{err}");
}

/// Moving the keys of an earlier version keeps every live item readable,
/// leaves erased ones erased, and removes the old bucket; the keys of the
/// one bucket every sealing service shared go each to its sealer's own.
#[tokio::test]
async fn migrating_the_old_buckets_keeps_live_items_and_removes_them() {
    let nats = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(nats.connect().await);
    let kek = Kek::from_bytes([4; 32]);
    // An old bucket, as earlier versions made it, holding one live key.
    let old = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: refer_sealed::legacy_bucket_for("S"),
            history: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    Vault::create_bucket(&js, "scratch", 1).await.unwrap();
    let scratch = Vault::open(&js, "scratch", kek.clone(), vec![]).await.unwrap();
    let live = scratch.seal("note.live", b"still here", b"p").await.unwrap();
    let gone = scratch.seal("note.gone", b"erased", b"p").await.unwrap();
    let raw = js.get_key_value("scratch").await.unwrap();
    for name in ["dek.note.live", "dek.note.gone"] {
        old.put(name, raw.get(name).await.unwrap().unwrap()).await.unwrap();
    }
    old.purge("dek.note.gone").await.unwrap();

    // And the shared bucket of the version after, holding a hand-off.
    Vault::create_bucket(&js, &refer_sealed::shared_bucket_for("S"), 1)
        .await
        .unwrap();
    let shared = Vault::open(&js, &refer_sealed::shared_bucket_for("S"), kek.clone(), vec![])
        .await
        .unwrap();
    let handoff = shared.seal("handoff.h", b"side door", b"p").await.unwrap();
    let sealer_of = |item: &str| {
        if item.starts_with("handoff.") {
            "capacity"
        } else {
            "intake"
        }
        .to_owned()
    };

    let open = |sealer: &'static str, reads: &'static [&'static str]| {
        let (js, kek) = (js.clone(), kek.clone());
        async move { Vault::open_for_stream(&js, "S", sealer, reads, kek, vec![]).await }
    };
    assert!(
        open("intake", &[])
            .await
            .err()
            .unwrap()
            .to_string()
            .contains("migrate-sealed"),
        "a service refuses to start while an old bucket is there"
    );
    assert_eq!(refer_sealed::migrate(&js, "S", sealer_of).await.unwrap(), 2);
    assert!(js.get_stream("KV_S_SEALED").await.is_err(), "the old bucket is gone");
    assert!(
        js.get_stream("KV_S_DATA_KEYS").await.is_err(),
        "the shared bucket is gone"
    );
    assert_eq!(
        refer_sealed::migrate(&js, "S", sealer_of).await.unwrap(),
        0,
        "once is enough"
    );
    let intake = open("intake", &[]).await.unwrap();
    assert_eq!(intake.open_sealed(&live, b"p").await.unwrap(), b"still here");
    assert!(matches!(
        intake.open_sealed(&gone, b"p").await,
        Err(SealError::Erased(_))
    ));
    assert!(
        matches!(intake.open_sealed(&handoff, b"p").await, Err(SealError::Erased(_))),
        "the hand-off is capacity's, which intake alone does not read"
    );
    let capacity = open("capacity", &[]).await.unwrap();
    assert_eq!(capacity.open_sealed(&handoff, b"p").await.unwrap(), b"side door");
}

/// A service seals into its own bucket, opens the items of the buckets it
/// reads, and erases an item wherever it finds it.
#[tokio::test]
async fn a_store_seals_into_its_own_bucket_and_reads_the_others_it_names() {
    let nats = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(nats.connect().await);
    let kek = Kek::from_bytes([5; 32]);
    for sealer in ["capacity", "intake"] {
        Vault::create_bucket(&js, &refer_sealed::bucket_for("S", sealer), 1)
            .await
            .unwrap();
    }
    let open = |sealer: &'static str, reads: &'static [&'static str]| {
        let (js, kek) = (js.clone(), kek.clone());
        async move {
            Vault::open_for_stream(&js, "S", sealer, reads, kek, vec![])
                .await
                .unwrap()
        }
    };
    let capacity = open("capacity", &[]).await;
    let intake = open("intake", &["capacity"]).await;
    let handoff = capacity.seal("handoff.h", b"side door", b"p").await.unwrap();
    let note = intake.seal("note.n", b"allergy", b"p").await.unwrap();
    let raw = js.get_key_value(refer_sealed::bucket_for("S", "intake")).await.unwrap();
    assert!(
        raw.get("dek.note.n").await.unwrap().is_some(),
        "intake seals into its own"
    );
    assert!(raw.get("dek.handoff.h").await.unwrap().is_none());
    assert_eq!(intake.open_sealed(&handoff, b"p").await.unwrap(), b"side door");
    assert!(
        matches!(capacity.open_sealed(&note, b"p").await, Err(SealError::Erased(_))),
        "capacity reads no bucket but its own here"
    );
    intake.erase("handoff.h").await.unwrap();
    assert!(matches!(
        capacity.open_sealed(&handoff, b"p").await,
        Err(SealError::Erased(_))
    ));
}

#[tokio::test]
async fn a_rotated_key_encryption_key_reads_everything_and_the_old_one_can_go() {
    let nats = NatsServer::start().await.unwrap();
    let old = Kek::from_bytes([1; 32]);
    let new = Kek::from_bytes([2; 32]);
    let before = vault(&nats, old.clone(), vec![]).await;
    let a = before.seal("note.a", b"first", b"p").await.unwrap();
    let b = before.seal("note.b", b"second", b"p").await.unwrap();
    // The new KEK alone cannot read what the old one wrapped.
    let new_only = vault(&nats, new.clone(), vec![]).await;
    assert!(matches!(
        new_only.open_sealed(&a, b"p").await,
        Err(SealError::UnknownKek { .. })
    ));
    let rotating = vault(&nats, new.clone(), vec![old]).await;
    assert_eq!(rotating.rotate().await.unwrap(), 2);
    assert_eq!(rotating.rotate().await.unwrap(), 0, "nothing left to re-wrap");
    let after = vault(&nats, new, vec![]).await;
    assert_eq!(after.open_sealed(&a, b"p").await.unwrap(), b"first");
    assert_eq!(after.open_sealed(&b, b"p").await.unwrap(), b"second");
}

#[test]
fn a_missing_or_short_key_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.hex");
    let err = Kek::load(&path).unwrap_err().to_string();
    assert!(err.contains("kek.hex") && err.contains("cannot be read"), "{err}");
    std::fs::write(&path, "00ff").unwrap();
    let err = Kek::load(&path).unwrap_err().to_string();
    assert!(err.contains("too short"), "{err}");
    std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
    let kek = Kek::load(&path).unwrap();
    assert_eq!(kek.id().len(), 16);
    assert!(!format!("{kek:?}").contains("abab"), "the key never shows");
}

/// Concurrent seals: each is answered for its own key, and every item
/// opens.
#[tokio::test]
async fn concurrent_seals_each_keep_their_own_key() {
    let nats = NatsServer::start().await.unwrap();
    let v = vault(&nats, Kek::from_bytes([7; 32]), vec![]).await;
    let seals = (0..200).map(|i| {
        let v = v.clone();
        async move {
            let text = format!("hand-off {i}");
            let sealed = v.seal(&format!("handoff.c{i}"), text.as_bytes(), b"p").await.unwrap();
            (text, sealed)
        }
    });
    let sealed = futures::future::join_all(seals).await;
    for (text, item) in &sealed {
        assert_eq!(v.open_sealed(item, b"p").await.unwrap(), text.as_bytes());
    }
    // Taken names are still refused, however many try at once.
    let again = (0..20).map(|i| {
        let v = v.clone();
        async move { v.seal(&format!("handoff.c{i}"), b"other", b"p").await }
    });
    for refused in futures::future::join_all(again).await {
        assert!(matches!(refused, Err(SealError::Exists(_))), "{refused:?}");
    }
    let js = async_nats::jetstream::new(nats.connect().await);
    let info = js
        .get_stream("KV_sealed-test")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.state.messages, 200, "one key per seal, none twice");
}
