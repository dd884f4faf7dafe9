//! The chain's holiday calendar (US retail calendar plus the global year-end days) and the
//! demand effect of each holiday. All dates are the store's local date.

use crate::catalog::CategoryId;
use chrono::{Datelike, NaiveDate, Weekday};

/// A day with a demand effect: a holiday, or the eve of one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HolidayEffect {
    pub name: &'static str,
    /// Is it a holiday for `dim_date.is_holiday` (eves that only move demand are not).
    pub is_holiday: bool,
    /// Multiplier of all demand; 0 = stores closed.
    pub multiplier: f64,
    /// Extra multiplier for the categories the day is about.
    pub boosted: &'static [(CategoryId, f64)],
}

use CategoryId as C;

/// The holiday whose name `dim_date` shows for `date`, if any.
pub fn is_holiday(date: NaiveDate) -> Option<&'static str> {
    holiday_effect(date).filter(|h| h.is_holiday).map(|h| h.name)
}

/// The demand effect of `date`, if it is a holiday or a demand-moving eve.
pub fn holiday_effect(date: NaiveDate) -> Option<HolidayEffect> {
    let (y, m, d) = (date.year(), date.month(), date.day());
    let h = |name, is_holiday, multiplier, boosted| Some(HolidayEffect { name, is_holiday, multiplier, boosted });
    let thanksgiving = nth_weekday(y, 11, Weekday::Thu, 4);
    let easter = easter_sunday(y);
    match (m, d) {
        (1, 1) => return h("New Year's Day", true, 0.7, &[]),
        (2, 14) => return h("Valentine's Day", true, 1.05, &[(C::Snacks, 1.5), (C::Seasonal, 1.4)]),
        (7, 4) => return h("Independence Day", true, 1.2, &[(C::Meat, 1.5), (C::Beverages, 1.5)]),
        (10, 31) => return h("Halloween", true, 1.1, &[(C::Snacks, 1.8), (C::Seasonal, 1.5)]),
        (12, 24) => return h("Christmas Eve", true, 1.4, &[(C::Bakery, 1.3), (C::Meat, 1.3), (C::Seasonal, 1.4)]),
        (12, 25) => return h("Christmas Day", true, 0.0, &[]),
        (12, 31) => return h("New Year's Eve", true, 1.3, &[(C::Beverages, 1.5), (C::Snacks, 1.3)]),
        _ => {}
    }
    if Some(date) == easter {
        return h("Easter Sunday", true, 0.6, &[]);
    }
    if easter.and_then(|e| e.pred_opt()) == Some(date) {
        return h("Holy Saturday", false, 1.2, &[(C::Bakery, 1.4), (C::Meat, 1.3)]);
    }
    if Some(date) == thanksgiving {
        return h("Thanksgiving", true, 0.5, &[]);
    }
    if thanksgiving.and_then(|t| t.pred_opt()) == Some(date) {
        return h("Thanksgiving Eve", false, 1.5, &[(C::Produce, 1.3), (C::Meat, 1.4), (C::Bakery, 1.3)]);
    }
    if thanksgiving.and_then(|t| t.succ_opt()) == Some(date) {
        return h("Black Friday", true, 1.6, &[(C::Electronics, 2.5), (C::Seasonal, 1.8)]);
    }
    if Some(date) == last_weekday(y, 5, Weekday::Mon) {
        return h("Memorial Day", true, 1.15, &[(C::Meat, 1.4), (C::Beverages, 1.3)]);
    }
    if Some(date) == nth_weekday(y, 9, Weekday::Mon, 1) {
        return h("Labor Day", true, 1.1, &[(C::Meat, 1.3), (C::Beverages, 1.2)]);
    }
    None
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    (1..=5).rev().find_map(|n| NaiveDate::from_weekday_of_month_opt(year, month, weekday, n))
}

/// Gregorian Easter (anonymous Gregorian algorithm).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn known_dates() {
        assert_eq!(easter_sunday(2024), Some(d(2024, 3, 31)));
        assert_eq!(easter_sunday(2025), Some(d(2025, 4, 20)));
        assert_eq!(is_holiday(d(2025, 11, 27)), Some("Thanksgiving"));
        assert_eq!(is_holiday(d(2025, 11, 28)), Some("Black Friday"));
        assert_eq!(is_holiday(d(2025, 5, 26)), Some("Memorial Day"));
        assert_eq!(is_holiday(d(2025, 9, 1)), Some("Labor Day"));
        assert_eq!(is_holiday(d(2025, 12, 25)), Some("Christmas Day"));
        assert_eq!(is_holiday(d(2025, 3, 3)), None);
        // An eve moves demand but is not a holiday.
        assert_eq!(is_holiday(d(2025, 11, 26)), None);
        assert_eq!(holiday_effect(d(2025, 11, 26)).unwrap().name, "Thanksgiving Eve");
    }
}
