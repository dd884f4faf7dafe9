//! The queries the product itself issues (dashboards, jobs), written once in the SQL subset both
//! backends accept, and run unchanged on DataFusion and on ClickHouse 18.16.
//!
//! Rules this subset follows (each one is a real difference between the engines):
//! - at most one `JOIN` per SELECT, with `USING (…)` on same-named columns (18.16 has no multiple
//!   joins; `ON` with qualified names behaves differently); a USING column is referenced with
//!   the left table's name (`agg_sales_daily.date_key`), which DataFusion requires and 18.16 accepts;
//! - aggregate aliases never reuse a column name (`SUM(revenue) AS total_revenue`): ClickHouse
//!   substitutes aliases inside expressions;
//! - no engine-specific functions; dates and times are string literals (`'2025-01-01'`,
//!   `'2025-01-01 10:00:00'`), which both compare against Date/DateTime columns;
//! - every ORDER BY is total (ties broken by a key) so both backends return the same rows;
//! - rollup tables hold partial sums: always `SUM(...) GROUP BY` them; dashboards read the
//!   smallest rollup that answers them (per store-day, per SKU-day, stock-outs per store-day)
//!   so a year of history stays within the latency budget on both engines;
//! - no integer division (`/` on integers truncates in DataFusion, not in ClickHouse).
//!
//! Parameters are typed (dates, times, limits) and rendered into the text, so no value a user
//! supplies ends up as SQL.

use chrono::{DateTime, NaiveDate, Utc};

fn d(x: NaiveDate) -> String {
    x.format("%Y-%m-%d").to_string()
}

fn t(x: DateTime<Utc>) -> String {
    x.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Revenue, units and profit per day (executive dashboard trend line).
pub fn revenue_by_day(from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "SELECT date_key, SUM(revenue) AS total_revenue, SUM(units) AS total_units, SUM(profit) AS total_profit \
         FROM agg_sales_store_daily WHERE date_key >= '{}' AND date_key <= '{}' \
         GROUP BY date_key ORDER BY date_key",
        d(from),
        d(to)
    )
}

/// Revenue per store with its name and region.
pub fn revenue_by_store(from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "SELECT store_key, store_name, region, SUM(revenue) AS total_revenue, SUM(units) AS total_units \
         FROM agg_sales_store_daily JOIN dim_store USING (store_key) \
         WHERE date_key >= '{}' AND date_key <= '{}' \
         GROUP BY store_key, store_name, region ORDER BY total_revenue DESC, store_key",
        d(from),
        d(to)
    )
}

/// Revenue and margin per product category.
pub fn revenue_by_category(from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "SELECT category, SUM(revenue) AS total_revenue, SUM(profit) AS total_profit, SUM(units) AS total_units \
         FROM agg_sales_product_daily JOIN dim_product USING (product_key) \
         WHERE date_key >= '{}' AND date_key <= '{}' \
         GROUP BY category ORDER BY total_revenue DESC, category",
        d(from),
        d(to)
    )
}

/// The best-selling SKUs by revenue.
pub fn top_skus(from: NaiveDate, to: NaiveDate, limit: u32) -> String {
    format!(
        "SELECT product_key, product_name, category, SUM(units) AS total_units, SUM(revenue) AS total_revenue \
         FROM agg_sales_product_daily JOIN dim_product USING (product_key) \
         WHERE date_key >= '{}' AND date_key <= '{}' \
         GROUP BY product_key, product_name, category ORDER BY total_revenue DESC, product_key LIMIT {limit}",
        d(from),
        d(to)
    )
}

/// Revenue on weekdays, weekends and holidays (uses the calendar dimension).
pub fn revenue_by_day_type(from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "SELECT is_weekend, is_holiday, COUNT(DISTINCT full_date) AS days, SUM(revenue) AS total_revenue \
         FROM agg_sales_store_daily JOIN dim_date USING (date_key) \
         WHERE agg_sales_store_daily.date_key >= '{}' AND agg_sales_store_daily.date_key <= '{}' \
         GROUP BY is_weekend, is_holiday ORDER BY is_weekend, is_holiday",
        d(from),
        d(to)
    )
}

