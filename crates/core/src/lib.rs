//! cadre-core (placeholder)
