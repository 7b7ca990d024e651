//! cadre-store (placeholder)
