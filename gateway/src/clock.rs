//! The clock every expiry and ban decision reads.
//!
//! Production uses the system clock. Tests set `AUTHGATE_TEST_CLOCK_FILE` to a file holding a
//! number of seconds that is added to the real time on every reading, so a test can move
//! authgate's time forward by writing that file instead of sleeping. The variable is read once
//! at start-up, and authgate logs a warning when it is set.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_file: Option<PathBuf>,
}

impl Clock {
    /// The system clock, or the test clock when `AUTHGATE_TEST_CLOCK_FILE` is set.
    pub fn from_env() -> Self {
        let offset_file = std::env::var_os("AUTHGATE_TEST_CLOCK_FILE").map(PathBuf::from);
        if let Some(f) = &offset_file {
            tracing::warn!(
                file = %f.display(),
                "AUTHGATE_TEST_CLOCK_FILE is set: time is shifted by the seconds in that file (tests only)"
            );
        }
        Clock { offset_file }
    }

    /// The test clock reading its offset from `file` (unit tests).
    #[cfg(test)]
    pub fn with_offset_file(file: PathBuf) -> Self {
        Clock {
            offset_file: Some(file),
        }
    }

    /// Now, as time since the Unix epoch.
    pub fn now(&self) -> Duration {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        match &self.offset_file {
            None => real,
            Some(f) => {
                let offset = std::fs::read_to_string(f)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                real + Duration::from_secs(offset)
            }
        }
    }
}
