//! The job's hard budget: every call reserves its worst case before it is
//! sent and settles to its actual cost after, so spent plus reserved never
//! exceeds the cap and recorded spend never does either. Money for the
//! review of the files a job starts is held back before their workers run
//! (a worker call can never spend it), and the fan-out admits a file only
//! when its expected cost fits beside what earlier files were promised.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use cadre_types::Role;

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    /// What the user reads ("budget $0.50 exhausted: spent ...").
    pub message: String,
    /// Other calls hold reservations that may settle lower: worth waiting.
    pub others_in_flight: bool,
}

/// Spent and reserved dollars of one job against its cap.
#[derive(Debug)]
pub(crate) struct Budget {
    cap: Option<f64>,
    state: Mutex<Ledger>,
    exhausted: AtomicBool,
}

/// Dollars by what they are for.
#[derive(Debug, Default, Clone, Copy)]
struct Ledger {
    /// Recorded spend.
    spent: f64,
    /// Worst cases of calls in flight.
    reserved: f64,
    /// Kept back for reviews; only review calls may use it.
    held: f64,
    /// Expected worker cost of admitted files still in their cascade (a
    /// planning figure: calls are checked against spent + reserved + held).
    promised: f64,
}

impl Budget {
    /// A budget with `spent` already recorded (a resumed job).
    pub fn new(cap: Option<f64>, spent: f64) -> Self {
        Self {
            cap,
            state: Mutex::new(Ledger {
                spent,
                ..Ledger::default()
            }),
            exhausted: AtomicBool::new(false),
        }
    }

    /// The job's recorded spend is `recorded` (read from the store, where
    /// other daemons running its subtasks record theirs too): spent is
    /// raised to it, never lowered (this run's own calls are in it).
    pub fn observe_spent(&self, recorded: f64) {
        if let Ok(mut state) = self.state.lock()
            && recorded.is_finite()
        {
            state.spent = state.spent.max(recorded);
        }
    }

    /// The cap, if any.
    pub fn cap(&self) -> Option<f64> {
        self.cap
    }

    /// What a call may still reserve: cap - spent - reserved - held
    /// (`None` without a cap).
    pub fn available(&self) -> Option<f64> {
        let cap = self.cap?;
        let l = self.state.lock().ok().map(|g| *g)?;
        Some((cap - l.spent - l.reserved - l.held).max(0.0))
    }

    /// Admits a file whose worker calls are expected to cost `work` and
    /// whose review `review`: holds the review back and promises the work,
    /// when both fit beside everything already spent, reserved, held and
    /// promised. Always true without a cap.
    pub fn admit(&self, work: f64, review: f64) -> bool {
        let Some(cap) = self.cap else { return true };
        let Ok(mut l) = self.state.lock() else {
            return false;
        };
        if l.spent + l.reserved + l.held + l.promised + work + review > cap + 1e-12 {
            return false;
        }
        l.held += review;
        l.promised += work;
        true
    }

    /// A file's cascade ended: its promised work is no longer expected.
    pub fn fulfil(&self, work: f64) {
        if let Ok(mut l) = self.state.lock() {
            l.promised = (l.promised - work).max(0.0);
        }
    }

    /// Holds `amount` for a review when it fits (a file sent back for
    /// another review round); false when it does not.
    pub fn hold(&self, amount: f64) -> bool {
        self.admit(0.0, amount)
    }

    /// Returns held review money (to the review call about to use it, or
    /// because the file will not be reviewed).
    pub fn release(&self, amount: f64) {
        if let Ok(mut l) = self.state.lock() {
            l.held = (l.held - amount).max(0.0);
        }
    }

    /// Reserves `amount`, or says why not.
    pub fn reserve(&self, amount: f64) -> Result<(), Refusal> {
        let Some(cap) = self.cap else { return Ok(()) };
        let Ok(mut state) = self.state.lock() else {
            return Err(Refusal {
                message: "budget lock poisoned".to_owned(),
                others_in_flight: false,
            });
        };
        if state.spent + state.reserved + state.held + amount > cap + 1e-12 {
            return Err(Refusal {
                message: format!(
                    "budget ${cap:.4} exhausted: spent ${:.4}, next call could cost ${amount:.4}",
                    state.spent.abs()
                ),
                others_in_flight: state.reserved > 1e-12,
            });
        }
        state.reserved += amount;
        Ok(())
    }

    /// Returns a reservation and records what the call actually cost.
    pub fn settle(&self, reserved: f64, actual: f64) {
        if let Ok(mut state) = self.state.lock() {
            if self.cap.is_some() {
                state.reserved = (state.reserved - reserved).max(0.0);
            }
            state.spent += actual;
        }
    }

    /// Marks the budget as run out (a call was refused for good).
    pub fn mark_exhausted(&self) {
        self.exhausted.store(true, Ordering::SeqCst);
    }

    /// True once a call was refused for good.
    pub fn is_exhausted(&self) -> bool {
        self.exhausted.load(Ordering::SeqCst)
    }
}

/// The smallest `max_tokens` that still makes an answer useful, per role:
/// a plan needs room for one entry per candidate file, a review for one
/// verdict per file of its chunk, a worker for its file rewritten whole.
/// Never more than the role's configured `max_tokens`.
pub(crate) fn min_output_tokens(
    role: Role,
    files: usize,
    file_tokens: u64,
    max_tokens: u32,
) -> u32 {
    let files = files.min(500) as u64;
    let floor = match role {
        Role::Planner => 1_000 + 40 * files,
        Role::Reviewer => 200 + 80 * files,
        Role::Worker => file_tokens + 256,
    };
    floor.min(u64::from(max_tokens)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_cross_the_cap_and_settle_to_the_actual_cost() {
        let budget = Budget::new(Some(1.0), 0.25);
        assert!(budget.reserve(0.5).is_ok());
        let refused = budget.reserve(0.5).unwrap_err();
        assert!(refused.others_in_flight, "{refused:?}");
        budget.settle(0.5, 0.1);
        assert!(budget.reserve(0.6).is_ok());
        budget.settle(0.6, 0.6);
        let refused = budget.reserve(0.1).unwrap_err();
        assert!(!refused.others_in_flight);
        assert!(
            refused.message.contains("spent $0.9500"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn held_review_money_is_out_of_reach_of_other_calls_and_admission_counts_promises() {
        let budget = Budget::new(Some(1.0), 0.0);
        assert!(budget.admit(0.4, 0.2));
        // Held review money blocks other calls; promised work does not.
        assert!(budget.reserve(0.9).is_err());
        assert!(budget.reserve(0.8).is_ok());
        budget.settle(0.8, 0.0);
        // A second file expecting 0.4 + 0.2 does not fit beside the first.
        assert!(!budget.admit(0.4, 0.2));
        budget.fulfil(0.4);
        assert!(budget.admit(0.4, 0.2));
        assert!((budget.available().unwrap() - 0.6).abs() < 1e-9);
        budget.release(0.4);
        assert!((budget.available().unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn no_cap_reserves_anything() {
        let budget = Budget::new(None, 100.0);
        assert!(budget.reserve(1e9).is_ok());
    }
}
