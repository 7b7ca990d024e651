//! cadre-server (placeholder)
