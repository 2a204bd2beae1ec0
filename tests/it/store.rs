//! The store conformance suite: every operation, on both backends, against a real Redis.

use std::{sync::Arc, time::Duration};

use helpdesk_bridge::{
    ids::{
        AgentId, Approver, CardId, ChannelId, EnterpriseId, MessageTs, TeamId, ThreadKey, TicketKey, TicketName,
        UserId, WorkspaceId,
    },
    model::{
        Actor, Card, CardState, ChannelRef, ChannelSettings, Decision, HistoryEntry, HistoryEvent, Installation, Owner,
        ProposedCommand, Rating, RelayMode, TicketRecord, TicketStatus,
    },
    store::{
        CreateOutcome, DecideOutcome, HISTORY_CAP, ListQuery, Lock, Store, StoreError, SubmitOutcome, Viewer,
        seal::Sealer,
    },
};

use crate::support::{
    eventually, on_both_stores,
    redis::{PrivateRedis, redis_url, unique_prefix},
    store::TestStore,
};

on_both_stores!(
    locks_are_renewed_only_by_their_holder,
    card_versions_and_sends_are_compare_and_set,
    marks_are_set_if_absent_and_expire,
    concurrent_marks_have_exactly_one_winner,
    ratings_are_claimed_once_and_given_back,
    the_streaming_probe_is_claimed_once_per_workspace,
    locks_exclude_expire_and_release_only_their_own,
    tickets_map_both_ways_and_only_once,
    concurrent_ticket_creation_has_one_winner,
    ticket_updates_move_status_indexes,
    deleting_a_ticket_removes_every_trace,
    a_moved_thread_keeps_its_earlier_tickets_until_deleted,
    relayed_marks_name_the_whole_ticket,
    installations_are_found_by_workspace_then_organisation,
    listing_filters_orders_and_pages,
    listing_shows_a_ticket_only_to_who_can_see_its_thread,
    card_decisions_are_recorded_until_submission,
    two_person_approvals_count_different_people_even_on_old_cards,
    open_cards_are_listed_oldest_first_until_they_close,
    the_approval_trail_outlives_the_capped_timeline,
    concurrent_clicks_submit_a_card_exactly_once,
    a_new_card_supersedes_the_open_one,
    history_appends_in_order_and_is_capped,
    channel_settings_round_trip,
);

fn thread(n: usize) -> ThreadKey {
    ThreadKey {
        team: TeamId::new("T1"),
        channel: ChannelId::new("C1"),
        thread_ts: MessageTs::new(format!("1700000000.{n:06}")),
    }
}

fn ticket_key(n: usize) -> TicketKey {
    TicketKey {
        host: "https://acme.duplocloud.net".to_owned(),
        workspace: WorkspaceId::new("65f0c0ffee0000000000abcd"),
        ticket: TicketName::new(format!("DEVOPS-{n}")),
    }
}

fn record(n: usize) -> TicketRecord {
    TicketRecord {
        thread: thread(n),
        ticket: ticket_key(n),
        title: format!("Pods crash-looping in ns-{n}"),
        agent_id: AgentId::new("agent-1"),
        agent_name: "k8s-agent".to_owned(),
        agent_streams: Some(true),
        requester: UserId::new("U1"),
        assignee: None,
        status: TicketStatus::Open,
        header_ts: None,
        permalink: None,
        participants: Vec::new(),
        adopted: false,
        always_allow: Vec::new(),
        previous: Vec::new(),
        created_at: 1_700_000_000_000 + n as i64,
        updated_at: 1_700_000_000_000 + n as i64,
    }
}

fn card(id: &str, ticket: usize, commands: &[&str]) -> Card {
    Card {
        id: CardId::new(id),
        ticket: ticket_key(ticket),
        thread: thread(ticket),
        messages: vec![MessageTs::new("1700000001.000100")],
        commands: commands
            .iter()
            .map(|c| ProposedCommand::new(Default::default(), String::new(), (*c).to_owned()))
            .collect(),
        state: CardState::Open,
        created_at: 1,
        version: 0,
        sent: false,
        submitted_by: None,
        submitted_at: None,
    }
}

async fn marks_are_set_if_absent_and_expire(store: &Store) {
    assert!(store.mark_once("evt:Ev1", Duration::from_secs(3600)).await.unwrap());
    assert!(!store.mark_once("evt:Ev1", Duration::from_secs(3600)).await.unwrap(), "second mark must lose");

    assert!(store.mark_once("evt:short", Duration::from_millis(150)).await.unwrap());
    let expired = eventually(Duration::from_secs(5), || async {
        store.mark_once("evt:short", Duration::from_secs(60)).await.unwrap().then_some(())
    })
    .await;
    assert!(expired.is_some(), "a mark must expire after its TTL");
}

