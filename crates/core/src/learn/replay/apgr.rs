//! The average performance gap recovered (APGR) over the path policy's
//! cross-validated frontier: RouteLLM's APGR, the PGR a router reaches at
//! each cost budget averaged uniformly over budgets from always-cheapest's
//! cost to always-top's. At a budget the router achieves the best solved
//! share among the frontier points that cost no more (and always-cheapest
//! and always-top themselves), so the curve is a step function and the
//! average is its exact integral.

/// A policy's total cost and solved share.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CostShare {
    /// Total cost.
    pub cost: f64,
    /// Solved share.
    pub share: f64,
}

/// The APGR of `frontier` between `cheapest` and `top`; `None` when the top
/// solves no more than the cheapest or costs no more (PGR undefined). PGR
/// above 1 (a point solving more than the top) is kept as it is.
pub(crate) fn average_pgr(
    frontier: &[CostShare],
    cheapest: CostShare,
    top: CostShare,
) -> Option<f64> {
    let gap = top.share - cheapest.share;
    let span = top.cost - cheapest.cost;
    if gap <= 1e-9 || span <= 1e-12 {
        return None;
    }
    let mut points: Vec<CostShare> = frontier
        .iter()
        .copied()
        .chain([top])
        .filter(|p| p.cost.is_finite() && p.share.is_finite())
        .collect();
    points.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    let mut best = cheapest.share;
    let mut at = cheapest.cost;
    let mut area = 0.0;
    for p in points {
        let cost = p.cost.clamp(cheapest.cost, top.cost);
        area += (cost - at) * (best - cheapest.share) / gap;
        at = cost;
        best = best.max(p.share);
    }
    area += (top.cost - at) * (best - cheapest.share) / gap;
    Some(area / span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(cost: f64, share: f64) -> CostShare {
        CostShare { cost, share }
    }

    #[test]
    fn learn_apgr_integrates_the_best_share_per_budget() {
        let cheapest = point(1.0, 0.5);
        let top = point(5.0, 1.0);
        // Budgets 1-2: 0.5 (PGR 0); 2-3: 0.9 (0.8); 3-5: 1.0 (1.0).
        let frontier = [point(3.0, 1.0), point(2.0, 0.9), point(4.0, 0.95)];
        let apgr = average_pgr(&frontier, cheapest, top).unwrap();
        assert!((apgr - 2.8 / 4.0).abs() < 1e-12, "{apgr}");
        // No frontier: the top only at its own cost.
        assert_eq!(average_pgr(&[], cheapest, top), Some(0.0));
        // Undefined when the top solves no more than the cheapest.
        assert_eq!(average_pgr(&frontier, cheapest, point(5.0, 0.5)), None);
    }
}
