//! The token file under a write that fails halfway (a full disk): it is
//! left exactly as it was, never with half an entry that would stop the
//! services reloading it.

use refer_client::tokens::{add_partner, add_partner_with, lock, new_token, parse};
use refer_client::Role;
use uuid::Uuid;

#[test]
fn a_write_that_fails_halfway_leaves_the_token_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.toml");
    add_partner(&path, "Harbor House", Role::Provider, Uuid::from_u128(1)).unwrap();
    let before = std::fs::read_to_string(&path).unwrap();

    // Writes may not grow any file past 40 bytes more than it has: the
    // next entry (well over 100 bytes) is cut off partway, as on a full disk.
    // (This test runs in a process of its own, as nextest runs each.)
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: before.len() as u64 + 40,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let held = lock(&path).unwrap();
    let error = add_partner_with(&path, "Safe Haven", Role::Provider, Uuid::from_u128(2), &new_token())
        .expect_err("the write cannot finish");
    drop(held);
    assert!(error.contains("it is unchanged"), "{error}");
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(after, before, "not a byte of the failed entry is left");
    assert_eq!(parse(&after).unwrap().len(), 1);

    // Room again: the next entry lands whole.
    unsafe {
        let limit = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    add_partner(&path, "Safe Haven", Role::Provider, Uuid::from_u128(2)).unwrap();
    assert_eq!(parse(&std::fs::read_to_string(&path).unwrap()).unwrap().len(), 2);
}
