//! The casts of the tests: several registered users at once, users with a
//! session each, and what an ack says.

use super::{ConversationItem, Frame, TestApp, TestClient, TestUser};

impl TestApp {
    /// Registers and logs in each of `names`, in order.
    pub async fn users<const N: usize>(&self, names: [&str; N]) -> [TestUser; N] {
        let mut users = Vec::with_capacity(N);
        for name in names {
            users.push(self.user(name).await);
        }
        match users.try_into() {
            Ok(users) => users,
            Err(_) => unreachable!("one user per name"),
        }
    }

    /// Logs `name` in on this node and opens a session here.
    pub async fn session_of(&self, name: &str) -> TestClient {
        let user = self.login(name).await;
        TestClient::connect(self, &user.token).await
    }

    /// Registers each of `names`, then connects one session of each, in
    /// order (everyone exists before anyone's session says hello, as when
    /// a test registers its cast first).
    pub async fn online<const N: usize>(&self, names: [&str; N]) -> [(TestUser, TestClient); N] {
        let users = self.users(names).await;
        let mut online = Vec::with_capacity(N);
        for user in users {
            let client = TestClient::connect(self, &user.token).await;
            online.push((user, client));
        }
        match online.try_into() {
            Ok(online) => online,
            Err(_) => unreachable!("one session per user"),
        }
    }

    /// `online` for a test that needs only the sessions.
    pub async fn clients<const N: usize>(&self, names: [&str; N]) -> [TestClient; N] {
        self.online(names).await.map(|(_, client)| client)
    }
}

/// Alice, with a session, and the group `pair` she made with Bob, who is
/// registered but has no session yet.
pub struct AliceInvitedBob {
    pub bob: TestUser,
    pub a: TestClient,
    pub group: ConversationItem,
}

impl AliceInvitedBob {
    pub async fn on(app: &TestApp) -> AliceInvitedBob {
        let [alice, bob] = app.users(["alice", "bob"]).await;
        let mut a = TestClient::connect(app, &alice.token).await;
        let group = a.create("pair", &["bob"]).await;
        AliceInvitedBob { bob, a, group }
    }
}

/// What an ack says, without a let-else over `Frame::Ack` at each use.
#[derive(Debug, Clone, PartialEq)]
pub struct Acked {
    pub conversation_id: String,
    pub seq: u64,
    pub reference: Option<String>,
    pub trace_id: String,
}

impl TestClient {
    /// The next frame, which must be an ack.
    pub async fn acked(&mut self) -> Acked {
        let Frame::Ack {
            conversation_id,
            seq,
            reference,
            trace_id,
            ..
        } = self.expect_ack().await
        else {
            unreachable!("expect_ack returns acks only")
        };
        Acked {
            conversation_id,
            seq,
            reference,
            trace_id,
        }
    }
}