async fn ratings_are_claimed_once_and_given_back(store: &Store) {
    let (reply, ann, bob) = (MessageTs::new("1700000000.000200"), UserId::new("U1"), UserId::new("U2"));
    assert!(store.claim_feedback(&thread(1), &reply, &ann, Rating::Positive).await.unwrap());
    assert!(!store.claim_feedback(&thread(1), &reply, &ann, Rating::Positive).await.unwrap(), "the same rating again");
    assert!(store.claim_feedback(&thread(1), &reply, &ann, Rating::Negative).await.unwrap(), "a change of mind");
    assert!(store.claim_feedback(&thread(1), &reply, &bob, Rating::Positive).await.unwrap(), "someone else");
    let other_reply = MessageTs::new("1700000000.000300");
    assert!(store.claim_feedback(&thread(1), &other_reply, &ann, Rating::Positive).await.unwrap(), "another reply");
    store.release_feedback(&thread(1), &reply, &ann, Rating::Positive).await.unwrap();
    assert!(
        store.claim_feedback(&thread(1), &reply, &ann, Rating::Positive).await.unwrap(),
        "given back, claimed again"
    );
    assert!(!store.claim_feedback(&thread(1), &reply, &bob, Rating::Positive).await.unwrap(), "others stay claimed");
}

async fn the_streaming_probe_is_claimed_once_per_workspace(store: &Store) {
    let (team, other) = (TeamId::new("T1"), TeamId::new("T2"));
    assert!(store.claim_streaming_probe(&team).await.unwrap(), "the first replica probes");
    assert!(!store.claim_streaming_probe(&team).await.unwrap(), "the next does not");
    assert!(store.claim_streaming_probe(&other).await.unwrap(), "another workspace probes for itself");
}

async fn concurrent_marks_have_exactly_one_winner(store: &Store) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.mark_once("msg:T1:C1:1.2", Duration::from_secs(60)).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn locks_exclude_expire_and_release_only_their_own(store: &Store) {
    let (opening, turn) = (thread(1), ticket_key(1));
    let first = store.try_lock(Lock::Open(&opening), Duration::from_secs(30)).await.unwrap().expect("free lock");
    assert!(store.try_lock(Lock::Open(&opening), Duration::from_secs(30)).await.unwrap().is_none());
    store.unlock(&first).await.unwrap();
    let second = store.try_lock(Lock::Open(&opening), Duration::from_secs(30)).await.unwrap().expect("released");
    // The first holder's stale guard must not release the second holder's lock.
    store.unlock(&first).await.unwrap();
    assert!(store.try_lock(Lock::Open(&opening), Duration::from_secs(30)).await.unwrap().is_none());
    store.unlock(&second).await.unwrap();

    let _short = store.try_lock(Lock::Turn(&turn), Duration::from_millis(150)).await.unwrap().expect("free");
    let retaken = eventually(Duration::from_secs(5), || async {
        store.try_lock(Lock::Turn(&turn), Duration::from_secs(30)).await.unwrap()
    })
    .await;
    assert!(retaken.is_some(), "an abandoned lock must expire");
}

async fn locks_are_renewed_only_by_their_holder(store: &Store) {
    let (renewed, lost) = (ticket_key(1), ticket_key(2));
    let guard = store.try_lock(Lock::Turn(&renewed), Duration::from_millis(300)).await.unwrap().expect("free");
    // Renewed well before it would expire, it outlives its first time to live.
    assert!(store.extend_lock(&guard, Duration::from_secs(30)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(store.try_lock(Lock::Turn(&renewed), Duration::from_secs(30)).await.unwrap().is_none(), "still held");
    store.unlock(&guard).await.unwrap();
    // A lock that expired and was taken by someone else is not the old holder's to renew.
    let old = store.try_lock(Lock::Turn(&lost), Duration::from_millis(100)).await.unwrap().expect("free");
    let new = eventually(Duration::from_secs(5), || async {
        store.try_lock(Lock::Turn(&lost), Duration::from_secs(30)).await.unwrap()
    })
    .await
    .expect("taken after expiry");
    assert!(!store.extend_lock(&old, Duration::from_secs(30)).await.unwrap());
    store.unlock(&new).await.unwrap();
}

async fn card_versions_and_sends_are_compare_and_set(store: &Store) {
    let c = card("cv", 4, &["a", "b"]);
    store.put_card(&c).await.unwrap();
    let alice = UserId::new("UALICE");
    let DecideOutcome::Decided(after) =
        store.decide_seen(&c.id, 0, Decision::Approve, &alice, 1, Some(0)).await.unwrap()
    else {
        panic!("decided at the version seen");
    };
    assert_eq!(after.version, 1);
    // A decision or a submission from the older rendering changes nothing.
    assert!(matches!(
        store.decide_seen(&c.id, 1, Decision::Approve, &alice, 2, Some(0)).await.unwrap(),
        DecideOutcome::Changed(current) if current.version == 1
    ));
    assert!(matches!(store.submit_seen(&c.id, &alice, 3, 0).await.unwrap(), SubmitOutcome::Changed(_)));
    assert!(matches!(store.submit_seen(&c.id, &alice, 3, 1).await.unwrap(), SubmitOutcome::Submitted(_)));
    // One claim to send, ever; a release (the send certainly failed) allows one more.
    assert!(store.claim_card_send(&c.id).await.unwrap());
    assert!(!store.claim_card_send(&c.id).await.unwrap());
    assert!(store.release_card_send(&c.id).await.unwrap());
    assert!(store.claim_card_send(&c.id).await.unwrap());
    assert!(store.card(&c.id).await.unwrap().unwrap().sent);
}

async fn tickets_map_both_ways_and_only_once(store: &Store) {
    let rec = record(1);
    assert_eq!(store.create_ticket(&rec).await.unwrap(), CreateOutcome::Created);
    assert_eq!(store.ticket_by_thread(&rec.thread).await.unwrap(), Some(rec.clone()));
    assert_eq!(store.ticket_by_thread(&thread(2)).await.unwrap(), None);

    let mut other = record(1);
    other.ticket = ticket_key(99);
    assert_eq!(store.create_ticket(&other).await.unwrap(), CreateOutcome::Exists(Box::new(rec.clone())));
    let listed = store.list_tickets(&TeamId::new("T1"), &ListQuery { limit: 50, ..Default::default() }).await.unwrap();
    assert_eq!(listed.tickets, vec![rec], "a losing create writes nothing");
}

async fn concurrent_ticket_creation_has_one_winner(store: &Store) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rec = record(7);
                rec.ticket = ticket_key(700 + i);
                store.create_ticket(&rec).await.unwrap()
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.unwrap() == CreateOutcome::Created);
    }
    assert_eq!(created, 1);
    let page = store.list_tickets(&TeamId::new("T1"), &ListQuery { limit: 50, ..Default::default() }).await.unwrap();
    assert_eq!(page.tickets.len(), 1, "the index holds the thread once");
}

