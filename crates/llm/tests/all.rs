//! Integration tests for cadre-llm: real clients against scripted axum
//! servers on 127.0.0.1:0.

mod suite;
