//! Log store tests: append / truncate / purge / vote across reopen, and
//! openraft's own storage conformance suite.

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::{EntryPayload, RaftLogReader, StorageError};

use std::sync::atomic::Ordering;

use super::LogStore;
use crate::raft::state_machine::StateMachine;
use crate::raft::{Entry, LogId, TypeConfig, Vote};

fn log_id(term: u64, index: u64) -> LogId {
    openraft::LogId::new(openraft::impls::leader_id_adv::LeaderId { term, node_id: 1 }, index)
}

fn blank(term: u64, index: u64) -> Entry {
    Entry { log_id: log_id(term, index), payload: EntryPayload::Blank }
}

async fn append(store: &mut LogStore, entries: Vec<Entry>) {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(entries, IOFlushed::<TypeConfig>::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

#[tokio::test]
async fn vote_and_entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        let vote = Vote::new(3, 7);
        store.save_vote(&vote).await.unwrap();
        append(&mut store, (1..=10).map(|i| blank(1, i)).collect()).await;
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 7)));
    let entries = store.try_get_log_entries(1..=10).await.unwrap();
    assert_eq!(indexes(&entries), (1..=10).collect::<Vec<_>>());
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 10)));
}

#[tokio::test]
async fn truncate_and_purge_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, (1..=20).map(|i| blank(1, i)).collect()).await;
        store.truncate_after(Some(log_id(1, 15))).await.unwrap();
        append(&mut store, (16..=18).map(|i| blank(2, i)).collect()).await;
        store.purge(log_id(1, 5)).await.unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(2, 18)));
    let entries = store.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(indexes(&entries), (6..=18).collect::<Vec<_>>());
    assert_eq!(entries.last().unwrap().log_id, log_id(2, 18));
}

#[tokio::test]
async fn purge_past_the_end_then_append() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, (1..=3).map(|i| blank(1, i)).collect()).await;
        // Installing a snapshot at 100 purges past everything held.
        store.purge(log_id(1, 100)).await.unwrap();
        append(&mut store, (101..=102).map(|i| blank(1, i)).collect()).await;
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    let entries = store.try_get_log_entries(0..1000).await.unwrap();
    assert_eq!(indexes(&entries), vec![101, 102]);
}

#[tokio::test]
async fn committed_hint_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, (1..=3).map(|i| blank(1, i)).collect()).await;
        store.save_committed(Some(log_id(1, 2))).await.unwrap();
        // Make sure the writer processed the hint before closing.
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 2)));
}

#[tokio::test]
async fn a_followers_append_is_durable_when_the_call_returns() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.set_following(true);
        let status = store.status().clone();
        let fsyncs = || status.fsyncs.load(Ordering::SeqCst);
        let before = fsyncs();
        let (tx, _rx) = TypeConfig::oneshot();
        store.append((1..=10).map(|i| blank(1, i)).collect::<Vec<_>>(), IOFlushed::signal(tx)).await.unwrap();
        assert_eq!(fsyncs(), before + 1, "written and fsynced on the calling thread");
        // Thread-side commands and inline appends and hints, interleaved.
        store.truncate_after(Some(log_id(1, 5))).await.unwrap();
        append(&mut store, (6..=8).map(|i| blank(2, i)).collect()).await;
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        store.purge(log_id(1, 2)).await.unwrap();
        store.save_committed(Some(log_id(2, 7))).await.unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 7)));
    let entries = store.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(indexes(&entries), (3..=8).collect::<Vec<_>>());
    assert_eq!(entries.last().unwrap().log_id, log_id(2, 8));
}

// Appends alternate between the thread and the caller's thread, without
// waiting for one to be durable before making the next: the inline path must
// never overtake an append still queued for the thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_switching_threads_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        let mut flushed = Vec::new();
        for i in 1..=300 {
            store.set_following(i % 3 != 0);
            let (tx, rx) = TypeConfig::oneshot();
            store.append(vec![blank(1, i)], IOFlushed::signal(tx)).await.unwrap();
            flushed.push(rx);
        }
        for rx in flushed {
            rx.await.unwrap().unwrap();
        }
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    let entries = store.try_get_log_entries(0..1000).await.unwrap();
    assert_eq!(indexes(&entries), (1..=300).collect::<Vec<_>>());
}

/// Builds a fresh log store + state machine in a temporary directory for
/// openraft's storage conformance suite.
struct DiskStoreBuilder {
    following: bool,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for DiskStoreBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogStore::open(&dir.path().join("log")).expect("open log");
        log.set_following(self.following);
        let sm = StateMachine::open(&dir.path().join("snapshots")).expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_conformance_suite() {
    Suite::test_all(DiskStoreBuilder { following: false }).await.expect("openraft storage suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_conformance_suite_as_a_follower() {
    Suite::test_all(DiskStoreBuilder { following: true }).await.expect("openraft storage suite");
}
