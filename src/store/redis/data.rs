//! Users, conversations, history, wallets and payments in Redis.
//! (Stubs: being written.)

use super::RedisStore;
use crate::domain::{
    Conversation, ConversationId, Payment, PaymentId, PaymentStatus, SagaStep, TraceId, Username,
};
use crate::store::{
    AppendOutcome, Completion, ConversationSummary, HistoryPage, NewMessage, NewUser, StoreError,
    UserRecord,
};

fn todo<T>() -> Result<T, StoreError> {
    Err(StoreError::Backend("not yet".into()))
}

#[allow(unused_variables)]
impl RedisStore {
    pub async fn create_user(&self, user: NewUser) -> Result<(), StoreError> {
        todo()
    }
    pub async fn create_group(
        &self,
        name: String,
        members: Vec<Username>,
    ) -> Result<Conversation, StoreError> {
        todo()
    }
    pub async fn direct_conversation(
        &self,
        a: Username,
        b: Username,
    ) -> Result<Conversation, StoreError> {
        todo()
    }
    pub async fn add_member(
        &self,
        id: ConversationId,
        user: Username,
        max_members: usize,
    ) -> Result<Conversation, StoreError> {
        todo()
    }
    pub async fn remove_member(
        &self,
        id: ConversationId,
        user: Username,
    ) -> Result<Conversation, StoreError> {
        todo()
    }
    pub fn append_then(&self, message: NewMessage, done: Completion<AppendOutcome>) {
        done(todo())
    }
    pub async fn set_read(
        &self,
        id: ConversationId,
        user: Username,
        seq: u64,
    ) -> Result<(), StoreError> {
        todo()
    }
    pub async fn create_payment(
        &self,
        payer: Username,
        payee: Username,
        amount: i64,
        key: String,
        trace: TraceId,
    ) -> Result<(Payment, bool), StoreError> {
        todo()
    }
    pub async fn advance_payment(
        &self,
        id: PaymentId,
        to: SagaStep,
        reason: Option<String>,
    ) -> Result<Payment, StoreError> {
        todo()
    }
    pub async fn credit(&self, user: Username, amount: i64) -> Result<i64, StoreError> {
        todo()
    }
    pub async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        todo()
    }
    pub async fn payment_by_key(
        &self,
        payer: Username,
        key: String,
    ) -> Result<Option<Payment>, StoreError> {
        todo()
    }
    pub async fn payments(
        &self,
        status: Option<PaymentStatus>,
        unfinished: bool,
        limit: usize,
    ) -> Result<Vec<Payment>, StoreError> {
        todo()
    }
    /// Nothing is buffered in this process: every write is in Redis once answered.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        Ok(())
    }
    pub async fn user(&self, username: Username) -> Result<Option<UserRecord>, StoreError> {
        todo()
    }
    pub async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<Conversation>, StoreError> {
        todo()
    }
    pub async fn conversations_of(
        &self,
        user: Username,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        todo()
    }
    pub async fn history(
        &self,
        user: Username,
        id: ConversationId,
        after_seq: u64,
        limit: u32,
    ) -> Result<HistoryPage, StoreError> {
        todo()
    }
    pub async fn contacts_of(&self, user: Username) -> Result<Vec<Username>, StoreError> {
        todo()
    }
}
