//! Validation of one bus record into a typed event, or every reason it is rejected.
//!
//! The single place the processor decides validity: it delegates to
//! `retail_core::validate_message`, whose fast path is one typed parse and whose slow path
//! (only for rejected records) lists every reason.

use chrono::{DateTime, Utc};
use retail_core::{Event, EventType, Str};

/// The input topics the processor understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum TopicKind {
    Sales,
    Inventory,
    Price,
    Customer,
}

impl TopicKind {
    pub fn from_topic(topic: &str) -> Option<TopicKind> {
        match EventType::from_topic(topic)? {
            EventType::Sale => Some(TopicKind::Sales),
            EventType::InventoryUpdate => Some(TopicKind::Inventory),
            EventType::PriceChange => Some(TopicKind::Price),
            EventType::CustomerEvent => Some(TopicKind::Customer),
            EventType::RestockAlert => None,
        }
    }
    pub fn event_type(self) -> EventType {
        match self {
            TopicKind::Sales => EventType::Sale,
            TopicKind::Inventory => EventType::InventoryUpdate,
            TopicKind::Price => EventType::PriceChange,
            TopicKind::Customer => EventType::CustomerEvent,
        }
    }
    pub fn topic(self) -> &'static str {
        self.event_type().topic()
    }
    /// The lake's raw kind of this topic's events.
    pub fn raw_kind(self) -> retail_lake::RawKind {
        match self {
            TopicKind::Sales => retail_lake::RawKind::Sales,
            TopicKind::Inventory => retail_lake::RawKind::Inventory,
            TopicKind::Price | TopicKind::Customer => retail_lake::RawKind::Events,
        }
    }
    /// The lake folder under `raw-data/`.
    pub fn lake_kind(self) -> &'static str {
        self.raw_kind().dir()
    }
}

/// Parses and checks one record with the contracts crate's validator (Avro schema + semantic
/// rules, every reason). `arrival_ms` — the bus append time — stands for "now", so a replay
/// judges a record exactly as the first run did.
/// The event's strings are borrowed from `bytes` (`Str`): a valid event costs no copies.
pub fn validate(kind: TopicKind, bytes: &[u8], arrival_ms: i64) -> Result<Event<Str<'_>>, Vec<String>> {
    let now = DateTime::<Utc>::from_timestamp_millis(arrival_ms).unwrap_or_default();
    retail_core::validate_message_as(kind.topic(), bytes, now).map_err(|r| r.reasons)
}

/// The outcome of validating one bus record, borrowing from it: `None` when its topic is not
/// an input.
pub type Verdict<'a> = Option<Result<Event<Str<'a>>, Vec<String>>>;

/// Validate one bus record against its topic's contract.
pub fn check(msg: &retail_bus::Message) -> Verdict<'_> {
    TopicKind::from_topic(&msg.topic).map(|kind| validate(kind, &msg.payload, msg.timestamp_ms))
}

/// Below this many records a batch is validated on the calling thread (a thread costs more).
const PARALLEL_MIN: usize = 2_048;

/// Records a validating thread claims at a time from a `ValidationQueue`: small enough that the
/// threads finish together, large enough that claiming (one lock) costs nothing.
const BLOCK: usize = 256;

/// A chunk's validation as blocks that any thread can claim, writing each verdict in place.
/// Why: the processor's thread, once done applying the previous chunk, joins the helpers on
/// this one instead of waiting for them (`validate_beside`).
struct ValidationQueue<'q, 'a> {
    blocks: std::sync::Mutex<std::iter::Zip<std::slice::Chunks<'a, retail_bus::Message>, std::slice::ChunksMut<'q, Verdict<'a>>>>,
}