/// Stock-outs per day: movements that left a store×SKU with nothing on hand.
pub fn stockouts_by_day(from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "SELECT date_key, SUM(stockout_events) AS stockout_events, COUNT(DISTINCT store_key) AS stores_affected \
         FROM agg_stockouts_daily WHERE date_key >= '{}' AND date_key <= '{}' \
         GROUP BY date_key ORDER BY date_key",
        d(from),
        d(to)
    )
}

/// Store×SKUs out of stock right now.
pub fn current_stockouts(limit: u32) -> String {
    format!(
        "SELECT store_id, product_id, on_hand, reorder_point, updated_at FROM rt_stock \
         WHERE on_hand <= 0 ORDER BY store_id, product_id LIMIT {limit}"
    )
}

/// The store×SKUs most likely to run out before a delivery could arrive.
pub fn riskiest_stock(limit: u32) -> String {
    format!(
        "SELECT store_id, product_id, on_hand, reorder_point, days_of_cover, stockout_risk FROM rt_stock \
         ORDER BY stockout_risk DESC, store_id, product_id LIMIT {limit}"
    )
}

/// Alerts whose store×SKU's latest alert is still open.
pub fn open_alerts(limit: u32) -> String {
    format!(
        "SELECT alert_id, store_id, product_id, severity, on_hand, reorder_point, stockout_risk, \
         suggested_order_qty, event_time \
         FROM rt_restock_alerts \
         JOIN (SELECT store_id, product_id, MAX(event_time) AS event_time FROM rt_restock_alerts \
               GROUP BY store_id, product_id) AS latest USING (store_id, product_id, event_time) \
         WHERE status = 'open' ORDER BY stockout_risk DESC, alert_id LIMIT {limit}"
    )
}

/// Chain-wide sales per 5-minute window since `since` (live chart).
pub fn latest_windows(since: DateTime<Utc>) -> String {
    format!(
        "SELECT window_start, SUM(units) AS total_units, SUM(revenue) AS total_revenue, \
         SUM(transactions) AS total_transactions \
         FROM rt_sales_5min WHERE window_start >= '{}' GROUP BY window_start ORDER BY window_start",
        t(since)
    )
}

/// Anomaly flags per kind since `since`.
pub fn anomalies_by_kind(since: DateTime<Utc>) -> String {
    format!(
        "SELECT kind, COUNT(*) AS flags, MAX(score) AS max_score FROM rt_anomalies \
         WHERE event_time >= '{}' GROUP BY kind ORDER BY flags DESC, kind",
        t(since)
    )
}

/// Headline KPIs over a period (one row).
pub fn kpis(from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "SELECT SUM(revenue) AS total_revenue, SUM(profit) AS total_profit, SUM(units) AS total_units, \
         SUM(lines) AS sale_lines FROM agg_sales_store_daily WHERE date_key >= '{}' AND date_key <= '{}'",
        d(from),
        d(to)
    )
}

/// The dashboard set used by the benchmark and the shared backend tests, for a period ending
/// at `to` and a live view starting at `since`.
pub fn dashboard_set(from: NaiveDate, to: NaiveDate, since: DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![
        ("kpis", kpis(from, to)),
        ("revenue_by_day", revenue_by_day(from, to)),
        ("revenue_by_store", revenue_by_store(from, to)),
        ("revenue_by_category", revenue_by_category(from, to)),
        ("revenue_by_day_type", revenue_by_day_type(from, to)),
        ("top_skus", top_skus(from, to, 20)),
        ("stockouts_by_day", stockouts_by_day(from, to)),
        ("current_stockouts", current_stockouts(50)),
        ("riskiest_stock", riskiest_stock(20)),
        ("open_alerts", open_alerts(50)),
        ("latest_windows", latest_windows(since)),
        ("anomalies_by_kind", anomalies_by_kind(since)),
    ]
}
