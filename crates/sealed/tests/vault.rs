//! Sealed data against a real nats-server with JetStream.

use refer_sealed::{Kek, SealError, Vault};
use refer_testkit::NatsServer;

async fn vault(nats: &NatsServer, current: Kek, previous: Vec<Kek>) -> Vault {
    let js = async_nats::jetstream::new(nats.connect().await);
    Vault::open(&js, "sealed-test", 1, current, previous).await.unwrap()
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
