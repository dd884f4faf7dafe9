//! `dim_date` and its holiday calendar.
//!
//! The calendar is data, not code: the default is the US federal calendar (computed by rule for
//! any year, with observed dates when a holiday falls on a weekend), and a deployment can load its
//! own list (`YYYY-MM-DD Name` per line) or extend the default.

use crate::DateRow;
use chrono::{Datelike, Duration, NaiveDate, Weekday};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HolidayCalendar {
    days: BTreeMap<NaiveDate, String>,
}

impl HolidayCalendar {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, date: NaiveDate, name: &str) {
        // Two holidays on one day (e.g. an observed date meeting another) keep both names.
        self.days
            .entry(date)
            .and_modify(|n| {
                if !n.split(" / ").any(|x| x == name) {
                    n.push_str(" / ");
                    n.push_str(name);
                }
            })
            .or_insert_with(|| name.to_string());
    }

    pub fn get(&self, date: NaiveDate) -> Option<&str> {
        self.days.get(&date).map(|s| s.as_str())
    }

    pub fn len(&self) -> usize {
        self.days.len()
    }

    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (NaiveDate, &str)> {
        self.days.iter().map(|(d, n)| (*d, n.as_str()))
    }

    /// Parse `YYYY-MM-DD Name of holiday` lines; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<HolidayCalendar, String> {
        let mut cal = HolidayCalendar::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (date, name) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let date =
                NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|e| format!("holiday line {}: `{line}`: {e} (expected `YYYY-MM-DD Name`)", i + 1))?;
            let name = name.trim();
            cal.add(date, if name.is_empty() { "Holiday" } else { name });
        }
        Ok(cal)
    }

    /// The US federal holidays of the given years, with the observed weekday when a fixed-date
    /// holiday falls on a Saturday (observed Friday) or Sunday (observed Monday).
    pub fn us_federal(years: impl IntoIterator<Item = i32>) -> HolidayCalendar {
        let mut cal = HolidayCalendar::new();
        for y in years {
            let fixed = |m: u32, d: u32| NaiveDate::from_ymd_opt(y, m, d).expect("valid fixed date");
            for (date, name) in [
                (fixed(1, 1), "New Year's Day"),
                (fixed(6, 19), "Juneteenth"),
                (fixed(7, 4), "Independence Day"),
                (fixed(11, 11), "Veterans Day"),
                (fixed(12, 25), "Christmas Day"),
            ] {
                // Juneteenth became a federal holiday in 2021.
                if name == "Juneteenth" && y < 2021 {
                    continue;
                }
                cal.add(date, name);
                match date.weekday() {
                    Weekday::Sat => cal.add(date - Duration::days(1), &format!("{name} (observed)")),
                    Weekday::Sun => cal.add(date + Duration::days(1), &format!("{name} (observed)")),
                    _ => {}
                }
            }
            cal.add(nth_weekday(y, 1, Weekday::Mon, 3), "Martin Luther King Jr. Day");
            cal.add(nth_weekday(y, 2, Weekday::Mon, 3), "Presidents' Day");
            cal.add(last_weekday(y, 5, Weekday::Mon), "Memorial Day");
            cal.add(nth_weekday(y, 9, Weekday::Mon, 1), "Labor Day");
            cal.add(nth_weekday(y, 10, Weekday::Mon, 2), "Columbus Day");
            cal.add(nth_weekday(y, 11, Weekday::Thu, 4), "Thanksgiving Day");
        }
        cal
    }
}

/// The n-th (1-based) given weekday of a month.
pub fn nth_weekday(year: i32, month: u32, wd: Weekday, n: u32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, wd, n as u8).expect("n-th weekday exists")
}

/// The last given weekday of a month.
pub fn last_weekday(year: i32, month: u32, wd: Weekday) -> NaiveDate {
    let next = if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) };
    let mut d = next.expect("valid month") - Duration::days(1);
    while d.weekday() != wd {
        d -= Duration::days(1);
    }
    d
}

/// One `dim_date` row per day from `from` to `to` inclusive.
pub fn dim_date(from: NaiveDate, to: NaiveDate, holidays: &HolidayCalendar) -> Vec<DateRow> {
    let mut out = Vec::new();
    let mut d = from;
    while d <= to {
        let name = holidays.get(d);
        out.push(DateRow {
            date_key: d,
            day_of_week: d.weekday().number_from_monday() as u8,
            month: d.month() as u8,
            quarter: ((d.month() - 1) / 3 + 1) as u8,
            year: d.year() as u16,
            is_holiday: name.is_some(),
            holiday_name: name.map(str::to_string),
            is_weekend: matches!(d.weekday(), Weekday::Sat | Weekday::Sun),
        });
        d += Duration::days(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn us_federal_2025_matches_the_published_calendar() {
        // opm.gov's 2025 federal holidays.
        let cal = HolidayCalendar::us_federal([2025]);
        let expected = [
            (d(2025, 1, 1), "New Year's Day"),
            (d(2025, 1, 20), "Martin Luther King Jr. Day"),
            (d(2025, 2, 17), "Presidents' Day"),
            (d(2025, 5, 26), "Memorial Day"),
            (d(2025, 6, 19), "Juneteenth"),
            (d(2025, 7, 4), "Independence Day"),
            (d(2025, 9, 1), "Labor Day"),
            (d(2025, 10, 13), "Columbus Day"),
            (d(2025, 11, 11), "Veterans Day"),
            (d(2025, 11, 27), "Thanksgiving Day"),
            (d(2025, 12, 25), "Christmas Day"),
        ];
        let got: Vec<(NaiveDate, &str)> = cal.iter().collect();
        assert_eq!(got, expected.to_vec());
    }

    #[test]
    fn weekend_holidays_get_an_observed_weekday() {
        // 2022-12-25 was a Sunday (observed Monday 26th); 2021-07-04 a Sunday; 2022-01-01 a Saturday
        // (observed Friday 2021-12-31, which belongs to 2021's list only through 2022's rule).
        let cal = HolidayCalendar::us_federal([2021, 2022]);
        assert_eq!(cal.get(d(2022, 12, 26)), Some("Christmas Day (observed)"));
        assert_eq!(cal.get(d(2021, 7, 5)), Some("Independence Day (observed)"));
        assert_eq!(cal.get(d(2021, 12, 31)), Some("New Year's Day (observed)"));
    }

    #[test]
    fn dim_date_rows_have_weekends_quarters_and_holidays() {
        let cal = HolidayCalendar::parse("# custom\n2025-03-14 Pi Day\n\n2025-03-17 St Patrick\n").unwrap();
        let rows = dim_date(d(2025, 3, 14), d(2025, 3, 17), &cal);
        assert_eq!(rows.len(), 4);
        let fri = &rows[0];
        assert_eq!((fri.day_of_week, fri.is_weekend, fri.is_holiday, fri.quarter), (5, false, true, 1));
        assert_eq!(fri.holiday_name.as_deref(), Some("Pi Day"));
        assert!(rows[1].is_weekend && rows[2].is_weekend && !rows[1].is_holiday);
        assert_eq!(rows[3].holiday_name.as_deref(), Some("St Patrick"));
        assert_eq!(dim_date(d(2025, 10, 1), d(2025, 10, 1), &cal)[0].quarter, 4);
    }

    #[test]
    fn bad_holiday_lines_name_the_line() {
        let err = HolidayCalendar::parse("2025-01-01 ok\n2025-13-01 bad").unwrap_err();
        assert!(err.contains("line 2") && err.contains("2025-13-01"), "{err}");
    }
}
