//! Paging, one way for every list RPC: a page size (0 means 100, at most
//! 500) and an opaque token, the hex of the postcard of the last key a page
//! held. Each listing chooses its key (an id, a position, a time); clients
//! only pass the token back.

use crate::status::invalid;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Status;

/// The default page size, and the largest a client may ask for.
pub const DEFAULT_SIZE: usize = 100;
pub const MAX_SIZE: usize = 500;

/// The page size a request asks for.
pub fn size(value: u32) -> Result<usize, Status> {
    match value as usize {
        0 => Ok(DEFAULT_SIZE),
        n if n <= MAX_SIZE => Ok(n),
        _ => Err(invalid("page_size", format!("must be at most {MAX_SIZE}"))),
    }
}

/// The ids of the organisations `who` may act for, after `after`, in id
/// order: at most `size + 1` (for [`cut`]).
pub fn owned_ids<I: Ord + Copy>(
    by_org: &std::collections::BTreeMap<refer_domain::ids::OrgId, std::collections::BTreeSet<I>>,
    who: &crate::Principal,
    after: Option<I>,
    size: usize,
) -> Vec<I> {
    let mut ids: Vec<I> = by_org
        .iter()
        .filter(|(org, _)| who.acts_for(**org))
        .flat_map(|(_, ids)| ids.iter().copied())
        .filter(|id| after.is_none_or(|a| *id > a))
        .collect();
    ids.sort();
    ids.truncate(size + 1);
    ids
}

/// The key after which a page starts: `None` for the first page.
pub fn after<K: DeserializeOwned>(token: &str) -> Result<Option<K>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    hex::decode(token)
        .ok()
        .and_then(|bytes| postcard::from_bytes(&bytes).ok())
        .map(Some)
        .ok_or_else(|| invalid("page_token", "is not a token this service issued"))
}

/// Cuts `items` (at most `size + 1`, in listing order) to a page, and the
/// token for the next one (empty when this is the last page).
pub fn cut<T, K: Serialize>(mut items: Vec<T>, size: usize, key: impl Fn(&T) -> K) -> (Vec<T>, String) {
    let next = if items.len() > size {
        hex::encode(postcard::to_stdvec(&key(&items[size - 1])).expect("page keys encode"))
    } else {
        String::new()
    };
    items.truncate(size);
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_the_last_key_of_its_page() {
        let (page, token) = cut((1..=4u64).collect(), 3, |n| *n);
        assert_eq!(page, vec![1, 2, 3]);
        assert_eq!(after::<u64>(&token).unwrap(), Some(3));
        let (page, token) = cut(vec![1u64, 2], 3, |n| *n);
        assert_eq!((page.len(), token.as_str()), (2, ""));
        assert_eq!(after::<u64>("").unwrap(), None);
        let err = after::<u64>("zz").unwrap_err();
        assert!(err.message().contains("page_token"));
        assert_eq!(size(0).unwrap(), 100);
        assert!(size(501).unwrap_err().message().contains("page_size"));
    }
}
