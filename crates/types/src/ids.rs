//! Identifier newtypes over time-ordered UUIDs (v7).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id's canonical hyphenated string form, as stored and sent.
            pub fn to_string_form(&self) -> String {
                self.0.hyphenated().to_string()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|source| Error::InvalidId { what: $what, value: s.to_owned(), source })
            }
        }
    };
}

id_type!(
    /// Identifies one job: an instruction applied to one workspace.
    JobId,
    "job"
);
id_type!(
    /// Identifies one subtask: one file's share of a job.
    SubtaskId,
    "subtask"
);
id_type!(
    /// Identifies one model call made for a subtask (also the batch `custom_id`).
    AttemptId,
    "attempt"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings() {
        let id = JobId::new();
        let parsed: JobId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
        assert!("not-a-uuid".parse::<SubtaskId>().is_err());
    }
}
