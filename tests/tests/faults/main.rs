//! The fault suite (issue 6): the real `cadre` binary against a real
//! `cadre sim serve` that misbehaves on purpose. For every fault the job ends
//! with every subtask in a terminal state and its reason recorded, every
//! attempt's cost recorded (and equal to what its recorded calls cost), the
//! workspace and everything outside it untouched until `apply`, exit code 0
//! or 2, and no panic.//!
//! [`invariants`] holds those checks and the shared workspace; one module per
//! kind of fault: [`transport`] (429, 529, 500, dropped connections, timeouts,
//! broken JSON), [`model_output`] (truncated, schema-violating, wrong-tool and
//! empty answers), [`hostile`] (hostile plan paths, unreadable files, a
//! workspace that changes under the job) and [`store_disk`] (the store's disk
//! filling up or going read-only).

mod hostile;
mod invariants;
mod model_output;
mod store_disk;
mod transport;
