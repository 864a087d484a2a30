//! Named time intervals, in Alertmanager's syntax and meaning
//! (`time_intervals` of its configuration, its `timeinterval` package):
//! maintenance windows that routes mute on (`mute_time_intervals`) or are
//! active in only (`active_time_intervals`).
//!
//! A named interval holds when any of its periods does. A period holds
//! when every field it sets does, in its `location` (UTC by default):
//! - `times`: `start_time` ≤ the time of day < `end_time`, `HH:MM`, to the
//!   minute; `24:00` ends at midnight;
//! - `weekdays`: `monday` or `monday:friday`, inclusive;
//! - `days_of_month`: `1`, `1:5`, or from the end of the month, `-1` (its
//!   last day) or `-3:-1`; a range is clamped to the month;
//! - `months`: `january` or `1`, ranges `january:march`;
//! - `years`: `2026` or `2026:2027`.

mod compile;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;

/// One named interval as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalDocument {
    /// The name routes refer to.
    pub name: String,
    /// Its periods; the interval holds when any of them does.
    pub time_intervals: Vec<PeriodDocument>,
}

/// One period as written; a field left out holds always.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodDocument {
    /// Times of day, `start_time` inclusive, `end_time` exclusive.
    #[serde(default)]
    pub times: Vec<TimesDocument>,
    /// Days of the week or ranges of them: `saturday`, `monday:friday`.
    #[serde(default)]
    pub weekdays: Vec<Scalar>,
    /// Days of the month, negative from its end: `1:5`, `-1`.
    #[serde(default)]
    pub days_of_month: Vec<Scalar>,
    /// Months by name or number: `december`, `1:3`.
    #[serde(default)]
    pub months: Vec<Scalar>,
    /// Years: `2026`, `2026:2030`.
    #[serde(default)]
    pub years: Vec<Scalar>,
    /// IANA time zone the other fields are read in (default UTC).
    #[serde(default)]
    pub location: Option<String>,
}

/// A time-of-day range as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimesDocument {
    /// `HH:MM`, inclusive.
    pub start_time: String,
    /// `HH:MM` (up to `24:00`), exclusive.
    pub end_time: String,
}

/// A list entry that YAML may give as a number (`2026`) or a string (`1:5`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `1:5`, `monday`.
    Text(String),
    /// `2026`, `-1`.
    Number(i64),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Text(s) => s.trim().to_string(),
            Scalar::Number(n) => n.to_string(),
        }
    }
}

/// A named interval, checked and ready to ask.
#[derive(Debug, Clone)]
pub struct TimeInterval {
    /// Its name.
    pub name: String,
    periods: Vec<Period>,
}

/// One period, checked (see `compile.rs`): inclusive ranges, except `times`.
#[derive(Debug, Clone)]
struct Period {
    /// Minutes of the day, `[start, end)`.
    times: Vec<(i32, i32)>,
    /// Sunday = 0, as Alertmanager counts.
    weekdays: Vec<(i32, i32)>,
    days_of_month: Vec<(i32, i32)>,
    months: Vec<(i32, i32)>,
    years: Vec<(i32, i32)>,
    tz: TimeZone,
}

/// How far [`TimeInterval::next_change`] looks ahead.
const LOOKAHEAD_DAYS: i64 = 400;

impl Period {
    fn contains(&self, at: Timestamp) -> bool {
        let t = at.to_zoned(self.tz.clone());
        let within = |ranges: &[(i32, i32)], v: i32| {
            ranges.is_empty() || ranges.iter().any(|&(a, b)| a <= v && v <= b)
        };
        let minute = i32::from(t.hour()) * 60 + i32::from(t.minute());
        let in_times =
            self.times.is_empty() || self.times.iter().any(|&(a, b)| a <= minute && minute < b);
        let days = i32::from(t.days_in_month());
        let day = i32::from(t.day());
        let in_days = self.days_of_month.is_empty()
            || self.days_of_month.iter().any(|&(a, b)| {
                let resolve = |d: i32| if d < 0 { days + d + 1 } else { d };
                let (a, b) = (resolve(a), resolve(b));
                // Alertmanager skips a range that begins after this month's end, and clamps the rest.
                a <= days && a.max(1) <= day && day <= b.min(days)
            });
        in_times
            && in_days
            && within(
                &self.weekdays,
                i32::from(t.weekday().to_sunday_zero_offset()),
            )
            && within(&self.months, i32::from(t.month()))
            && within(&self.years, i32::from(t.year()))
    }

