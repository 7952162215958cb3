//! The PostgreSQL store against a real server: the trees behave as sled's
//! do, and what several replicas must not do twice — claim an event,
//! count an outcome, apply the schema, hear a learned rule — is done once
//! across two stores on one database (two replicas).

use std::collections::HashSet;
use std::time::Duration;

use guard::daemon::queue::{JobRecord, Queue};
use guard::heal::budget::JobBudget;
use guard::intake::{EventKind, JobStatus, Parsed};
use guard::model::{Category, Job, Platform, Rule};
use guard::store::{Store, Trees, transaction};

use crate::pg::PgServer;

fn failed(job_id: u32) -> EventKind {
    EventKind::JobCompleted {
        job: Job {
            platform: Platform::Github,
            repository: "o/r".into(),
            job_id: job_id.to_string(),
            attempt: 1,
            ..Job::default()
        },
        status: JobStatus::Failed,
    }
}

/// Two stores on one fresh database, as two replicas would have.
async fn two_replicas(pg: &PgServer, name: &str) -> (Store, Store) {
    let url = pg.fresh_database(name);
    let u = url.clone();
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking(move || Store::connect(&u).unwrap()),
        tokio::task::spawn_blocking(move || Store::connect(&url).unwrap()),
    );
    (a.unwrap(), b.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_keep_order_keyspaces_and_transactions_as_sled_does() {
    let Some(pg) = PgServer::start().await else {
        return;
    };
    let (s, other) = two_replicas(&pg, "trees").await;
    assert!(s.is_shared() && !Store::temporary().unwrap().is_shared());
    // Both replicas started on an empty database at once: the schema was
    // applied once, under the advisory lock.
    assert_eq!(s.migrations().unwrap(), [1, 2]);
    assert_eq!(
        pg.psql("trees", "select count(*) from guard_migrations"),
        "2"
    );

    // Ids are unique across replicas and increase within each.
    let mut seen = HashSet::new();
    let (mut last_s, mut last_o) = (0, 0);
    for _ in 0..200 {
        let a = s.generate_id().unwrap();
        let b = other.generate_id().unwrap();
        assert!(a > last_s && b > last_o, "{a} {b}");
        assert!(seen.insert(a) && seen.insert(b), "{a} {b} handed out twice");
        (last_s, last_o) = (a, b);
    }

    // Keyspaces of one tree, in byte order.
    for (k, v) in [("b", 2u64), ("a", 1), ("c\u{1f}x", 3)] {
        s.put(Trees::DELIVERIES, k, &v).unwrap();
    }
    assert_eq!(
        other.entries(Trees::DELIVERIES).unwrap(),
        [("a".into(), 1), ("b".into(), 2), ("c\u{1f}x".into(), 3)]
    );
    let jobs = other.tree(Trees::JOBS).unwrap();
    for id in [3u64, 1, 2, 300] {
        jobs.insert(
            &id,
            &JobRecord {
                id,
                ..JobRecord::default()
            },
        )
        .unwrap();
    }
    let newest: Vec<u64> = jobs.last(2).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(newest, [300, 3], "numeric order, newest first");
    assert_eq!(jobs.len(), 4);
    assert_eq!(jobs.remove_where(|r| r.id < 3).unwrap(), 2);
    assert_eq!(s.tree(Trees::JOBS).unwrap().len(), 2);

    // Expiry removes what is dated before the horizon, and dates what
    // carries no date yet instead of removing it.
    let budgets = s.tree(Trees::JOB_BUDGETS).unwrap();
    for (k, at_ms) in [("old", 10), ("new", 1_000), ("undated", 0)] {
        budgets.insert(k, &JobBudget { used: 1, at_ms }).unwrap();
    }
    let theirs = other.tree(Trees::JOB_BUDGETS).unwrap();
    assert_eq!(theirs.expire(500, 2_000, |b| &mut b.at_ms).unwrap(), 1);
    assert!(budgets.get("old").unwrap().is_none());
    assert_eq!(budgets.get("undated").unwrap().unwrap().at_ms, 2_000);
    assert_eq!(budgets.get("new").unwrap().unwrap().at_ms, 1_000);

    // A transaction writes both trees or neither.
    let d = s.tree(Trees::DELIVERIES).unwrap();
    let q = s.tree(Trees::BASELINES).unwrap();
    let r: Result<(), _> = transaction(&d, &q, |d, q| {
        d.insert("t", &9)?;
        q.insert("k", &vec![1])?;
        Err(sled_abort())
    });
    assert!(r.is_err());
    assert!(other.get(Trees::DELIVERIES, "t").unwrap().is_none());
    assert!(other.get(Trees::BASELINES, "k").unwrap().is_none());

    // So does one over more trees (settling a heal uses four).
    let trees = [
        Trees::DELIVERIES.name(),
        Trees::BASELINES.name(),
        Trees::RULES.name(),
    ];
    let r: Result<(), _> = s.atomically(&trees, |tx| {
        tx.tree(Trees::DELIVERIES)?.insert("t", &9)?;
        tx.tree(Trees::BASELINES)?.insert("k", &vec![1])?;
        Err(sled_abort())
    });
    assert!(r.is_err());
    assert!(other.get(Trees::DELIVERIES, "t").unwrap().is_none());
    assert!(other.get(Trees::BASELINES, "k").unwrap().is_none());
    s.atomically(&trees, |tx| {
        tx.tree(Trees::DELIVERIES)?.remove("a")?;
        tx.tree(Trees::BASELINES)?.insert("k", &vec![2])
    })
    .unwrap();
    assert!(other.get(Trees::DELIVERIES, "a").unwrap().is_none());
    assert_eq!(other.get(Trees::BASELINES, "k").unwrap(), Some(vec![2]));
    // A tree the transaction was not begun with is refused, as in sled.
    let outside = s.atomically(&trees, |tx| tx.tree(Trees::QUEUE).map(|_| ()));
    assert!(
        matches!(
            outside,
            Err(guard::store::StoreError::NotInTransaction("queue"))
        ),
        "{outside:?}"
    );

    // A plugin's own tree.
    let kv = s.plugin_kv("p").unwrap();
    kv.set(b"k1", b"v1").unwrap();
    kv.set(b"k2", b"v2").unwrap();
    kv.set(b"j", b"x").unwrap();
    let theirs = other.plugin_kv("p").unwrap();
    assert_eq!(theirs.get(b"k1").unwrap().unwrap(), b"v1");
    assert_eq!(
        theirs.keys(b"k", 10).unwrap(),
        [b"k1".to_vec(), b"k2".to_vec()]
    );
    theirs.delete(b"k1").unwrap();
    assert!(kv.get(b"k1").unwrap().is_none());
    assert!(other.plugin_kv("q").unwrap().get(b"k2").unwrap().is_none());
}

fn sled_abort() -> guard::store::TxError {
    guard::store::TxError::Abort(guard::store::StoreError::Pg("stop".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_claim_the_same_event_and_leases_run_out() {
    let Some(pg) = PgServer::start().await else {
        return;
    };
    let (a, b) = two_replicas(&pg, "claims").await;
    let qa = Queue::open(&a).unwrap();
    let qb = Queue::open(&b).unwrap();
    let events: Vec<EventKind> = (1..=120).map(failed).collect();
    let parsed = Parsed {
        delivery: "d".into(),
        events,
        ignored: None,
    };
    let Accepted(ids) = accepted(qa.accept(&parsed).await.unwrap());
    assert_eq!(ids.len(), 120);
    // The same facts through the other replica are duplicates.
    let again = Parsed {
        delivery: "d2".into(),
        ..parsed.clone()
    };
    assert_eq!(
        qb.accept(&again).await.unwrap(),
        guard::daemon::queue::Accepted::Duplicate
    );

    // Both claim in small bites, at the same time, until nothing is left.
    let claim_all = |q: Queue, owner: &'static str| {
        tokio::task::spawn_blocking(move || {
            let mut got = Vec::new();
            loop {
                let c = q.claim(owner, 60_000, &HashSet::new(), 3).unwrap();
                if c.is_empty() {
                    return got;
                }
                got.extend(c.into_iter().map(|e| e.id));
            }
        })
    };
    let (ga, gb) = tokio::join!(claim_all(qa.clone(), "a"), claim_all(qb.clone(), "b"));
    let (ga, gb) = (ga.unwrap(), gb.unwrap());
    let sa: HashSet<u64> = ga.iter().copied().collect();
    let sb: HashSet<u64> = gb.iter().copied().collect();
    assert!(sa.is_disjoint(&sb), "an event claimed by both replicas");
    assert_eq!(sa.len() + sb.len(), 120, "every event claimed once");
    assert_eq!(ga.len() + gb.len(), 120);

    // A live replica renews; a dead one's claims run out and go to the other.
    let first = *ga.first().unwrap_or_else(|| gb.first().unwrap());
    let owner = if sa.contains(&first) { "a" } else { "b" };
    assert!(qa.renew(first, owner, 60_000).unwrap());
    assert!(!qa.renew(first, "somebody-else", 60_000).unwrap());
    let short = qb.claim("c", 100, &HashSet::new(), 10).unwrap();
    assert!(short.is_empty(), "every claim is still held");
    // Replica "a" dies: its leases are set to run out now.
    for id in &ga {
        qa.renew(*id, "a", 0).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let taken = qb.claim("b", 60_000, &HashSet::new(), 500).unwrap();
    let taken: HashSet<u64> = taken.into_iter().map(|e| e.id).collect();
    assert_eq!(taken, sa, "the dead replica's events, and only those");

    // Completion on one replica is seen by the other.
    qb.complete(&JobRecord {
        id: first,
        outcome: "passed".into(),
        processed_ms: guard::store::now_ms(),
        ..JobRecord::default()
    })
    .await
    .unwrap();
    assert_eq!(qa.job(first).unwrap().unwrap().outcome, "passed");
    assert_eq!(qa.depth(), 119);
}

struct Accepted(Vec<u64>);

fn accepted(a: guard::daemon::queue::Accepted) -> Accepted {
    match a {
        guard::daemon::queue::Accepted::Queued(ids) => Accepted(ids),
        other => panic!("not queued: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_recorded_by_two_replicas_at_once_all_count() {
    let Some(pg) = PgServer::start().await else {
        return;
    };
    let (a, b) = two_replicas(&pg, "counts").await;
    let record = |s: Store| {
        tokio::task::spawn_blocking(move || {
            for i in 0..100 {
                guard::heal::stats::record(&s, Category::Network, "retry", i % 4 != 0).unwrap();
                guard::heal::breaker::record(&s, "o/r\u{1f}j\u{1f}retry", true).unwrap();
                guard::heal::budget::spend(&s, "o/r", "j", "c").unwrap();
            }
        })
    };
    let (x, y) = tokio::join!(record(a.clone()), record(b.clone()));
    x.unwrap();
    y.unwrap();
    let o = guard::heal::stats::get(&a, Category::Network, "retry").unwrap();
    assert_eq!((o.successes, o.failures), (150, 50));
    assert_eq!(
        guard::heal::breaker::get(&b, "o/r\u{1f}j\u{1f}retry")
            .unwrap()
            .successes,
        200
    );
    let budgets = guard::heal::budget::all_jobs(&a).unwrap();
    assert_eq!(budgets, [("o/r".into(), "j".into(), "c".into(), 200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_learned_on_one_replica_is_heard_by_the_other() {
    let Some(pg) = PgServer::start().await else {
        return;
    };
    let (a, b) = two_replicas(&pg, "notify").await;
    let mut heard = b.subscribe();
    let rule = Rule {
        id: "learned.shared".into(),
        category: Category::Network,
        failure_type: "network.reset".into(),
        pattern: "connection reset by peer".into(),
        unless: None,
        confidence: 0.9,
        remedies: vec!["retry".into()],
        description: String::new(),
    };
    // The other replica's listening connection may still be starting:
    // store the rule until its change is heard (an empty name is the
    // listener saying it (re)connected).
    let heard_rules = async {
        loop {
            let writer = a.clone();
            let rule = rule.clone();
            tokio::task::spawn_blocking(move || {
                guard::learn::rules::put(&writer, rule, "test", "here", None, None).unwrap()
            })
            .await
            .unwrap();
            let wait = tokio::time::sleep(Duration::from_millis(500));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    m = heard.recv() => if m.unwrap() == Trees::RULES.name() { return },
                    _ = &mut wait => break,
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), heard_rules)
        .await
        .expect("the other replica hears of the change");
    let rules = guard::learn::rules::all(&b).unwrap();
    assert_eq!(rules[0].rule.id, "learned.shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_or_an_unreachable_server_is_a_clear_error() {
    let e = Store::connect("mysql://x").unwrap_err().to_string();
    assert!(e.contains("PostgreSQL"), "{e}");
    // Nothing listens on port 1; the password is never shown.
    let e = tokio::task::spawn_blocking(|| {
        Store::connect("postgres://guard:hunter2@127.0.0.1:1/guard")
            .unwrap_err()
            .to_string()
    })
    .await
    .unwrap();
    assert!(e.contains("127.0.0.1:1"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_server_is_gone_says_so_and_recovers_nothing_silently() {
    let Some(pg) = PgServer::start().await else {
        return;
    };
    let url = pg.fresh_database("gone");
    let s = tokio::task::spawn_blocking(move || Store::connect(&url).unwrap())
        .await
        .unwrap();
    s.ping().unwrap();
    s.put(Trees::DELIVERIES, "d", &1).unwrap();
    drop(pg);
    // Readiness (/readyz) fails, and so does every read and write: an
    // error, never a default that would look like an empty queue.
    let s2 = s.clone();
    let (ping, get, put) = tokio::task::spawn_blocking(move || {
        (
            s2.ping(),
            s2.get(Trees::DELIVERIES, "d"),
            s2.put(Trees::DELIVERIES, "e", &2),
        )
    })
    .await
    .unwrap();
    assert!(ping.is_err());
    assert!(get.is_err(), "{get:?}");
    assert!(put.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_postgresql_is_verified_against_the_configured_ca() {
    let Some((pg, ca)) = tokio::task::spawn_blocking(PgServer::start_tls_blocking)
        .await
        .unwrap()
    else {
        return;
    };
    let url = format!("{}?sslmode=require", pg.url());
    let (u, c) = (url.clone(), ca.clone());
    let s = tokio::task::spawn_blocking(move || Store::connect_with(&u, Some(&c)).unwrap())
        .await
        .unwrap();
    s.put(Trees::DELIVERIES, "over-tls", &1).unwrap();
    // Every connection guard made is encrypted.
    let ssl = pg.psql(
        "guard",
        "select bool_and(s.ssl) from pg_stat_ssl s join pg_stat_activity a using (pid) where a.application_name = 'guard'",
    );
    assert_eq!(ssl, "t");
    // A certificate nothing vouches for is refused, not used in the clear.
    let u = url.clone();
    let e = tokio::task::spawn_blocking(move || Store::connect_with(&u, None).unwrap_err())
        .await
        .unwrap()
        .to_string();
    assert!(e.contains("certificate"), "{e}");
    // A CA file that holds no certificate is a configuration error.
    let empty = pg.dir().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let e = Store::connect_with(&url, Some(&empty))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ca_file") && e.contains("no PEM certificate"),
        "{e}"
    );
}
