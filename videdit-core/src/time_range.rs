//! A validated span of media time.

use serde::{Deserialize, Serialize};

/// A range `[start, end)` in seconds of media time, `0 <= start < end`,
/// both finite.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRange")]
pub struct TimeRange {
    start: f64,
    end: f64,
}

#[derive(Deserialize)]
struct RawRange {
    start: f64,
    end: f64,
}

/// A time range that is empty, reversed, negative or not finite.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid time range {start}..{end}: need 0 <= start < end, both finite")]
pub struct InvalidTimeRange {
    /// Start as given.
    pub start: f64,
    /// End as given.
    pub end: f64,
}

impl TryFrom<RawRange> for TimeRange {
    type Error = InvalidTimeRange;
    fn try_from(r: RawRange) -> Result<Self, Self::Error> {
        TimeRange::new(r.start, r.end)
    }
}

impl TimeRange {
    /// Validates and builds a range.
    ///
    /// # Errors
    /// [`InvalidTimeRange`] unless `0 <= start < end` and both are finite.
    pub fn new(start: f64, end: f64) -> Result<Self, InvalidTimeRange> {
        if start.is_finite() && end.is_finite() && start >= 0.0 && start < end {
            Ok(Self { start, end })
        } else {
            Err(InvalidTimeRange { start, end })
        }
    }

    /// Start in seconds.
    #[must_use]
    pub const fn start(&self) -> f64 {
        self.start
    }

    /// End in seconds.
    #[must_use]
    pub const fn end(&self) -> f64 {
        self.end
    }

    /// Length in seconds.
    #[must_use]
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }

    /// Whether the two ranges share any time.
    #[must_use]
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `t` falls inside `[start, end)`.
    #[must_use]
    pub fn contains(&self, t: f64) -> bool {
        t >= self.start && t < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(TimeRange::new(0.0, 1.0).is_ok());
        for (s, e) in [(1.0, 1.0), (2.0, 1.0), (-1.0, 1.0), (0.0, f64::NAN), (0.0, f64::INFINITY)] {
            assert!(TimeRange::new(s, e).is_err(), "{s}..{e}");
        }
        assert!(serde_json::from_str::<TimeRange>(r#"{"start":5,"end":1}"#).is_err());
        let r: TimeRange = serde_json::from_str(r#"{"start":1.5,"end":3}"#).unwrap();
        assert_eq!(r.duration(), 1.5);
    }

    #[test]
    fn overlap_is_half_open() {
        let a = TimeRange::new(0.0, 10.0).unwrap();
        let b = TimeRange::new(10.0, 20.0).unwrap();
        let c = TimeRange::new(9.0, 11.0).unwrap();
        assert!(!a.overlaps(&b));
        assert!(a.overlaps(&c) && b.overlaps(&c));
    }
}
