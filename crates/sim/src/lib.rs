//! cadre-sim (placeholder)
