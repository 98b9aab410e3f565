//! The Lua scripts, each with the shared prelude (`scripts/lib.lua`)
//! prepended. `redis::Script` sends EVALSHA and loads the script on
//! NOSCRIPT, so a restarted Redis needs nothing from us.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("../scripts/lib.lua"),
                include_str!(concat!("../scripts/", $file))
            ))
        });
    };
}

script!(USER_CREATE, "user_create.lua");
script!(USER_GET, "user_get.lua");
script!(USER_ADMIN, "user_admin.lua");
script!(CREDIT, "credit.lua");
script!(CONV_GET, "conv_get.lua");
script!(GROUP_CREATE, "group_create.lua");
script!(DIRECT, "direct.lua");
script!(MEMBER_ADD, "member_add.lua");
script!(MEMBER_REMOVE, "member_remove.lua");
script!(READ_SET, "read_set.lua");
script!(APPEND, "append.lua");
script!(HISTORY, "history.lua");
script!(CONVS_OF, "convs_of.lua");
script!(INBOX, "inbox.lua");
script!(CONTACTS, "contacts.lua");
script!(INVITE, "invite.lua");
script!(INVITE_DECLINE, "invite_decline.lua");
script!(INVITE_GET, "invite_get.lua");
script!(INVITES_OF, "invites_of.lua");
script!(CONSENTING, "consenting.lua");
script!(STARTED, "started.lua");
script!(PAY_CREATE, "pay_create.lua");
script!(PAY_ADVANCE, "pay_advance.lua");
script!(PAY_GET, "pay_get.lua");
script!(PAY_LIST, "pay_list.lua");