async fn ticket_updates_move_status_indexes(store: &Store) {
    let rec = record(3);
    store.create_ticket(&rec).await.unwrap();
    let updated = store
        .update_ticket(&rec.thread, |r| {
            r.status = TicketStatus::Pending;
            r.assignee = Some(UserId::new("U2"));
            true
        })
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(updated.status, TicketStatus::Pending);
    assert!(updated.updated_at >= rec.updated_at);
    assert_eq!(store.ticket_by_thread(&rec.thread).await.unwrap().unwrap().assignee, Some(UserId::new("U2")));

    let team = TeamId::new("T1");
    let open = store
        .list_tickets(&team, &ListQuery { status: Some(TicketStatus::Open), limit: 10, ..Default::default() })
        .await
        .unwrap();
    let pending = store
        .list_tickets(&team, &ListQuery { status: Some(TicketStatus::Pending), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert!(open.tickets.is_empty());
    assert_eq!(pending.tickets.len(), 1);

    let untouched = store.update_ticket(&rec.thread, |_| false).await.unwrap().unwrap();
    assert_eq!(untouched, updated, "declining to write leaves the record as it was");
    assert!(store.update_ticket(&thread(404), |_| true).await.unwrap().is_none());
}

async fn a_moved_thread_keeps_its_earlier_tickets_until_deleted(store: &Store) {
    let rec = record(6);
    store.create_ticket(&rec).await.unwrap();
    let entry = HistoryEntry { at: 1, actor: Actor::Bridge, event: HistoryEvent::Created { title: rec.title.clone() } };
    store.append_history(&rec.ticket, &entry).await.unwrap();
    // The thread moves to another portal's ticket of the same name: found by either name.
    let elsewhere = TicketKey { host: "https://qa.duplocloud.net".to_owned(), ..rec.ticket.clone() };
    let moved = store
        .update_ticket(&rec.thread, |r| {
            r.previous.push(r.ticket.clone());
            r.ticket = elsewhere.clone();
            true
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.previous, std::slice::from_ref(&rec.ticket));
    assert_eq!(
        store.history(&rec.ticket).await.unwrap(),
        std::slice::from_ref(&entry),
        "the old ticket's history stays"
    );
    let query = ListQuery { text: Some("devops-6".to_owned()), limit: 10, ..Default::default() };
    let found = store.list_tickets(&TeamId::new("T1"), &query).await.unwrap();
    assert_eq!(found.tickets.len(), 1);
    store.delete_ticket(&rec.thread).await.unwrap();
    assert!(store.history(&rec.ticket).await.unwrap().is_empty(), "nothing names the old ticket any more");
}

const SEAL_KEY: &str = "8f3a0c5e1b2d4f6a8c0e1a3b5d7f9e2c4a6b8d0f1e3c5a7b9d2f4e6a8c0b1d3e";

fn installation(owner: Owner, enterprise: Option<&str>, token: &str) -> Installation {
    Installation {
        owner,
        enterprise: enterprise.map(EnterpriseId::new),
        bot_token: token.to_owned().into(),
        bot_user: UserId::new("UBOT2"),
        bot_id: Some("B2".to_owned()),
        scopes: vec!["chat:write".to_owned(), "app_mentions:read".to_owned()],
        installer: Some(UserId::new("U9")),
        installed_at: 1_700_000_000_000,
    }
}

async fn installations_are_found_by_workspace_then_organisation(store: &Store) {
    use secrecy::ExposeSecret;
    let sealer = Sealer::from_hex(SEAL_KEY).unwrap();
    let (t2, e1) = (TeamId::new("T2"), EnterpriseId::new("E1"));
    assert!(store.installation_for(&t2, Some(&e1), &sealer).await.unwrap().is_none());
    // An org-wide install serves every workspace of its organisation...
    store
        .put_installation(&installation(Owner::Enterprise(e1.clone()), Some("E1"), "xoxb-org"), &sealer)
        .await
        .unwrap();
    let found = store.installation_for(&t2, Some(&e1), &sealer).await.unwrap().unwrap();
    assert_eq!((found.owner.clone(), found.bot_token.expose_secret()), (Owner::Enterprise(e1.clone()), "xoxb-org"));
    assert!(store.installation_for(&t2, None, &sealer).await.unwrap().is_none(), "not a workspace outside it");
    // ...unless the workspace installed the app itself; a reinstall replaces the token.
    store.put_installation(&installation(Owner::Team(t2.clone()), Some("E1"), "xoxb-old"), &sealer).await.unwrap();
    store.put_installation(&installation(Owner::Team(t2.clone()), Some("E1"), "xoxb-t2"), &sealer).await.unwrap();
    let found = store.installation_for(&t2, Some(&e1), &sealer).await.unwrap().unwrap();
    assert_eq!(found.bot_token.expose_secret(), "xoxb-t2");
    assert_eq!((found.bot_user.as_str(), found.scopes.len(), found.installer), ("UBOT2", 2, Some(UserId::new("U9"))));
    assert_eq!(store.installation_owners().await.unwrap().len(), 2, "the organisation and the workspace, each once");
    // Another key opens nothing.
    let other = Sealer::from_hex(&SEAL_KEY.replace('8', "9")).unwrap();
    assert!(matches!(store.installation_for(&t2, None, &other).await, Err(StoreError::Sealed(_))));
    // Uninstalled: gone, and the organisation's serves the workspace again.
    // An uninstall from before the last install leaves it; a later one removes it.
    assert!(!store.remove_installation(&Owner::Team(t2.clone()), 1_700_000_000_000).await.unwrap());
    assert!(store.remove_installation(&Owner::Team(t2.clone()), 1_700_000_000_001).await.unwrap());
    assert!(!store.remove_installation(&Owner::Team(t2.clone()), i64::MAX).await.unwrap());
    let found = store.installation_for(&t2, Some(&e1), &sealer).await.unwrap().unwrap();
    assert_eq!(found.bot_token.expose_secret(), "xoxb-org");
    assert_eq!(store.installation_owners().await.unwrap(), [Owner::Enterprise(e1)]);
}

#[tokio::test]
async fn installation_tokens_are_sealed_at_rest_on_both_backends() {
    let sealer = Sealer::from_hex(SEAL_KEY).unwrap();
    let token = "xoxb-1111-2222-at-rest-check";
    // Redis: every value under the prefix, read raw.
    let prefix = crate::support::redis::unique_prefix();
    let store = Store::redis(&crate::support::redis::redis_url(), &prefix).unwrap();
    store.put_installation(&installation(Owner::Team(TeamId::new("T7")), None, token), &sealer).await.unwrap();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}install:team:T7");
    let raw: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
    assert!(!raw.is_empty(), "the installation is stored under {key}");
    assert!(!String::from_utf8_lossy(&raw).contains(token), "the token is not stored in clear");
    store.purge().await.unwrap();
    // Embedded: the store's files, read raw; a setting stored in clear is found, the token not.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::embedded(dir.path()).unwrap();
    store.put_installation(&installation(Owner::Team(TeamId::new("T7")), None, token), &sealer).await.unwrap();
    let marker = "settings-in-clear-marker";
    let channel = ChannelRef { team: TeamId::new("T7"), channel: ChannelId::new("C1") };
    let settings = ChannelSettings { workspace_name: Some(marker.to_owned()), ..ChannelSettings::default() };
    store.set_channel_settings(&channel, &settings).await.unwrap();
    drop(store);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains(marker), "the scan reads what the store wrote");
    assert!(!contains(token), "the token is not stored in clear");
}

async fn relayed_marks_name_the_whole_ticket(store: &Store) {
    let rec = record(7);
    let ts = MessageTs::new("1700000007.000200");
    store.note_relayed(&rec.thread, &ts, &rec.ticket).await.unwrap();
    assert!(store.relayed_to(&rec.thread, &ts, &rec.ticket).await.unwrap());
    let same_name_elsewhere = TicketKey { host: "https://qa.duplocloud.net".to_owned(), ..rec.ticket.clone() };
    assert!(!store.relayed_to(&rec.thread, &ts, &same_name_elsewhere).await.unwrap());
    assert!(!store.relayed_to(&rec.thread, &MessageTs::new("1700000007.000300"), &rec.ticket).await.unwrap());
}

async fn deleting_a_ticket_removes_every_trace(store: &Store) {
    let rec = record(4);
    store.create_ticket(&rec).await.unwrap();
    store.put_card(&card("c4", 4, &["ls"])).await.unwrap();
    store
        .append_history(
            &rec.ticket,
            &HistoryEntry { at: 1, actor: Actor::Bridge, event: HistoryEvent::Created { title: rec.title.clone() } },
        )
        .await
        .unwrap();
    assert_eq!(store.delete_ticket(&rec.thread).await.unwrap(), Some(rec.clone()));
    assert_eq!(store.ticket_by_thread(&rec.thread).await.unwrap(), None);
    assert_eq!(store.open_card(&rec.ticket).await.unwrap(), None);
    assert!(store.history(&rec.ticket).await.unwrap().is_empty());
    let page = store.list_tickets(&TeamId::new("T1"), &ListQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert!(page.tickets.is_empty());
    assert_eq!(store.delete_ticket(&rec.thread).await.unwrap(), None);
}

async fn listing_filters_orders_and_pages(store: &Store) {
    // 300 tickets; every third is pending; every tenth mentions "database"; U9 requested
    // every fifth.
    for n in 0..300 {
        let mut rec = record(n);
        if n % 10 == 0 {
            rec.title = format!("Database failover drill {n}");
        }
        if n % 5 == 0 {
            rec.requester = UserId::new("U9");
        }
        if n % 3 == 0 {
            rec.status = TicketStatus::Pending;
        }
        store.create_ticket(&rec).await.unwrap();
    }
    let team = TeamId::new("T1");

    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store.list_tickets(&team, &ListQuery { cursor, limit: 25, ..Default::default() }).await.unwrap();
        assert!(page.tickets.len() <= 25);
        seen.extend(page.tickets.iter().map(|t| t.updated_at));
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 300, "paging visits every ticket once");
    assert!(seen.windows(2).all(|w| w[0] >= w[1]), "most recently updated first");

    let pending = store
        .list_tickets(&team, &ListQuery { status: Some(TicketStatus::Pending), limit: 500, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(pending.tickets.len(), 100);
    assert!(pending.tickets.iter().all(|t| t.status == TicketStatus::Pending));

    let search = store
        .list_tickets(&team, &ListQuery { text: Some("DATABASE".to_owned()), limit: 500, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(search.tickets.len(), 30);
    let by_name = store
        .list_tickets(&team, &ListQuery { text: Some("devops-123".to_owned()), limit: 500, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(by_name.tickets.iter().map(|t| t.ticket.ticket.as_str()).collect::<Vec<_>>(), ["DEVOPS-123"]);

    let mine = store
        .list_tickets(
            &team,
            &ListQuery {
                involving: Some(UserId::new("U9")),
                status: Some(TicketStatus::Pending),
                text: Some("database".to_owned()),
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // n divisible by 10, 5 and 3: 0, 30, 60, …, 270.
    assert_eq!(mine.tickets.len(), 10);

    let other_team =
        store.list_tickets(&TeamId::new("T2"), &ListQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert!(other_team.tickets.is_empty());
}

async fn listing_shows_a_ticket_only_to_who_can_see_its_thread(store: &Store) {
    // 0..20 in C1 by U1; 20..40 in the private C2 by U2, U7 wrote in 25, U7 is assigned 30;
    // 40 in U9's DM.
    for n in 0..41 {
        let mut rec = record(n);
        if (20..40).contains(&n) {
            rec.thread.channel = ChannelId::new("C2");
            rec.requester = UserId::new("U2");
            rec.participants = vec![UserId::new("U2")];
        }
        if n == 25 {
            rec.participants.push(UserId::new("U7"));
        }
        if n == 30 {
            rec.assignee = Some(UserId::new("U7"));
        }
        if n == 40 {
            rec.thread.channel = ChannelId::new("D9");
            rec.requester = UserId::new("U9");
        }
        store.create_ticket(&rec).await.unwrap();
    }
    let newest_first = |ns: &[usize]| -> Vec<usize> { ns.iter().rev().copied().collect() };
    let c1: Vec<usize> = (0..20).collect();
    let c2: Vec<usize> = (20..40).collect();
    assert_eq!(visible_numbers(store, "U7", Some("C1")).await, newest_first(&[c1.clone(), vec![25, 30]].concat()));
    assert_eq!(
        visible_numbers(store, "U2", Some("C1")).await,
        newest_first(&[c1.clone(), c2.clone()].concat()),
        "their own"
    );
    assert_eq!(
        visible_numbers(store, "U9", Some("C1")).await,
        newest_first(&[c1.clone(), vec![40]].concat()),
        "their DM"
    );
    assert_eq!(
        visible_numbers(store, "U7", Some("C2")).await,
        newest_first(&c2),
        "a channel's tickets to who asks there"
    );
    assert_eq!(visible_numbers(store, "U7", None).await, [30, 25], "no channel: only their own");
    assert!(visible_numbers(store, "U8", Some("C3")).await.is_empty());
}

/// The numbers of the tickets `user` sees from `channel`, every page, in order.
async fn visible_numbers(store: &Store, user: &str, channel: Option<&str>) -> Vec<usize> {
    let viewer = Viewer { user: UserId::new(user), channel: channel.map(ChannelId::new) };
    let mut query = ListQuery { visible_to: Some(viewer), limit: 7, ..Default::default() };
    let mut numbers = Vec::new();
    loop {
        let page = store.list_tickets(&TeamId::new("T1"), &query).await.unwrap();
        assert!(page.tickets.len() <= 7);
        numbers
            .extend(page.tickets.iter().map(|t| t.ticket.ticket.as_str()["DEVOPS-".len()..].parse::<usize>().unwrap()));
        match page.next {
            Some(next) => query.cursor = next,
            None => return numbers,
        }
    }
}

async fn card_decisions_are_recorded_until_submission(store: &Store) {
    let c = card("c1", 1, &["kubectl get pods", "kubectl delete pod web-1"]);
    assert_eq!(store.put_card(&c).await.unwrap(), None);
    assert_eq!(store.open_card(&c.ticket).await.unwrap(), Some(c.clone()));

    let alice = UserId::new("UALICE");
    let DecideOutcome::Decided(after) = store.decide_seen(&c.id, 0, Decision::Approve, &alice, 10, None).await.unwrap()
    else {
        panic!("decision on an open card must be recorded")
    };
    assert_eq!(after.commands[0].decision, Decision::Approve);
    assert_eq!(after.commands[0].decided_by, Some(alice.clone()));
    let reject = Decision::Reject { reason: Some("not in prod".to_owned()) };
    store.decide_seen(&c.id, 1, Decision::Ignore, &alice, 11, None).await.unwrap();
    store.decide_seen(&c.id, 1, reject.clone(), &alice, 12, None).await.unwrap();
    assert!(matches!(
        store.decide_seen(&c.id, 7, Decision::Approve, &alice, 13, None).await.unwrap(),
        DecideOutcome::NoSuchCommand(_)
    ));

    let SubmitOutcome::Submitted(submitted) = store.submit(&c.id, &alice, 20).await.unwrap() else {
        panic!("first submission wins")
    };
    assert_eq!(submitted.state, CardState::Submitted);
    assert_eq!(submitted.commands[1].decision, reject);
    assert_eq!(store.open_card(&c.ticket).await.unwrap(), None, "a submitted card is no longer open");
    assert!(matches!(
        store.decide_seen(&c.id, 0, Decision::Ignore, &alice, 30, None).await.unwrap(),
        DecideOutcome::Closed(_)
    ));
    assert!(matches!(store.submit(&c.id, &alice, 31).await.unwrap(), SubmitOutcome::Closed(_)));
    assert_eq!(
        store.decide_seen(&CardId::new("nope"), 0, Decision::Approve, &alice, 1, None).await.unwrap(),
        DecideOutcome::Missing
    );
}

async fn two_person_approvals_count_different_people_even_on_old_cards(store: &Store) {
    // A card stored before the two-person rule: its command knows no `needs`.
    let mut c = card("c2p", 3, &["kubectl delete pod web-1"]);
    c.commands[0].needs = 0;
    store.put_card(&c).await.unwrap();
    let (ann, bob) = (UserId::new("UANN"), UserId::new("UBOB"));
    let approve = |by: UserId, at| {
        let id = c.id.clone();
        async move { store.decide_needing(&id, 0, (Decision::Approve, &by, at), None, 2).await.unwrap() }
    };
    let DecideOutcome::Decided(one) = approve(ann.clone(), 1).await else { panic!("the first approval counts") };
    assert_eq!((one.commands[0].decision.clone(), one.commands[0].needs), (Decision::Undecided, 2));
    assert!(matches!(approve(ann.clone(), 2).await, DecideOutcome::AlreadyApproved(_)), "once per person");
    let DecideOutcome::Decided(two) = approve(bob.clone(), 3).await else { panic!("the second approval counts") };
    assert_eq!(two.commands[0].decision, Decision::Approve);
    assert_eq!(two.commands[0].approvals.iter().map(|a| a.by.as_str()).collect::<Vec<_>>(), ["UANN", "UBOB"]);
    // Taking it back starts the count again.
    let DecideOutcome::Decided(undone) =
        store.decide_needing(&c.id, 0, (Decision::Undecided, &bob, 4), None, 2).await.unwrap()
    else {
        panic!("a change is recorded")
    };
    assert!(undone.commands[0].approvals.is_empty());
}

async fn open_cards_are_listed_oldest_first_until_they_close(store: &Store) {
    let at = |id: &str, ticket, created_at| Card { created_at, ..card(id, ticket, &["uptime"]) };
    let ids = |cards: Vec<Card>| cards.into_iter().map(|c| c.id.to_string()).collect::<Vec<_>>();
    for c in [at("young", 41, 9_000), at("old", 42, 1_000), at("middle", 43, 5_000)] {
        store.put_card(&c).await.unwrap();
    }
    assert_eq!(ids(store.open_cards_before(5_000, 10).await.unwrap()), ["old", "middle"]);
    assert_eq!(ids(store.open_cards_before(20_000, 2).await.unwrap()), ["old", "middle"], "at most `count`");
    assert!(store.open_cards_before(999, 10).await.unwrap().is_empty());
    // Submitted, superseded by a newer card of its ticket, or closed: no longer listed.
    store.submit(&CardId::new("old"), &UserId::new("U1"), 2).await.unwrap();
    store.put_card(&at("newer", 43, 6_000)).await.unwrap();
    assert_eq!(ids(store.open_cards_before(20_000, 10).await.unwrap()), ["newer", "young"]);
    store.supersede(&CardId::new("newer")).await.unwrap();
    assert_eq!(ids(store.open_cards_before(20_000, 10).await.unwrap()), ["young"]);
}

async fn the_approval_trail_outlives_the_capped_timeline(store: &Store) {
    let ticket = ticket_key(44);
    let entry = |at, event| HistoryEntry { at, actor: Actor::Bridge, event };
    store.append_history(&ticket, &entry(1, HistoryEvent::CardExpired { card: CardId::new("c1") })).await.unwrap();
    for at in 2..(HISTORY_CAP as i64 + 10) {
        store.append_history(&ticket, &entry(at, HistoryEvent::MessageRelayed)).await.unwrap();
    }
    let history = store.history(&ticket).await.unwrap();
    assert_eq!(history.len(), HISTORY_CAP);
    assert!(!history.iter().any(|e| e.event.is_approval()), "the busy timeline dropped it");
    let trail = store.approval_trail(&ticket).await.unwrap();
    assert_eq!(trail, [entry(1, HistoryEvent::CardExpired { card: CardId::new("c1") })]);
}

async fn concurrent_clicks_submit_a_card_exactly_once(store: &Store) {
    let c = card("c20", 2, &["a", "b", "c", "d"]);
    store.put_card(&c).await.unwrap();
    let store = Arc::new(store.clone());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let user = UserId::new(format!("U{i}"));
                store.decide_seen(&CardId::new("c20"), i % 4, Decision::Approve, &user, i as i64, None).await.unwrap();
                store.submit(&CardId::new("c20"), &user, 100 + i as i64).await.unwrap()
            })
        })
        .collect();
    let mut submitted = Vec::new();
    for task in tasks {
        if let SubmitOutcome::Submitted(card) = task.await.unwrap() {
            submitted.push(card);
        }
    }
    assert_eq!(submitted.len(), 1, "exactly one click submits");
    let stored = store.card(&CardId::new("c20")).await.unwrap().unwrap();
    assert_eq!(stored, submitted[0], "what was submitted is what is stored");
}

async fn a_new_card_supersedes_the_open_one(store: &Store) {
    let first = card("old", 5, &["ls"]);
    let second = card("new", 5, &["pwd"]);
    store.put_card(&first).await.unwrap();
    let superseded = store.put_card(&second).await.unwrap().expect("the old card is returned");
    assert_eq!(superseded.id, first.id);
    assert_eq!(superseded.state, CardState::Superseded);
    assert_eq!(store.card(&first.id).await.unwrap().unwrap().state, CardState::Superseded);
    assert_eq!(store.open_card(&first.ticket).await.unwrap().unwrap().id, second.id);
    let alice = UserId::new("U1");
    assert!(matches!(
        store.decide_seen(&first.id, 0, Decision::Approve, &alice, 1, None).await.unwrap(),
        DecideOutcome::Closed(_)
    ));
    assert!(matches!(store.supersede(&second.id).await.unwrap(), SubmitOutcome::Submitted(_)));
    assert_eq!(store.open_card(&first.ticket).await.unwrap(), None);
}

async fn history_appends_in_order_and_is_capped(store: &Store) {
    let ticket = ticket_key(6);
    for n in 0..(HISTORY_CAP + 10) {
        let entry = HistoryEntry {
            at: n as i64,
            actor: Actor::User(UserId::new("U1")),
            event: HistoryEvent::Comment { text: format!("note {n}") },
        };
        store.append_history(&ticket, &entry).await.unwrap();
    }
    let history = store.history(&ticket).await.unwrap();
    assert_eq!(history.len(), HISTORY_CAP);
    assert_eq!(history.first().unwrap().at, 10, "the oldest entries are trimmed");
    assert_eq!(history.last().unwrap().at, (HISTORY_CAP + 9) as i64);
    assert!(store.history(&ticket_key(7)).await.unwrap().is_empty());
}

async fn channel_settings_round_trip(store: &Store) {
    let channel = ChannelRef { team: TeamId::new("T1"), channel: ChannelId::new("C9") };
    assert_eq!(store.channel_settings(&channel).await.unwrap(), ChannelSettings::default());
    let settings = ChannelSettings {
        workspace: Some(WorkspaceId::new("ws1")),
        workspace_name: Some("devops".to_owned()),
        agent: Some(AgentId::new("a1")),
        agent_name: Some("k8s".to_owned()),
        relay_mode: RelayMode::Mentions,
        approvers: vec![Approver::parse("S123").expect("a group id")],
        command_allow: vec!["^kubectl get ".to_owned()],
        command_block: vec!["rm -rf".to_owned()],
        context_off: true,
        portal: Some("prod".to_owned()),
    };
    store.set_channel_settings(&channel, &settings).await.unwrap();
    assert_eq!(store.channel_settings(&channel).await.unwrap(), settings);
}

/// State written by one embedded store is there when the folder is opened again.
#[tokio::test]
async fn embedded_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::embedded(dir.path()).unwrap();
        store.create_ticket(&record(1)).await.unwrap();
        store.put_card(&card("c1", 1, &["ls"])).await.unwrap();
        assert!(store.mark_once("evt:E1", Duration::from_secs(3600)).await.unwrap());
    }
    let store = Store::embedded(dir.path()).unwrap();
    assert_eq!(store.ticket_by_thread(&thread(1)).await.unwrap(), Some(record(1)));
    assert_eq!(store.open_card(&ticket_key(1)).await.unwrap().unwrap().id, CardId::new("c1"));
    assert!(!store.mark_once("evt:E1", Duration::from_secs(3600)).await.unwrap(), "dedup marks persist too");
}

/// A second opener of the same folder gets a clear error instead of a second writer.
#[tokio::test]
async fn embedded_store_refuses_a_second_opener() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::embedded(dir.path()).unwrap();
    let err = Store::embedded(dir.path()).expect_err("the folder is in use");
    assert!(matches!(err, StoreError::Locked(_)), "{err:?}");
    assert!(err.to_string().contains("STATE_DIR"), "{err}");
}

/// Expired entries are swept from the embedded store's file, not only hidden.
#[tokio::test]
async fn embedded_sweeper_deletes_expired_marks() {
    let test = TestStore::embedded();
    for n in 0..10 {
        test.store.mark_once(&format!("evt:{n}"), Duration::from_millis(50)).await.unwrap();
    }
    test.store.mark_once("evt:keep", Duration::from_secs(3600)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(test.store.sweep_expired().await.unwrap(), 10);
    assert_eq!(test.store.sweep_expired().await.unwrap(), 0);
    assert!(!test.store.mark_once("evt:keep", Duration::from_secs(1)).await.unwrap());
}

/// A Redis that goes away makes calls fail fast with `Unavailable`; when it returns, the
/// same store handle works again without being rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_fast_and_recovers() {
    let server = PrivateRedis::start();
    let store = Store::redis(&server.url(), "outage:").unwrap();
    store.create_ticket(&record(1)).await.unwrap();

    let server = server.stop();
    let started = std::time::Instant::now();
    let err = store.ticket_by_thread(&thread(1)).await.expect_err("Redis is down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(store.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5), "failing took {:?}", started.elapsed());

    let server = server.restart();
    let recovered = eventually(Duration::from_secs(10), || async { store.ping().await.ok() }).await;
    assert!(recovered.is_some(), "the store reconnects by itself");
    // This private server keeps nothing on disk, so the data is gone, but writes work again.
    assert_eq!(store.create_ticket(&record(2)).await.unwrap(), CreateOutcome::Created);
    drop(server);
}

/// Keys the suite leaves behind would show up here; the prefix is unique per test.
#[tokio::test]
async fn purge_leaves_nothing_under_the_prefix() {
    let test = TestStore::redis().await;
    test.store.create_ticket(&record(1)).await.unwrap();
    test.store.mark_once("x", Duration::from_secs(60)).await.unwrap();
    test.store.purge().await.unwrap();
    assert_eq!(test.store.ticket_by_thread(&thread(1)).await.unwrap(), None);
    let page =
        test.store.list_tickets(&TeamId::new("T1"), &ListQuery { limit: 5, ..Default::default() }).await.unwrap();
    assert!(page.tickets.is_empty());
}

/// Writes durable state into an embedded store and checks it reads back. Run by itself it
/// is an ordinary test; `embedded_state_survives_kill_9` also runs it as a child process
/// (with `HB_CRASH_DIR` set), which then waits to be killed with SIGKILL.
#[tokio::test]
async fn embedded_writer_for_crash_test() {
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("HB_CRASH_DIR").map_or_else(|| temp.path().to_path_buf(), std::path::PathBuf::from);
    let store = Store::embedded(&dir).unwrap();
    store.create_ticket(&record(1)).await.unwrap();
    store.put_card(&card("crash", 1, &["kubectl get pods"])).await.unwrap();
    store.decide_seen(&CardId::new("crash"), 0, Decision::Approve, &UserId::new("U1"), 5, None).await.unwrap();
    assert_eq!(store.ticket_by_thread(&thread(1)).await.unwrap(), Some(record(1)));
    if std::env::var_os("HB_CRASH_DIR").is_some() {
        println!("READY");
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

/// A process killed with SIGKILL right after its writes leaves them readable, and while it
/// lived, a second process could not open the same folder.
#[test]
fn embedded_state_survives_kill_9() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["store::embedded_writer_for_crash_test", "--exact", "--nocapture", "--test-threads=1"])
        .env("HB_CRASH_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.is_ok_and(|l| l.contains("READY"))), "the child wrote its state");

    let err = Store::embedded(dir.path()).expect_err("the child holds the folder");
    assert!(matches!(err, StoreError::Locked(_)), "{err:?}");

    child.kill().unwrap();
    child.wait().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::embedded(dir.path()).expect("reopens after the crash");
        assert_eq!(store.ticket_by_thread(&thread(1)).await.unwrap(), Some(record(1)));
        let card = store.card(&CardId::new("crash")).await.unwrap().expect("the card survived");
        assert_eq!(card.commands[0].decision, Decision::Approve);
    });
}

/// Cards expire (90 days after their last change) so they cannot pile up; mappings do not.
#[tokio::test]
async fn redis_cards_expire_and_mappings_do_not() {
    let prefix = unique_prefix();
    let store = Store::redis(&redis_url(), &prefix).unwrap();
    store.create_ticket(&record(1)).await.unwrap();
    store.put_card(&card("ttl", 1, &["ls"])).await.unwrap();
    store.decide_seen(&CardId::new("ttl"), 0, Decision::Approve, &UserId::new("U1"), 1, None).await.unwrap();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let card_ttl: i64 = redis::cmd("PTTL").arg(format!("{prefix}card:ttl")).query_async(&mut conn).await.unwrap();
    let ninety_days = helpdesk_bridge::store::CARD_TTL.as_millis() as i64;
    assert!(card_ttl > ninety_days - 60_000 && card_ttl <= ninety_days, "card TTL {card_ttl} ms");
    let thread_ttl: i64 =
        redis::cmd("PTTL").arg(format!("{prefix}thread:{}", thread(1))).query_async(&mut conn).await.unwrap();
    assert_eq!(thread_ttl, -1, "a thread mapping never expires");
    store.purge().await.unwrap();
}