impl<'q, 'a> ValidationQueue<'q, 'a> {
    /// `out` must be as long as `msgs` (one slot per record).
    fn new(msgs: &'a [retail_bus::Message], out: &'q mut [Verdict<'a>]) -> ValidationQueue<'q, 'a> {
        debug_assert_eq!(msgs.len(), out.len());
        ValidationQueue { blocks: std::sync::Mutex::new(msgs.chunks(BLOCK).zip(out.chunks_mut(BLOCK))) }
    }

    /// Validate blocks until none is left.
    fn work(&self) {
        loop {
            // A poisoned lock means another validating thread panicked (a bug): the scope
            // re-raises that panic, so this thread only stops.
            let Some((msgs, out)) = self.blocks.lock().ok().and_then(|mut b| b.next()) else { return };
            for (m, v) in msgs.iter().zip(out) {
                *v = check(m);
            }
        }
    }
}

/// Validate `msgs` on `threads` threads while the calling thread runs `first` (the processor's
/// own work): `threads − 1` helpers start at once, and the caller joins them when `first` is
/// done. Returns `first`'s result and the verdicts, in record order.
pub fn validate_beside<'a, R>(msgs: &'a [retail_bus::Message], threads: usize, first: impl FnOnce() -> R) -> (R, Vec<Verdict<'a>>) {
    let mut out: Vec<Verdict<'a>> = std::iter::repeat_with(|| None).take(msgs.len()).collect();
    let queue = ValidationQueue::new(msgs, &mut out);
    let helpers = threads.max(1) - 1;
    // A panic in validation is a bug, not bad input (bad input is a verdict): the scope
    // propagates it.
    let r = with_helpers(
        helpers,
        || queue.work(),
        || {
            let r = first();
            queue.work();
            r
        },
    );
    (r, out)
}

/// Run `helper` on `helpers` of the long-lived helper threads while the calling thread runs
/// `caller`; returns once all are done (`caller` alone when there are no helpers or no threads).
/// A panic on any of them resumes in the caller.
fn with_helpers<R>(helpers: usize, helper: impl Fn() + Sync, caller: impl FnOnce() -> R) -> R {
    match if helpers == 0 { None } else { helper_pool(helpers) } {
        Some(pool) => pool.in_place_scope(|scope| {
            for _ in 0..helpers {
                scope.spawn(|_| helper());
            }
            caller()
        }),
        None => caller(),
    }
}

