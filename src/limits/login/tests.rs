use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const A: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
const B: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
const SECS: fn(u64) -> Duration = Duration::from_secs;

fn throttle(per_address: u32, per_account_address: u32, capacity: usize) -> LoginThrottle {
    LoginThrottle::new(LoginRules {
        per_address,
        per_account_address,
        first_delay: SECS(5),
        window: SECS(300),
        capacity,
    })
}

/// A wrong password at `account` from `address`.
fn fail(t: &LoginThrottle, address: Option<IpAddr>, account: &str, now: Instant) {
    let attempt = t.begin(address, Some(account), now).expect("not waiting");
    t.failed(&attempt, now);
}

#[test]
fn a_guesser_slows_only_its_own_pair_and_the_owner_logs_in_from_elsewhere() {
    let t0 = Instant::now();
    let t = throttle(100, 3, 1000);
    for _ in 0..3 {
        fail(&t, A, "bob", t0);
    }
    let later = t0 + SECS(2);
    assert_eq!(t.begin(A, Some("bob"), later), Err(SECS(3)));
    // The owner, from another address, is not slowed at all.
    let owner = t.begin(B, Some("bob"), later).expect("the owner is let in");
    t.succeeded(&owner);
    // Another account from the guesser's address is not either.
    assert!(t.begin(A, Some("carol"), later).is_ok());
    // The wait ends by itself.
    assert!(t.begin(A, Some("bob"), t0 + SECS(5)).is_ok());
}

#[test]
fn each_failure_past_the_free_count_doubles_the_wait_up_to_the_window() {
    let t0 = Instant::now();
    let t = throttle(1000, 2, 1000);
    let mut now = t0;
    let mut waits = Vec::new();
    while waits.len() < 9 {
        match t.begin(A, Some("bob"), now) {
            Ok(attempt) => t.failed(&attempt, now),
            Err(wait) => {
                waits.push(wait.as_secs());
                now += wait;
            }
        }
    }
    assert_eq!(
        waits,
        [5, 10, 20, 40, 80, 160, 300, 300, 300],
        "two free failures, then doubling waits capped at the window"
    );
    // Still remembered after its wait ended: the next failure waits the
    // longest again (`now` is where the last wait ended).
    fail(&t, A, "bob", now + SECS(299));
    assert_eq!(t.begin(A, Some("bob"), now + SECS(299)), Err(SECS(300)));
    // Forgotten once quiet a window past the end of its wait: two free
    // ones again.
    let later = now + SECS(299 + 300 + 300);
    fail(&t, A, "bob", later);
    fail(&t, A, "bob", later);
    assert_eq!(t.begin(A, Some("bob"), later), Err(SECS(5)));
}

#[test]
fn attempts_in_flight_count_and_success_or_a_server_error_gives_them_back() {
    let t0 = Instant::now();
    let t = throttle(100, 2, 1000);
    let first = t.begin(A, Some("alice"), t0).expect("first");
    let _second = t.begin(A, Some("alice"), t0).expect("second");
    // Two begun, none finished: the third waits.
    assert!(t.begin(A, Some("alice"), t0).is_err());
    t.abandoned(&first);
    let third = t.begin(A, Some("alice"), t0).expect("one was given back");
    t.succeeded(&third);
    assert!(t.begin(A, Some("alice"), t0).is_ok());
}

#[test]
fn an_address_counts_its_wrong_passwords_and_its_logins_in_flight() {
    let t0 = Instant::now();
    let t = throttle(3, 100, 1000);
    // A spray over many accounts at once: only three reach the hashing.
    let started: Vec<Attempt> = (0..3)
        .map(|i| t.begin(A, Some(&format!("u{i}")), t0).expect("free"))
        .collect();
    assert!(t.begin(A, Some("u3"), t0).is_err());
    assert!(
        t.begin(B, Some("u3"), t0).is_ok(),
        "another address is not slowed"
    );
    // Successes give their attempts back; wrong passwords keep theirs.
    t.succeeded(&started[0]);
    t.succeeded(&started[1]);
    t.failed(&started[2], t0);
    for user in ["x", "y"] {
        fail(&t, A, user, t0);
    }
    assert!(t.begin(A, Some("someone"), t0).is_err());
}

#[test]
fn ipv6_is_counted_per_64() {
    let t0 = Instant::now();
    let t = throttle(2, 100, 1000);
    let net = |host: u16| {
        Some(IpAddr::V6(Ipv6Addr::new(
            0x2001, 0xdb8, 1, 2, 0, 0, 0, host,
        )))
    };
    fail(&t, net(1), "a", t0);
    fail(&t, net(2), "b", t0);
    assert!(t.begin(net(3), None, t0).is_err());
    let other = Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1)));
    assert!(t.begin(other, None, t0).is_ok());
}

#[test]
fn the_tables_are_bounded_and_addresses_do_not_push_out_pairs() {
    let t0 = Instant::now();
    let t = throttle(5, 2, 10);
    fail(&t, None, "victim", t0);
    fail(&t, None, "victim", t0);
    for i in 0..100u8 {
        let a = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)));
        t.begin(a, None, t0 + Duration::from_millis(u64::from(i) + 1))
            .ok();
    }
    let (addresses, pairs) = t.len();
    assert!((9..=10).contains(&addresses) && pairs == 1, "{:?}", t.len());
    assert!(t.begin(None, Some("victim"), t0 + SECS(1)).is_err());
    for i in 0..100 {
        t.begin(None, Some(&format!("user{i}")), t0).ok();
    }
    let (addresses, pairs) = t.len();
    assert!(
        (9..=10).contains(&addresses) && (9..=10).contains(&pairs),
        "{:?}",
        t.len()
    );
}

#[test]
fn a_zero_count_is_off() {
    let t0 = Instant::now();
    let t = throttle(0, 0, 10);
    for _ in 0..100 {
        fail(&t, A, "bob", t0);
    }
    assert!(t.begin(A, Some("bob"), t0).is_ok());
    assert_eq!(t.len(), (0, 0));
}

#[test]
fn an_address_is_an_ipv4_address_or_an_ipv6_slash_64() {
    use std::net::IpAddr;
    let key = |s: &str| super::address_key(s.parse::<IpAddr>().unwrap()).to_string();
    assert_eq!(key("10.1.2.3"), "10.1.2.3");
    assert_eq!(
        key("::ffff:10.1.2.3"),
        "10.1.2.3",
        "IPv4 through a dual-stack listener"
    );
    assert_ne!(key("::ffff:10.1.2.3"), key("::ffff:10.1.2.4"));
    assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
    assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
}
