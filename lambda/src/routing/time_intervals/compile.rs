//! Checking a named interval as written: every field parsed, ranges in
//! order, the zone known; errors name the field under the interval's path.

use jiff::tz::TimeZone;

use super::{Period, PeriodDocument, Scalar, TimeInterval, TimeIntervalDocument};
use crate::routing::RoutingError;

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl TimeIntervalDocument {
    /// Checks every field; `path` is where the document puts it
    /// (`time_intervals[0]`), and errors name the field under it.
    pub fn compile(&self, path: &str) -> Result<TimeInterval, RoutingError> {
        let err = |field: &str, message: String| RoutingError {
            path: format!("{path}.{field}"),
            message,
        };
        if self.name.trim().is_empty() {
            return Err(err("name", "an interval needs a name".into()));
        }
        let periods = self
            .time_intervals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.compile()
                    .map_err(|(f, m)| err(&format!("time_intervals[{i}].{f}"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TimeInterval {
            name: self.name.clone(),
            periods,
        })
    }
}

impl PeriodDocument {
    /// The period, or the field (`times[0].end_time`) and what is wrong.
    fn compile(&self) -> Result<Period, (String, String)> {
        let indexed = |field: &str, i: usize, e: String| (format!("{field}[{i}]"), e);
        let mut times = Vec::new();
        for (i, t) in self.times.iter().enumerate() {
            let start = minute_of_day(&t.start_time, false)
                .map_err(|e| (format!("times[{i}].start_time"), e))?;
            let end = minute_of_day(&t.end_time, true)
                .map_err(|e| (format!("times[{i}].end_time"), e))?;
            if start >= end {
                return Err((
                    format!("times[{i}]"),
                    format!(
                        "start_time {} must be before end_time {}; a window across midnight is two ranges, {}-24:00 and 00:00-{}",
                        t.start_time, t.end_time, t.start_time, t.end_time
                    ),
                ));
            }
            times.push((start, end));
        }
        let ranges =
            |field: &str, items: &[Scalar], parse: &dyn Fn(&str) -> Result<i32, String>| {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, s)| range(&s.text(), parse).map_err(|e| indexed(field, i, e)))
                    .collect::<Result<Vec<_>, _>>()
            };
        let weekdays = ranges("weekdays", &self.weekdays, &|s| {
            named(s, &WEEKDAYS, 0, "weekday")
        })?;
        if let Some(i) = weekdays.iter().position(|(a, b)| a > b) {
            return Err(indexed(
                "weekdays",
                i,
                "the first day must not come after the last (sunday is the first of the week)"
                    .into(),
            ));
        }
        let days_of_month = ranges("days_of_month", &self.days_of_month, &day_of_month)?;
        if let Some(i) = days_of_month
            .iter()
            .position(|&(a, b)| (a < 0 && b > 0) || (a.signum() == b.signum() && a > b))
        {
            return Err(indexed("days_of_month", i, "the first day must not come after the last (a range from the end of the month is -3:-1)".into()));
        }
        let months = ranges("months", &self.months, &|s| {
            s.parse::<i32>()
                .ok()
                .filter(|m| (1..=12).contains(m))
                .map_or_else(|| named(s, &MONTHS, 1, "month"), Ok)
        })?;
        if let Some(i) = months.iter().position(|(a, b)| a > b) {
            return Err(indexed(
                "months",
                i,
                "the first month must not come after the last".into(),
            ));
        }
        let years = ranges("years", &self.years, &|s| match s.parse::<i32>() {
            Ok(y) if (1..=9999).contains(&y) => Ok(y),
            _ => Err(format!("{s:?} is not a year")),
        })?;
        if let Some(i) = years.iter().position(|(a, b)| a > b) {
            return Err(indexed(
                "years",
                i,
                "the first year must not come after the last".into(),
            ));
        }
        let tz = match self.location.as_deref().map(str::trim) {
            None | Some("") | Some("UTC") => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|e| {
                (
                    "location".to_string(),
                    format!("{name:?} is not a known IANA time zone (such as Europe/Berlin): {e}"),
                )
            })?,
        };
        Ok(Period {
            times,
            weekdays,
            days_of_month,
            months,
            years,
            tz,
        })
    }
}

