//! Message Batches: state, the `MessageBatch` object and the JSONL results.
//!
//! Every request in a batch is answered when the batch is created (so the
//! request log and the model state see it at once); the results become
//! visible when the batch ends, `processing_delay_ms` after creation on the
//! sim clock, in a seeded shuffled order. Cancelling before the end cancels
//! every request.

use serde_json::{Value, json};

use crate::ids::{SplitMix, hash64};

/// One batch.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    pub(crate) id: String,
    created_ms: u64,
    ends_at_ms: u64,
    cancel_ms: Option<u64>,
    /// (custom_id, result object) in request order.
    items: Vec<(String, Value)>,
    /// Order in which results are listed.
    order: Vec<usize>,
}

/// Wall-clock rendering of sim-clock milliseconds.
pub(crate) type WallFn<'a> = &'a dyn Fn(u64) -> String;

impl Batch {
    pub(crate) fn new(
        id: String,
        seed: u64,
        created_ms: u64,
        delay_ms: u64,
        items: Vec<(String, Value)>,
    ) -> Self {
        let n = items.len();
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = SplitMix::new(hash64(&[
            b"batch-order",
            id.as_bytes(),
            &seed.to_le_bytes(),
        ]));
        for i in (1..n).rev() {
            let j = usize::try_from(rng.below(i as u64 + 1)).unwrap_or(0);
            order.swap(i, j);
        }
        if n >= 2 && order.iter().enumerate().all(|(i, o)| i == *o) {
            order.rotate_left(1);
        }
        Self {
            id,
            created_ms,
            ends_at_ms: created_ms + delay_ms,
            cancel_ms: None,
            items,
            order,
        }
    }

    fn end_ms(&self) -> u64 {
        self.cancel_ms
            .map_or(self.ends_at_ms, |c| c.min(self.ends_at_ms))
    }

    pub(crate) fn ended(&self, now_ms: u64) -> bool {
        now_ms >= self.end_ms()
    }

    fn canceled(&self) -> bool {
        self.cancel_ms.is_some_and(|c| c < self.ends_at_ms)
    }

    /// Starts cancelling; returns false when the batch already ended.
    pub(crate) fn cancel(&mut self, now_ms: u64) -> bool {
        if self.ended(now_ms) {
            return false;
        }
        self.cancel_ms = Some(now_ms);
        true
    }

    fn result(&self, i: usize) -> Value {
        if self.canceled() {
            json!({"type": "canceled"})
        } else {
            self.items[i].1.clone()
        }
    }

    /// The `MessageBatch` object. `canceling` forces that status (the answer to
    /// the cancel call itself).
    pub(crate) fn json(
        &self,
        now_ms: u64,
        wall: WallFn<'_>,
        base_url: &str,
        canceling: bool,
    ) -> Value {
        let ended = self.ended(now_ms) && !canceling;
        let status = if ended {
            "ended"
        } else if self.cancel_ms.is_some() {
            "canceling"
        } else {
            "in_progress"
        };
        let (mut succeeded, mut errored, mut canceled) = (0u64, 0u64, 0u64);
        if ended {
            for i in 0..self.items.len() {
                match self.result(i).get("type").and_then(Value::as_str) {
                    Some("succeeded") => succeeded += 1,
                    Some("errored") => errored += 1,
                    _ => canceled += 1,
                }
            }
        }
        let processing = if ended { 0 } else { self.items.len() as u64 };
        json!({
            "id": self.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {
                "processing": processing,
                "succeeded": succeeded,
                "errored": errored,
                "canceled": canceled,
                "expired": 0,
            },
            "created_at": wall(self.created_ms),
            "expires_at": wall(self.created_ms + 24 * 3600 * 1000),
            "ended_at": if ended { Value::String(wall(self.end_ms())) } else { Value::Null },
            "cancel_initiated_at": self.cancel_ms.map(wall),
            "archived_at": null,
            "results_url": if ended {
                Value::String(format!("{base_url}/v1/messages/batches/{}/results", self.id))
            } else {
                Value::Null
            },
        })
    }

    /// JSONL results in the shuffled order.
    pub(crate) fn results_jsonl(&self) -> String {
        let mut out = String::new();
        for &i in &self.order {
            let line = json!({"custom_id": self.items[i].0, "result": self.result(i)});
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }
}

/// All batches, newest last.
#[derive(Debug, Default)]
pub(crate) struct BatchStore {
    batches: Vec<Batch>,
}

impl BatchStore {
    pub(crate) fn insert(&mut self, batch: Batch) {
        self.batches.push(batch);
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Batch> {
        self.batches.iter().find(|b| b.id == id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Batch> {
        self.batches.iter_mut().find(|b| b.id == id)
    }

    pub(crate) fn remove(&mut self, id: &str) {
        self.batches.retain(|b| b.id != id);
    }

    /// Newest first.
    pub(crate) fn newest_first(&self) -> Vec<&Batch> {
        self.batches.iter().rev().collect()
    }
}

/// Cursor pagination shared by the batch and model lists:
/// `{data, has_more, first_id, last_id}` over items already in list order.
pub(crate) fn paginate(
    items: Vec<(String, Value)>,
    limit: usize,
    after_id: Option<&str>,
    before_id: Option<&str>,
) -> Value {
    let limit = limit.clamp(1, 1000);
    let (slice, has_more): (Vec<(String, Value)>, bool) = if let Some(before) = before_id {
        let end = items
            .iter()
            .position(|(id, _)| id == before)
            .unwrap_or(items.len());
        let start = end.saturating_sub(limit);
        (items[start..end].to_vec(), start > 0)
    } else {
        let start = after_id
            .and_then(|a| items.iter().position(|(id, _)| id == a).map(|p| p + 1))
            .unwrap_or(0);
        let end = (start + limit).min(items.len());
        (items[start..end].to_vec(), end < items.len())
    };
    json!({
        "data": slice.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": slice.first().map(|(id, _)| id.clone()),
        "last_id": slice.last().map(|(id, _)| id.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_shuffled_and_hidden_until_the_end() {
        let items: Vec<(String, Value)> = (0..5)
            .map(|i| (format!("r{i}"), json!({"type": "succeeded", "message": {}})))
            .collect();
        let b = Batch::new("msgbatch_x".into(), 1, 1000, 200, items);
        let wall = |ms: u64| format!("t{ms}");
        assert_eq!(
            b.json(1100, &wall, "http://h", false)["processing_status"],
            "in_progress"
        );
        let done = b.json(1200, &wall, "http://h", false);
        assert_eq!(done["processing_status"], "ended");
        assert_eq!(done["request_counts"]["succeeded"], 5);
        assert_eq!(
            done["results_url"],
            "http://h/v1/messages/batches/msgbatch_x/results"
        );
        let ids: Vec<String> = b
            .results_jsonl()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["custom_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids.len(), 5);
        assert_ne!(ids, vec!["r0", "r1", "r2", "r3", "r4"]);
    }

    #[test]
    fn pagination_walks_both_ways() {
        let items: Vec<(String, Value)> = (0..5).map(|i| (format!("id{i}"), json!(i))).collect();
        let p = paginate(items.clone(), 2, None, None);
        assert_eq!(p["data"], json!([0, 1]));
        assert_eq!(p["has_more"], true);
        assert_eq!(p["last_id"], "id1");
        let p = paginate(items.clone(), 2, Some("id3"), None);
        assert_eq!(p["data"], json!([4]));
        assert_eq!(p["has_more"], false);
        let p = paginate(items, 2, None, Some("id3"));
        assert_eq!(p["data"], json!([1, 2]));
        assert_eq!(p["first_id"], "id1");
    }
}