/// `f` over `items` on up to `threads` threads (the caller's and the validation helpers), results
/// in item order. For a handful of large, independent jobs (the partitions' checkpoint
/// snapshots): each thread takes the next item until none is left.
pub(crate) fn map_beside<T: Send, R: Send>(items: Vec<T>, threads: usize, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let helpers = threads.max(1).min(n).saturating_sub(1);
    let todo = std::sync::Mutex::new(items.into_iter().enumerate().collect::<Vec<_>>());
    let done = std::sync::Mutex::new(Vec::with_capacity(n));
    let work = || loop {
        // A panic in `f` is a bug; the scope propagates it (the locks are only held to pop/push).
        let Some((i, item)) = todo.lock().unwrap_or_else(|p| p.into_inner()).pop() else { return };
        let r = f(item);
        done.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
    };
    with_helpers(helpers, work, work);
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Long-lived helper threads for validation, `helpers` of them; `None` (validate on the calling
/// thread) if the system refuses threads. Why not a thread per chunk: each one paid its start and
/// a fresh allocator heap (pages to fault in, abandoned ones to reclaim): about a hundred threads
/// per million events in `retail bench stream`.
fn helper_pool(helpers: usize) -> Option<&'static rayon_core::ThreadPool> {
    type Pools = std::sync::Mutex<Vec<(usize, &'static rayon_core::ThreadPool)>>;
    static POOLS: std::sync::OnceLock<Pools> = std::sync::OnceLock::new();
    let mut pools = POOLS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == helpers) {
        return Some(p);
    }
    let built = rayon_core::ThreadPoolBuilder::new().num_threads(helpers).thread_name(|i| format!("retail-validate-{i}")).build();
    match built {
        Ok(pool) => {
            // One pool per distinct thread count for the life of the process (a handful at most).
            let pool: &'static rayon_core::ThreadPool = Box::leak(Box::new(pool));
            pools.push((helpers, pool));
            Some(pool)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start validation threads; validating on the processor's thread");
            None
        }
    }
}

/// Validate a batch on up to `threads` threads, verdicts in record order. Parsing is most of
/// the processor's work per record and needs no state, so it is what spreads over cores.
pub fn check_all(msgs: &[retail_bus::Message], threads: usize) -> Vec<Verdict<'_>> {
    let threads = threads.max(1);
    if threads == 1 || msgs.len() < PARALLEL_MIN {
        return msgs.iter().map(check).collect();
    }
    validate_beside(msgs, threads, || ()).1
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_735_725_600_000; // 2025-01-01T10:00:00Z

    #[test]
    fn arrival_time_is_now_for_the_future_rule() {
        let sale = r#"{"event_type":"sale","schema_version":1,"transaction_id":"5f1d7c0e-2b9a-4f3e-9d61-0a7ce2b48f13","basket_id":"5f1d7c0e-2b9a-4f3e-9d61-0a7ce2b48f14","store_id":"store_001","product_id":"SKU1","quantity":2,"unit_price":10.0,"list_price":10.0,"discount_pct":0.0,"promotion_id":null,"timestamp":"2025-01-01T10:00:00Z","customer_id":"cust_1","payment_method":"cash"}"#;
        assert!(validate(TopicKind::Sales, sale.as_bytes(), NOW).is_ok());
        // The same record arriving an hour before its own timestamp is from the future.
        let r = validate(TopicKind::Sales, sale.as_bytes(), NOW - 3_600_000).unwrap_err();
        assert!(r[0].contains("future"), "{r:?}");
        assert_eq!(TopicKind::from_topic(retail_core::topics::PRICE_CHANGES), Some(TopicKind::Price));
        assert_eq!(TopicKind::from_topic(retail_core::topics::RESTOCK_ALERTS), None);
    }

    #[test]
    fn parallel_validation_keeps_record_order_and_verdicts() {
        let good = r#"{"event_type":"sale","schema_version":1,"transaction_id":"5f1d7c0e-2b9a-4f3e-9d61-0a7ce2b48f13","basket_id":"5f1d7c0e-2b9a-4f3e-9d61-0a7ce2b48f14","store_id":"store_001","product_id":"SKU1","quantity":2,"unit_price":10.0,"list_price":10.0,"discount_pct":0.0,"promotion_id":null,"timestamp":"2025-01-01T10:00:00Z","customer_id":"cust_1","payment_method":"cash"}"#;
        let msgs: Vec<retail_bus::Message> = (0..5_000)
            .map(|i| retail_bus::Message {
                topic: if i % 97 == 0 { "elsewhere".into() } else { retail_core::topics::SALES.into() },
                partition: 0,
                offset: i,
                key: None,
                // Every 7th record is invalid in a record-specific way (its quantity).
                payload: if i % 7 == 0 { good.replace("\"quantity\":2", &format!("\"quantity\":-{i}")).into() } else { good.as_bytes().to_vec().into() },
                timestamp_ms: NOW,
            })
            .collect();
        let sequential: Vec<Verdict> = msgs.iter().map(check).collect();
        let parallel = check_all(&msgs, 3);
        assert_eq!(parallel, sequential);
        assert!(parallel[0].is_none(), "unknown topic");
        assert!(parallel[7].as_ref().unwrap().as_ref().unwrap_err()[0].contains("-7"), "{:?}", parallel[7]);
        assert!(parallel[1].as_ref().unwrap().is_ok());
    }

    #[test]
    fn map_beside_keeps_item_order_on_any_thread_count() {
        for threads in [1, 2, 4] {
            let squares = map_beside((0..50u64).collect(), threads, |i| i * i);
            assert_eq!(squares, (0..50u64).map(|i| i * i).collect::<Vec<_>>(), "{threads} threads");
        }
        assert!(map_beside(Vec::<u8>::new(), 2, |i| i).is_empty());
    }
}
