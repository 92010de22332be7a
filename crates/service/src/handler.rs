//! What every handler of a sealing service stands on (`Shell`: the store,
//! the clock, the idempotency records, the sealed-data store and its read
//! log), and the prelude every command runs in one order (`Command`):
//! authenticate the caller, parse the idempotency key, validate the rest
//! (the handler's own part), bind the key to this request, execute. A
//! request refused before `bind` binds nothing, so it can be corrected and
//! sent again under the same key.

use crate::idempotency::KeyBook;
use crate::reads::ReadLog;
use crate::{caller, store_status, Principal, SharedClock};
use refer_domain::{Aggregate, CommandMeta, IdempotencyKey};
use refer_eventstore::{EventStore, Executed, Loaded};
use refer_proto::common::v1 as common;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The state every handler shares.
#[derive(Clone)]
pub struct Shell {
    pub store: EventStore,
    pub clock: SharedClock,
    pub keys: KeyBook,
    pub vault: refer_sealed::Vault,
    pub reads: ReadLog,
    /// The coalition's freshness limit, for the "as of" every capacity shows.
    pub freshness: refer_domain::Freshness,
}

/// A command whose caller is authenticated and whose key is well formed,
/// not yet bound to the request (see the module's order).
pub struct Command<'a, T> {
    shell: &'a Shell,
    request: &'a Request<T>,
    pub who: Principal,
    key: IdempotencyKey,
}

impl Shell {
    /// The first two steps of a command: who calls (from authentication,
    /// which ran before the handler) and its key (`idempotency_key`).
    pub fn command<'a, T>(&'a self, request: &'a Request<T>, key: &str) -> Result<Command<'a, T>, Status> {
        Ok(Command {
            shell: self,
            request,
            who: caller(request)?,
            key: crate::convert::idempotency_key(key)?,
        })
    }

    /// Runs `command` on aggregate `id`, a store failure as its status.
    pub async fn execute<A: Aggregate>(
        &self,
        id: Uuid,
        command: &A::Command,
        meta: &CommandMeta,
        expected: Option<u64>,
    ) -> Result<Executed<A>, Status> {
        self.store
            .execute::<A>(id, command, meta, expected)
            .await
            .map_err(store_status)
    }

    /// Loads aggregate `id`, a store failure as its status.
    pub async fn load<A: Aggregate>(&self, id: Uuid) -> Result<Loaded<A>, Status> {
        self.store.load::<A>(id).await.map_err(store_status)
    }

    /// `ListSealedReads`, which every sealing service answers alike: the
    /// reads of the caller's sealed items (every read, for an admin).
    pub async fn list_sealed_reads(
        &self,
        request: Request<common::ListSealedReadsRequest>,
    ) -> Result<Response<common::ListSealedReadsResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        Ok(Response::new(self.reads.list(&who, r.page_size, &r.page_token).await?))
    }
}

impl<T> Command<'_, T> {
    /// The request's idempotency key (decisions carry it in their steps).
    pub fn key(&self) -> &IdempotencyKey {
        &self.key
    }
}

impl<T: prost::Message> Command<'_, T> {
    /// Whether the key is bound to this very request already: a retry,
    /// which is answered as it stands, though a check that depends on the
    /// time (a consent's end) would refuse it now.
    pub async fn is_retry(&self) -> Result<bool, Status> {
        self.shell
            .keys
            .bound_to(&self.who, &self.key, self.request.get_ref())
            .await
    }

    /// Binds the key to this request (a retry with the key and another
    /// request is refused) once the request is valid, and gives the meta
    /// its commit carries.
    pub async fn bind(&self) -> Result<CommandMeta, Status> {
        self.shell
            .keys
            .bind(&self.who, &self.key, self.request.get_ref())
            .await?;
        Ok(crate::server::command_meta(
            self.request,
            self.shell.clock.as_ref(),
            self.key.clone(),
        ))
    }
}
