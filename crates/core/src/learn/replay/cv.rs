//! The `path` policy under k-fold cross-validation: each task is scored by
//! paths estimated from the other folds only, for one or more solved-share
//! constraints at once (the frontier); and the path fitted on every row of
//! a class, for explanation only.

use std::collections::BTreeMap;

use super::super::estimate::{CascadeOutcome, Validator};
use super::super::outcomes::OutcomeRow;
use super::super::paths::{MinSolved, all_paths, estimate_paths, path_name, path_outcome};
use super::types::{PathFit, class_label};
use crate::Result;

/// Cross-validated path choices.
pub(super) struct PathCv {
    /// Every path of the ladder (see [`all_paths`]).
    pub(super) paths: Vec<Vec<usize>>,
    /// Per task, per path: the exact expectation of running it.
    pub(super) outcomes: Vec<Vec<CascadeOutcome>>,
    /// Per constraint, per task: the path chosen without seeing the task.
    pub(super) chosen: Vec<Vec<usize>>,
    /// Class label -> path name -> folds that chose it (first constraint).
    pub(super) counts: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per fold, the task indices it trained on (for tests of the split).
    pub(super) trained_on: Vec<Vec<usize>>,
}

impl PathCv {
    /// The index of the top-rung-only path.
    pub(super) fn top(&self) -> usize {
        let top_rung = self.paths.iter().map(|p| p[p.len() - 1]).max().unwrap_or(0);
        self.paths
            .iter()
            .position(|p| p.as_slice() == [top_rung])
            .unwrap_or(0)
    }

    /// The index of the full cascade (every rung).
    pub(super) fn full(&self) -> usize {
        self.paths.len() - 1
    }
}

/// What the cross-validation needs besides the rows.
pub(super) struct CvSetup<'a> {
    pub(super) tiers: &'a [String],
    pub(super) attempts: &'a [u32],
    pub(super) validator: Validator,
    pub(super) fold_of: &'a [usize],
    pub(super) folds: usize,
    pub(super) min_tasks: usize,
}

/// Scores every task under each constraint with paths trained on the other
/// folds.
pub(super) fn cross_validate(
    rows: &[OutcomeRow],
    setup: &CvSetup<'_>,
    constraints: &[MinSolved],
) -> Result<PathCv> {
    let paths = all_paths(setup.tiers.len())?;
    let outcomes: Vec<Vec<CascadeOutcome>> = rows
        .iter()
        .map(|row| {
            paths
                .iter()
                .map(|p| path_outcome(&row.cells, p, setup.attempts, setup.validator))
                .collect()
        })
        .collect();
    let mut cv = PathCv {
        chosen: vec![vec![0; rows.len()]; constraints.len()],
        counts: BTreeMap::new(),
        trained_on: Vec::new(),
        paths,
        outcomes,
    };
    let top = cv.top();
    let classes = class_list(rows);
    for fold in 0..setup.folds {
        let train: Vec<usize> = (0..rows.len())
            .filter(|&i| setup.fold_of[i] != fold)
            .collect();
        let estimates = estimate_paths(
            &classes,
            train
                .iter()
                .map(|&i| (rows[i].class.as_str(), cv.outcomes[i].as_slice())),
            cv.paths.len(),
            setup.min_tasks,
        );
        let mut seen_classes: Vec<&str> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if setup.fold_of[i] != fold {
                continue;
            }
            let estimate = estimates.get(row.class.as_str());
            for (k, &constraint) in constraints.iter().enumerate() {
                cv.chosen[k][i] = estimate.map_or(top, |e| e.choose(top, constraint));
            }
            if !seen_classes.contains(&row.class.as_str()) {
                seen_classes.push(row.class.as_str());
                let name = path_name(&cv.paths[cv.chosen[0][i]], setup.tiers);
                *cv.counts
                    .entry(class_label(&row.class).to_owned())
                    .or_default()
                    .entry(name)
                    .or_default() += 1;
            }
        }
        cv.trained_on.push(train);
    }
    Ok(cv)
}

/// The distinct class labels, in first-seen order.
fn class_list(rows: &[OutcomeRow]) -> Vec<&str> {
    let mut classes: Vec<&str> = Vec::new();
    for row in rows {
        if !classes.contains(&row.class.as_str()) {
            classes.push(row.class.as_str());
        }
    }
    classes
}

/// The path each class gets when trained on every row (explanation only:
/// never used to score).
pub(super) fn fit_all(
    rows: &[OutcomeRow],
    cv: &PathCv,
    tiers: &[String],
    min_tasks: usize,
    constraint: MinSolved,
) -> BTreeMap<String, PathFit> {
    let classes = class_list(rows);
    let estimates = estimate_paths(
        &classes,
        rows.iter()
            .zip(&cv.outcomes)
            .map(|(row, o)| (row.class.as_str(), o.as_slice())),
        cv.paths.len(),
        min_tasks,
    );
    let (top, full) = (cv.top(), cv.full());
    estimates
        .into_iter()
        .map(|(class, e)| {
            let chosen = e.choose(top, constraint);
            let fit = PathFit {
                path: cv.paths[chosen].iter().map(|&t| tiers[t].clone()).collect(),
                solved_share: e.share[chosen],
                cost_usd: e.cost[chosen],
                cascade: [e.share[full], e.cost[full]],
                top: [e.share[top], e.cost[top]],
                own_tasks: e.own_tasks,
                borrowed: e.borrowed.clone(),
            };
            (class_label(&class).to_owned(), fit)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::estimate::OutcomeCell;

    #[test]
    fn learn_cv_trains_each_fold_on_the_other_folds_only() {
        let cell = |p: f64, cost_usd: f64| OutcomeCell { p, cost_usd };
        let rows: Vec<OutcomeRow> = (0..12)
            .map(|i| OutcomeRow {
                task_id: format!("t{i}"),
                class: if i % 2 == 0 { "a" } else { "b/c" }.to_owned(),
                line: i + 2,
                cells: vec![cell(f64::from(u8::from(i % 3 == 0)), 1.0), cell(1.0, 5.0)],
            })
            .collect();
        let fold_of: Vec<usize> = (0..12).map(|i| i % 3).collect();
        let tiers = vec!["haiku".to_owned(), "opus".to_owned()];
        let setup = CvSetup {
            tiers: &tiers,
            attempts: &[1, 1],
            validator: Validator::PERFECT,
            fold_of: &fold_of,
            folds: 3,
            min_tasks: 2,
        };
        let cv = cross_validate(&rows, &setup, &[MinSolved::Top, MinSolved::Share(0.0)]).unwrap();
        assert_eq!(cv.trained_on.len(), 3);
        for (fold, trained) in cv.trained_on.iter().enumerate() {
            assert!(trained.iter().all(|&i| fold_of[i] != fold));
            assert_eq!(trained.len(), 8);
        }
        // With no constraint the cheapest path (haiku alone) wins everywhere.
        assert!(cv.chosen[1].iter().all(|&p| cv.paths[p] == [0]));
        assert_eq!(cv.paths[cv.top()], [1]);
        assert_eq!(cv.paths[cv.full()], [0, 1]);
    }
}
