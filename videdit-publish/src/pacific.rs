//! US Pacific time (America/Los_Angeles), just enough to know when Google's
//! daily quotas reset: at midnight Pacific time.
//!
//! The rule in force since 2007 (Energy Policy Act of 2005): daylight time
//! (PDT, UTC−7) from 02:00 local on the second Sunday of March to 02:00
//! local on the first Sunday of November; standard time (PST, UTC−8)
//! otherwise. A time-zone database crate would be a dependency for one
//! rule that has not changed in almost twenty years.

use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

const PST: i8 = -8;
const PDT: i8 = -7;

/// The `n`th (1-based) Sunday of a month.
fn nth_sunday(year: i32, month: Month, n: u8) -> Date {
    let first = Date::from_calendar_date(year, month, 1).expect("day 1 exists");
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    first + time::Duration::days(i64::from(to_sunday) + 7 * (i64::from(n) - 1))
}

fn dst_start_date(year: i32) -> Date {
    nth_sunday(year, Month::March, 2)
}

fn dst_end_date(year: i32) -> Date {
    nth_sunday(year, Month::November, 1)
}

/// The Pacific offset in force at an instant.
fn offset_at(instant: OffsetDateTime) -> UtcOffset {
    let utc = instant.to_offset(UtcOffset::UTC);
    let year = utc.year();
    // 02:00 PST is 10:00 UTC; 02:00 PDT is 09:00 UTC.
    let start = dst_start_date(year).with_time(Time::from_hms(10, 0, 0).expect("valid")).assume_utc();
    let end = dst_end_date(year).with_time(Time::from_hms(9, 0, 0).expect("valid")).assume_utc();
    let hours = if utc >= start && utc < end { PDT } else { PST };
    UtcOffset::from_hms(hours, 0, 0).expect("valid offset")
}

/// The Pacific offset at 00:00 local time on `date`. Midnight is never in a
/// transition (they happen at 02:00), so it is unambiguous: midnight of the
/// March transition day is still PST, of the November one still PDT.
fn offset_at_local_midnight(date: Date) -> UtcOffset {
    let year = date.year();
    let hours = if date > dst_start_date(year) && date <= dst_end_date(year) { PDT } else { PST };
    UtcOffset::from_hms(hours, 0, 0).expect("valid offset")
}

/// The first midnight in America/Los_Angeles strictly after `now`.
#[must_use]
pub fn next_pacific_midnight(now: OffsetDateTime) -> OffsetDateTime {
    let local_date = now.to_offset(offset_at(now)).date();
    let next = local_date.next_day().expect("not the end of time");
    next.with_time(Time::MIDNIGHT).assume_offset(offset_at_local_midnight(next)).to_offset(UtcOffset::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Weekday;
    use time::macros::datetime;

    #[test]
    fn transition_dates() {
        assert_eq!(dst_start_date(2025), time::macros::date!(2025 - 03 - 09));
        assert_eq!(dst_end_date(2025), time::macros::date!(2025 - 11 - 02));
        assert_eq!(dst_start_date(2026), time::macros::date!(2026 - 03 - 08));
        assert_eq!(dst_end_date(2026), time::macros::date!(2026 - 11 - 01));
        assert_eq!(dst_start_date(2026).weekday(), Weekday::Sunday);
    }

    #[test]
    fn standard_time() {
        // 04:00 PST on 15 January → midnight PST of the 16th is 08:00 UTC.
        assert_eq!(next_pacific_midnight(datetime!(2025-01-15 12:00 UTC)), datetime!(2025-01-16 08:00 UTC));
        // 23:30 PST on 31 December → the new year.
        assert_eq!(next_pacific_midnight(datetime!(2026-01-01 07:30 UTC)), datetime!(2026-01-01 08:00 UTC));
    }

    #[test]
    fn daylight_time() {
        // 23:00 PDT on 30 June → midnight PDT of 1 July is 07:00 UTC.
        assert_eq!(next_pacific_midnight(datetime!(2025-07-01 06:00 UTC)), datetime!(2025-07-01 07:00 UTC));
        assert_eq!(next_pacific_midnight(datetime!(2025-07-01 07:00 UTC)), datetime!(2025-07-02 07:00 UTC));
    }

    #[test]
    fn around_the_transitions() {
        // 23:30 PST on 8 March 2025; the next midnight (9 March) is still PST.
        assert_eq!(next_pacific_midnight(datetime!(2025-03-09 07:30 UTC)), datetime!(2025-03-09 08:00 UTC));
        // 05:00 PDT on 9 March; midnight of the 10th is PDT.
        assert_eq!(next_pacific_midnight(datetime!(2025-03-09 12:00 UTC)), datetime!(2025-03-10 07:00 UTC));
        // 23:00 PDT on 1 November; midnight of the 2nd is still PDT.
        assert_eq!(next_pacific_midnight(datetime!(2025-11-02 06:00 UTC)), datetime!(2025-11-02 07:00 UTC));
        // 02:00 PST on 2 November (just after falling back); midnight of the 3rd is PST.
        assert_eq!(next_pacific_midnight(datetime!(2025-11-02 10:00 UTC)), datetime!(2025-11-03 08:00 UTC));
        // 01:30 PDT, the first of the two 01:30s on 2 November.
        assert_eq!(next_pacific_midnight(datetime!(2025-11-02 08:30 UTC)), datetime!(2025-11-03 08:00 UTC));
    }
}
