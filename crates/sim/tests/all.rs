//! Integration tests for cadre-sim: one binary, real sockets, real HTTP.

mod suite;
