//! The job's hard budget: every call reserves its worst case before it is
//! sent and settles to its actual cost after, so spent plus reserved never
//! exceeds the cap and recorded spend never does either.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// (spent, reserved)
    state: Mutex<(f64, f64)>,
    exhausted: AtomicBool,
}

impl Budget {
    /// A budget with `spent` already recorded (a resumed job).
    pub fn new(cap: Option<f64>, spent: f64) -> Self {
        Self {
            cap,
            state: Mutex::new((spent, 0.0)),
            exhausted: AtomicBool::new(false),
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
        if state.0 + state.1 + amount > cap + 1e-12 {
            return Err(Refusal {
                message: format!(
                    "budget ${cap:.4} exhausted: spent ${:.4}, next call could cost ${amount:.4}",
                    state.0.abs()
                ),
                others_in_flight: state.1 > 1e-12,
            });
        }
        state.1 += amount;
        Ok(())
    }

    /// Returns a reservation and records what the call actually cost.
    pub fn settle(&self, reserved: f64, actual: f64) {
        if let Ok(mut state) = self.state.lock() {
            if self.cap.is_some() {
                state.1 = (state.1 - reserved).max(0.0);
            }
            state.0 += actual;
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
    fn no_cap_reserves_anything() {
        let budget = Budget::new(None, 100.0);
        assert!(budget.reserve(1e9).is_ok());
    }
}
