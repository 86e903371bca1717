//! The typed states of the cluster, of requests and of presignatures, and the names they are
//! stored under (printed and parsed only here, so the stored text never changes).

use super::StoreError;

macro_rules! stored_state {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// The name stored in the database (and shown by the API).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(StoreError::Corrupt(format!(
                        concat!("unknown ", stringify!($name), " `{}`"),
                        other
                    ))),
                }
            }
        }
    };
}

stored_state! {
    /// How far the cluster got from its genesis.
    ClusterState {
        /// No genesis yet (never stored: there is no cluster row then).
        None => "none",
        /// Genesis accepted; nodes being set up.
        Initialising => "initialising",
        /// Auxiliary info ready on every node: keys can be created and used.
        Ready => "ready",
        /// Initialising stopped with an error.
        Failed => "failed",
    }
}

stored_state! {
    /// Where an idempotent request is.
    RequestState {
        /// Owned by a coordinator under a lease.
        InProgress => "in_progress",
        /// Ended with a result.
        Completed => "completed",
        /// Ended with an error that is final.
        Failed => "failed",
        /// Ended with an error; it runs again when resubmitted under the same key.
        Retryable => "retryable",
    }
}

stored_state! {
    /// Where a presignature is.
    PresigState {
        /// Held by its quorum, unclaimed.
        Ready => "ready",
        /// Claimed by a signing request (spent whatever happened next).
        Used => "used",
        /// Its enclaves no longer hold it.
        Dead => "dead",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip() {
        for s in [
            ClusterState::None,
            ClusterState::Initialising,
            ClusterState::Ready,
            ClusterState::Failed,
        ] {
            assert_eq!(s.as_str().parse::<ClusterState>().ok(), Some(s));
        }
        for s in [
            RequestState::InProgress,
            RequestState::Completed,
            RequestState::Failed,
            RequestState::Retryable,
        ] {
            assert_eq!(s.to_string().parse::<RequestState>().ok(), Some(s));
        }
        for s in [PresigState::Ready, PresigState::Used, PresigState::Dead] {
            assert_eq!(s.as_str().parse::<PresigState>().ok(), Some(s));
        }
        assert_eq!(RequestState::InProgress.as_str(), "in_progress");
        assert!("busy".parse::<RequestState>().is_err());
    }
}