    /// The first instant after `at` where this period may start or stop
    /// holding: a `times` bound or a midnight, in its zone.
    fn next_boundary(&self, at: Timestamp) -> Option<Timestamp> {
        let t = at.to_zoned(self.tz.clone());
        let mut day: Date = t.date();
        for _ in 0..2 {
            let mut minutes: Vec<i32> = vec![0];
            for &(a, b) in &self.times {
                minutes.extend([a, b]);
            }
            minutes.sort_unstable();
            for m in minutes.into_iter().filter(|m| *m < 24 * 60) {
                let civil = day.at((m / 60) as i8, (m % 60) as i8, 0, 0);
                if let Ok(z) = civil.to_zoned(self.tz.clone())
                    && z.timestamp() > at
                {
                    return Some(z.timestamp());
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

impl TimeInterval {
    /// Whether the interval holds at `at`.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.periods.iter().any(|p| p.contains(at))
    }

    /// When the interval next starts or stops holding after `at`, looking
    /// [`LOOKAHEAD_DAYS`] ahead; `None`: not within that.
    pub fn next_change(&self, at: Timestamp) -> Option<Timestamp> {
        let now = self.contains(at);
        let horizon = at
            .checked_add(jiff::SignedDuration::from_hours(24 * LOOKAHEAD_DAYS))
            .ok()?;
        let mut t = at;
        while t < horizon {
            t = self
                .periods
                .iter()
                .filter_map(|p| p.next_boundary(t))
                .min()?;
            if self.contains(t) != now {
                return Some(t);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn interval(yaml: &str) -> TimeInterval {
        let doc: TimeIntervalDocument = serde_yaml::from_str(yaml).unwrap();
        doc.compile("time_intervals[0]").unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn weekday_ranges_are_inclusive_and_counted_from_sunday() {
        let workdays = interval("name: w\ntime_intervals:\n  - weekdays: ['monday:friday']\n");
        // 2026-12-04 is a Friday, 2026-12-05 a Saturday, 2026-12-07 a Monday.
        assert!(workdays.contains(at("2026-12-04T23:59:00Z")));
        assert!(!workdays.contains(at("2026-12-05T00:00:00Z")));
        assert!(!workdays.contains(at("2026-12-06T12:00:00Z")));
        assert!(workdays.contains(at("2026-12-07T00:00:00Z")));
        let weekend = interval("name: w\ntime_intervals:\n  - weekdays: [Saturday, sunday]\n");
        assert!(weekend.contains(at("2026-12-06T12:00:00Z")));
        assert!(!weekend.contains(at("2026-12-07T12:00:00Z")));
    }

    #[test]
    fn negative_days_of_month_count_from_its_end() {
        let last_three = interval("name: m\ntime_intervals:\n  - days_of_month: ['-3:-1']\n");
        // February 2027 has 28 days, December 2026 has 31.
        assert!(!last_three.contains(at("2027-02-25T12:00:00Z")));
        assert!(last_three.contains(at("2027-02-26T00:00:00Z")));
        assert!(last_three.contains(at("2027-02-28T23:59:00Z")));
        assert!(!last_three.contains(at("2026-12-28T12:00:00Z")));
        assert!(last_three.contains(at("2026-12-29T12:00:00Z")));
        let mixed = interval("name: m\ntime_intervals:\n  - days_of_month: ['1:5', -1, 15]\n");
        assert!(mixed.contains(at("2026-12-05T12:00:00Z")));
        assert!(!mixed.contains(at("2026-12-06T12:00:00Z")));
        assert!(mixed.contains(at("2026-12-15T12:00:00Z")));
        assert!(mixed.contains(at("2026-12-31T12:00:00Z")));
        // 30:31 begins after February's end: skipped, not clamped into it.
        let late = interval("name: m\ntime_intervals:\n  - days_of_month: ['30:31']\n");
        assert!(!late.contains(at("2027-02-28T12:00:00Z")));
        // 25:31 is clamped to February's 28 days.
        let clamped = interval("name: m\ntime_intervals:\n  - days_of_month: ['25:31']\n");
        assert!(clamped.contains(at("2027-02-28T12:00:00Z")));
        assert!(!clamped.contains(at("2027-03-01T12:00:00Z")));
    }

    #[test]
    fn times_are_read_in_the_location_across_the_dst_changes() {
        let nights = interval(
            "name: n\ntime_intervals:\n  - times: [{start_time: '01:00', end_time: '04:00'}]\n    location: Europe/Berlin\n",
        );
        // Winter (CET, UTC+1): 01:00 Berlin is 00:00 UTC.
        assert!(nights.contains(at("2027-03-27T00:00:00Z")));
        assert!(!nights.contains(at("2027-03-26T23:59:00Z")));
        // 2027-03-28, the last Sunday of March: 02:00 CET jumps to 03:00 CEST.
        // 03:59 CEST is 01:59 UTC, 04:00 CEST is 02:00 UTC.
        assert!(nights.contains(at("2027-03-28T01:59:00Z")));
        assert!(!nights.contains(at("2027-03-28T02:00:00Z")));
        // 2027-10-31, the last Sunday of October: 03:00 CEST falls back to 02:00 CET.
        // 01:00 CEST is 23:00 UTC the day before; 04:00 CET is 03:00 UTC.
        assert!(nights.contains(at("2027-10-30T23:00:00Z")));
        assert!(nights.contains(at("2027-10-31T02:59:00Z")));
        assert!(!nights.contains(at("2027-10-31T03:00:00Z")));
        // The window ends at 04:00 local: 3 h long in March, 4 h in October.
        assert_eq!(
            nights.next_change(at("2027-03-28T00:30:00Z")),
            Some(at("2027-03-28T02:00:00Z"))
        );
        assert_eq!(
            nights.next_change(at("2027-10-30T23:30:00Z")),
            Some(at("2027-10-31T03:00:00Z"))
        );
    }

    #[test]
    fn midnight_bounds_start_inclusive_and_end_exclusive() {
        let late = interval(
            "name: l\ntime_intervals:\n  - times: [{start_time: '22:00', end_time: '24:00'}, {start_time: '00:00', end_time: '06:00'}]\n",
        );
        assert!(!late.contains(at("2026-12-02T21:59:59Z")));
        assert!(late.contains(at("2026-12-02T22:00:00Z")));
        assert!(late.contains(at("2026-12-02T23:59:59Z")));
        assert!(late.contains(at("2026-12-03T00:00:00Z")));
        assert!(late.contains(at("2026-12-03T05:59:00Z")));
        assert!(!late.contains(at("2026-12-03T06:00:00Z")));
        // From 22:00 it holds through midnight until 06:00.
        assert_eq!(
            late.next_change(at("2026-12-02T22:30:00Z")),
            Some(at("2026-12-03T06:00:00Z"))
        );
        assert_eq!(
            late.next_change(at("2026-12-03T07:00:00Z")),
            Some(at("2026-12-03T22:00:00Z"))
        );
    }

    #[test]
    fn months_years_and_fields_together_must_all_hold() {
        let i = interval(
            "name: y\ntime_intervals:\n  - months: ['december', '1:2']\n    years: [2026]\n    weekdays: [saturday]\n",
        );
        assert!(
            i.contains(at("2026-12-05T10:00:00Z")),
            "a Saturday in December 2026"
        );
        assert!(!i.contains(at("2026-12-04T10:00:00Z")), "a Friday");
        assert!(!i.contains(at("2027-01-02T10:00:00Z")), "2027");
        assert!(!i.contains(at("2026-11-28T10:00:00Z")), "November");
        let any = interval("name: a\ntime_intervals:\n  - {}\n");
        assert!(any.contains(at("2026-12-02T10:00:00Z")), "no field: always");
        let none = interval("name: n\ntime_intervals: []\n");
        assert!(
            !none.contains(at("2026-12-02T10:00:00Z")),
            "no period: never"
        );
    }

    #[test]
    fn next_change_is_none_for_an_interval_that_always_holds() {
        let always = interval("name: a\ntime_intervals:\n  - {}\n");
        assert_eq!(always.next_change(at("2026-12-02T10:00:00Z")), None);
    }
}