/// `HH:MM` as minutes since midnight; `24:00` only as an end.
fn minute_of_day(text: &str, end: bool) -> Result<i32, String> {
    let bad =
        || format!("{text:?} is not a time of day HH:MM (00:00 to 23:59, or 24:00 as an end)");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) if end => Ok(24 * 60),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

/// `a` or `a:b`, each bound parsed by `parse`.
fn range(text: &str, parse: &dyn Fn(&str) -> Result<i32, String>) -> Result<(i32, i32), String> {
    match text.split_once(':') {
        Some((a, b)) => Ok((parse(a.trim())?, parse(b.trim())?)),
        None => {
            let v = parse(text)?;
            Ok((v, v))
        }
    }
}

fn named(text: &str, names: &[&str], first: i32, what: &str) -> Result<i32, String> {
    let lower = text.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as i32 + first)
        .ok_or_else(|| format!("{text:?} is not a {what} (one of {})", names.join(", ")))
}

fn day_of_month(text: &str) -> Result<i32, String> {
    match text.parse::<i32>() {
        Ok(d) if (1..=31).contains(&d) || (-31..=-1).contains(&d) => Ok(d),
        _ => Err(format!(
            "{text:?} is not a day of the month (1 to 31, or -1 to -31 from its end)"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn error(yaml: &str) -> RoutingError {
        let doc: TimeIntervalDocument = serde_yaml::from_str(yaml).unwrap();
        doc.compile("time_intervals[0]").unwrap_err()
    }

    #[test]
    fn bad_fields_are_named_with_their_path() {
        let e = error(
            "name: x\ntime_intervals:\n  - times: [{start_time: '09:00', end_time: '08:00'}]\n",
        );
        assert_eq!(e.path, "time_intervals[0].time_intervals[0].times[0]");
        let e = error(
            "name: x\ntime_intervals:\n  - times: [{start_time: '9:00', end_time: '10:00'}]\n",
        );
        assert_eq!(
            e.path,
            "time_intervals[0].time_intervals[0].times[0].start_time"
        );
        let e = error(
            "name: x\ntime_intervals:\n  - times: [{start_time: '24:00', end_time: '24:00'}]\n",
        );
        assert!(e.path.ends_with("start_time"), "{e}");
        let e = error("name: x\ntime_intervals:\n  - {}\n  - weekdays: [funday]\n");
        assert_eq!(e.path, "time_intervals[0].time_intervals[1].weekdays[0]");
        assert!(e.message.contains("funday"), "{e}");
        let e = error("name: x\ntime_intervals:\n  - weekdays: ['friday:monday']\n");
        assert!(e.path.ends_with("weekdays[0]"), "{e}");
        for bad in ["0", "32", "'-32'", "'5:1'", "'-1:3'", "'-1:-3'"] {
            let e = error(&format!(
                "name: x\ntime_intervals:\n  - days_of_month: [{bad}]\n"
            ));
            assert!(e.path.ends_with("days_of_month[0]"), "{bad}: {e}");
        }
        let e = error("name: x\ntime_intervals:\n  - months: [13]\n");
        assert!(e.path.ends_with("months[0]"), "{e}");
        let e = error("name: x\ntime_intervals:\n  - years: ['2027:2026']\n");
        assert!(e.path.ends_with("years[0]"), "{e}");
        let e = error("name: x\ntime_intervals:\n  - location: Mars/Olympus_Mons\n");
        assert!(e.path.ends_with("location"), "{e}");
        let e = error("name: ' '\ntime_intervals: []\n");
        assert_eq!(e.path, "time_intervals[0].name");
    }
}
