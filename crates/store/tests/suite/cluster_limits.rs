//! Limits shared by the daemons of one store: model-call slots claimed with
//! compare-and-set under leases, and tier pauses that only ever extend.

use std::collections::BTreeSet;

use cadre_store::TierPause;
use tokio::task::JoinSet;

use super::common::temp_store;

const NOW: i64 = 1_000_000_000;
const LEASE: i64 = 30_000;

store_test! {
    #[tokio::test]
    async fn a_scope_hands_out_at_most_its_limit_and_takes_back_released_slots(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        store.ensure_call_slots("all", 3).await.unwrap();
        // Ensuring again (another daemon starting) keeps the rows and holders.
        let first = store.claim_call_slot("all", 3, "a", NOW, LEASE).await.unwrap();
        store.ensure_call_slots("all", 3).await.unwrap();
        let second = store.claim_call_slot("all", 3, "b", NOW, LEASE).await.unwrap();
        let third = store.claim_call_slot("all", 3, "a", NOW, LEASE).await.unwrap();
        let held: BTreeSet<i64> = [first, second, third].into_iter().flatten().collect();
        assert_eq!(held, BTreeSet::from([0, 1, 2]));
        assert_eq!(store.claim_call_slot("all", 3, "c", NOW, LEASE).await.unwrap(), None);
        assert_eq!(store.held_call_slots("all", NOW).await.unwrap(), 3);
        // Another scope is counted on its own.
        store.ensure_call_slots("tier:haiku", 1).await.unwrap();
        assert_eq!(
            store.claim_call_slot("tier:haiku", 1, "c", NOW, LEASE).await.unwrap(),
            Some(0)
        );
        // Only the holder frees a slot.
        let slot = second.unwrap();
        assert!(!store.release_call_slot("all", slot, "a").await.unwrap());
        assert!(store.release_call_slot("all", slot, "b").await.unwrap());
        assert!(!store.release_call_slot("all", slot, "b").await.unwrap());
        assert_eq!(
            store.claim_call_slot("all", 3, "c", NOW, LEASE).await.unwrap(),
            Some(slot)
        );
        // A smaller limit (another daemon's configuration) counts the same rows.
        assert_eq!(store.claim_call_slot("all", 2, "d", NOW, LEASE).await.unwrap(), None);
    }
}

store_test! {
    #[tokio::test]
    async fn a_dead_holders_slots_expire_and_a_live_holder_renews_its_own(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        store.ensure_call_slots("all", 2).await.unwrap();
        let dead = store.claim_call_slot("all", 2, "dead", NOW, LEASE).await.unwrap();
        let live = store.claim_call_slot("all", 2, "live", NOW, LEASE).await.unwrap();
        assert!(dead.is_some() && live.is_some());
        let later = NOW + LEASE + 1;
        // The live holder renewed in time; the dead one did not.
        assert_eq!(store.renew_call_slots("live", NOW + LEASE - 1, LEASE).await.unwrap(), 1);
        assert_eq!(store.held_call_slots("all", later).await.unwrap(), 1);
        assert_eq!(
            store.claim_call_slot("all", 2, "next", later, LEASE).await.unwrap(),
            dead
        );
        assert_eq!(store.claim_call_slot("all", 2, "next", later, LEASE).await.unwrap(), None);
        // The dead holder, back, finds its slot gone and frees nothing.
        assert!(!store.release_call_slot("all", dead.unwrap(), "dead").await.unwrap());
        assert_eq!(store.renew_call_slots("dead", later, LEASE).await.unwrap(), 0);
    }
}

store_test! {
    #[tokio::test]
    async fn concurrent_claimers_never_share_a_slot(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        store.ensure_call_slots("all", 5).await.unwrap();
        let mut claimers = JoinSet::new();
        for i in 0..20 {
            let store = store.clone();
            claimers.spawn(async move {
                let holder = format!("daemon-{i}");
                loop {
                    match store.claim_call_slot("all", 5, &holder, NOW, LEASE).await {
                        Ok(slot) => return slot.map(|s| (s, holder)),
                        // SQLite's writer lock: ask again.
                        Err(e) if e.is_busy() => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
        let mut won = Vec::new();
        while let Some(done) = claimers.join_next().await {
            won.extend(done.unwrap());
        }
        let slots: BTreeSet<i64> = won.iter().map(|(s, _)| *s).collect();
        assert_eq!(won.len(), 5, "{won:?}");
        assert_eq!(slots, (0..5).collect::<BTreeSet<i64>>());
    }
}

store_test! {
    #[tokio::test]
    async fn a_tier_pause_only_ever_extends_and_ends_on_time(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let pause = |until_ms: i64, by: &str| TierPause {
            tier: "haiku".into(),
            until_ms,
            reason: format!("429 seen by {by}"),
            set_by: by.into(),
        };
        assert_eq!(store.tier_pauses(NOW).await.unwrap(), Vec::new());
        store.pause_tier(&pause(NOW + 2_000, "a")).await.unwrap();
        // A shorter pause seen later by another daemon leaves the longer one.
        store.pause_tier(&pause(NOW + 1_000, "b")).await.unwrap();
        assert_eq!(store.tier_pauses(NOW).await.unwrap(), vec![pause(NOW + 2_000, "a")]);
        store.pause_tier(&pause(NOW + 5_000, "c")).await.unwrap();
        let other = TierPause {
            tier: "sonnet".into(),
            ..pause(NOW + 500, "c")
        };
        store.pause_tier(&other).await.unwrap();
        assert_eq!(
            store.tier_pauses(NOW).await.unwrap(),
            vec![pause(NOW + 5_000, "c"), other]
        );
        assert_eq!(
            store.tier_pauses(NOW + 1_000).await.unwrap(),
            vec![pause(NOW + 5_000, "c")]
        );
        assert_eq!(store.tier_pauses(NOW + 5_000).await.unwrap(), Vec::new());
    }
}
