//! The first tier of the plain-shape parse (see `fastjson.rs`): sales and inventory updates
//! written exactly as our producers write them, read in one straight pass.
//!
//! Canonical means: no whitespace except after the closing brace, every key in the struct's
//! declaration order (an optional field may be left out, as `serde` reads a missing `Option` as
//! `None`), each value in the plain shapes of `fastjson` (strings without escapes or control
//! characters, numbers as [`scan_number`] reads them, `null` for an absent option), the
//! `event_type` of the struct's own type, and a timestamp [`parse_common`] reads. Each key is
//! checked together with its punctuation (`,"store_id":`) as one byte literal, and each value is
//! converted straight to the field's type, without the derived visitor's field matching, map
//! access and per-token whitespace checks.
//!
//! Why: the serde-driven parser's per-field visitor calls, key matching and token checks were
//! most of its cost. Parse alone into borrowed strings (`parse_alone_per_tier` below, best of
//! five): a sale 245 → 150 ns, an inventory update 205 → 115 ns. A message that deviates only
//! near its end pays for both parses; producers do not write such messages.
//!
//! Any deviation at all declines (`None`), and the caller tries the serde-driven plain-shape
//! parser, which in turn leaves to `serde_json` what it declines. So where this succeeds it gives
//! the value `serde_json` gives; it never decides a rejection.

use crate::events::{EventType, InventoryUpdate, SaleTransaction};
use crate::fastjson::{find_quote_or_special, same_bytes, scan_number, Declined, Number};
use crate::timestamp::parse_common;
use chrono::{DateTime, Utc};
use serde::de::value::BorrowedStrDeserializer;
use serde::Deserialize;

/// A sale in canonical form (see the module docs), else `None`.
pub(crate) fn sale<'a, S: Deserialize<'a>>(text: &'a str) -> Option<SaleTransaction<S>> {
    let mut c = Cursor { text, i: 0 };
    c.literal(br#"{"event_type":"sale","schema_version":"#)?;
    let schema_version = c.u32()?;
    c.literal(br#","transaction_id":"#)?;
    let transaction_id = c.string()?;
    c.literal(br#","basket_id":"#)?;
    let basket_id = c.string()?;
    c.literal(br#","store_id":"#)?;
    let store_id = c.string()?;
    c.literal(br#","product_id":"#)?;
    let product_id = c.string()?;
    c.literal(br#","quantity":"#)?;
    let quantity = c.i32()?;
    c.literal(br#","unit_price":"#)?;
    let unit_price = c.f64()?;
    c.literal(br#","list_price":"#)?;
    let list_price = c.f64()?;
    c.literal(br#","discount_pct":"#)?;
    let discount_pct = c.f64()?;
    let promotion_id = if c.has_key(br#","promotion_id":"#) { c.optional_string()? } else { None };
    c.literal(br#","timestamp":"#)?;
    let timestamp = c.timestamp()?;
    let customer_id = if c.has_key(br#","customer_id":"#) { c.optional_string()? } else { None };
    c.literal(br#","payment_method":"#)?;
    let payment_method = c.string()?;
    c.end()?;
    Some(SaleTransaction {
        event_type: EventType::Sale,
        schema_version,
        transaction_id,
        basket_id,
        store_id,
        product_id,
        quantity,
        unit_price,
        list_price,
        discount_pct,
        promotion_id,
        timestamp,
        customer_id,
        payment_method,
    })
}

/// An inventory update in canonical form (see the module docs), else `None`.
pub(crate) fn inventory<'a, S: Deserialize<'a>>(text: &'a str) -> Option<InventoryUpdate<S>> {
    let mut c = Cursor { text, i: 0 };
    c.literal(br#"{"event_type":"inventory_update","schema_version":"#)?;
    let schema_version = c.u32()?;
    c.literal(br#","inventory_id":"#)?;
    let inventory_id = c.string()?;
    c.literal(br#","store_id":"#)?;
    let store_id = c.string()?;
    c.literal(br#","product_id":"#)?;
    let product_id = c.string()?;
    c.literal(br#","quantity_change":"#)?;
    let quantity_change = c.i32()?;
    c.literal(br#","previous_quantity":"#)?;
    let previous_quantity = c.i32()?;
    c.literal(br#","new_quantity":"#)?;
    let new_quantity = c.i32()?;
    c.literal(br#","reason":"#)?;
    let reason = c.string()?;
    let reference_id = if c.has_key(br#","reference_id":"#) { c.optional_string()? } else { None };
    c.literal(br#","timestamp":"#)?;
    let timestamp = c.timestamp()?;
    c.end()?;
    Some(InventoryUpdate {
        event_type: EventType::InventoryUpdate,
        schema_version,
        inventory_id,
        store_id,
        product_id,
        quantity_change,
        previous_quantity,
        new_quantity,
        reason,
        reference_id,
        timestamp,
    })
}

struct Cursor<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    /// Steps over `expected` if the input continues with exactly these bytes.
    #[inline(always)]
    fn has_key(&mut self, expected: &[u8]) -> bool {
        let matches = self.text.as_bytes().get(self.i..self.i + expected.len()).is_some_and(|next| same_bytes(next, expected));
        if matches {
            self.i += expected.len();
        }
        matches
    }

    #[inline(always)]
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        self.has_key(expected).then_some(())
    }

    /// The closing brace, then nothing but the whitespace `serde_json` allows after a value (a
    /// message read from a file ends with a newline).
    fn end(&mut self) -> Option<()> {
        match self.text.as_bytes().get(self.i..)? {
            [b'}', after @ ..] => after.iter().all(|c| matches!(c, b' ' | b'\n' | b'\t' | b'\r')).then_some(()),
            _ => None,
        }
    }

    /// A string without escapes or control characters, borrowed from the input.
    fn str(&mut self) -> Option<&'a str> {
        let b = self.text.as_bytes();
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let end = start + find_quote_or_special(&b[start..])?;
        if b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        self.text.get(start..end)
    }

    /// A string field or an enum symbol, converted as `serde` converts a borrowed string (so a
    /// borrowing string type borrows, and an unknown enum symbol declines).
    fn string<T: Deserialize<'a>>(&mut self) -> Option<T> {
        T::deserialize(BorrowedStrDeserializer::<Declined>::new(self.str()?)).ok()
    }

    fn optional_string<T: Deserialize<'a>>(&mut self) -> Option<Option<T>> {
        if self.has_key(b"null") {
            Some(None)
        } else {
            self.string().map(Some)
        }
    }

    /// Only the shapes the timestamp deserializer parses itself (so the instant is the one it
    /// gives); the rare others are left to chrono on the slower paths.
    fn timestamp(&mut self) -> Option<DateTime<Utc>> {
        parse_common(self.str()?.as_bytes())
    }

    fn number(&mut self) -> Option<Number> {
        let (number, end) = scan_number(self.text.as_bytes(), self.i)?;
        self.i = end;
        Some(number)
    }

    /// As serde's `u32` visitor: whole numbers in range; negative ones and decimals are errors.
    fn u32(&mut self) -> Option<u32> {
        match self.number()? {
            Number::U64(n) => u32::try_from(n).ok(),
            Number::I64(_) | Number::F64(_) => None,
        }
    }

    /// As serde's `i32` visitor: whole numbers in range; decimals are errors.
    fn i32(&mut self) -> Option<i32> {
        match self.number()? {
            Number::U64(n) => i32::try_from(n).ok(),
            Number::I64(n) => i32::try_from(n).ok(),
            Number::F64(_) => None,
        }
    }

    /// As serde's `f64` visitor: whole numbers convert with `as`, decimals are taken as read.
    fn f64(&mut self) -> Option<f64> {
        Some(match self.number()? {
            Number::U64(n) => n as f64,
            Number::I64(n) => n as f64,
            Number::F64(f) => f,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::events::{Event, InventoryReason, PaymentMethod, Str};
    use crate::fastjson;
    use std::borrow::Cow;
    use std::fmt::Debug;

    /// Whether the canonical parser took `text` as a `T`; if it did, serde_json and the
    /// serde-driven plain-shape parser take it too, with the same value (compared through
    /// `Debug`, so -0.0 and 0.0 differ).
    fn agree_one<T: serde::de::DeserializeOwned + Debug>(text: &str, canonical: Option<T>) -> bool {
        let Some(fast) = canonical else { return false };
        let reference: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("canonical took what serde_json rejects ({e}): {text}"));
        assert_eq!(format!("{fast:?}"), format!("{reference:?}"), "{text}");
        let plain: T = fastjson::from_str(text).unwrap_or_else(|| panic!("canonical took what the plain-shape parser declines: {text}"));
        assert_eq!(format!("{fast:?}"), format!("{plain:?}"), "{text}");
        true
    }

    /// Whether the canonical parser took `text` as a sale or an inventory update, checking
    /// [`agree_one`] for both, and that borrowed strings read the same as owned ones.
    pub(crate) fn agree(text: &str) -> bool {
        let took_sale = agree_one::<SaleTransaction>(text, sale(text));
        let took_inventory = agree_one::<InventoryUpdate>(text, inventory(text));
        let borrowed_sale = sale::<Str>(text).map(|e| Event::Sale(e).to_owned_strings());
        assert_eq!(format!("{borrowed_sale:?}"), format!("{:?}", sale::<String>(text).map(Event::Sale)), "{text}");
        let borrowed_inventory = inventory::<Str>(text).map(|e| Event::Inventory(e).to_owned_strings());
        assert_eq!(format!("{borrowed_inventory:?}"), format!("{:?}", inventory::<String>(text).map(Event::Inventory)), "{text}");
        assert!(!(took_sale && took_inventory), "{text}");
        took_sale || took_inventory
    }

    /// The fixture, with the newline a file ends with.
    const SALE: &str = include_str!("../tests/fixtures/sale_ok.json");
    /// As the stream bench's producer writes one.
    const INVENTORY: &str = r#"{"event_type":"inventory_update","schema_version":1,"inventory_id":"00000000-0000-4000-8000-000000000001","store_id":"store_001","product_id":"SKU123","quantity_change":-2,"previous_quantity":1000000,"new_quantity":999998,"reason":"sale","reference_id":null,"timestamp":"2025-01-01T10:30:00.050Z"}"#;

    fn replaced(text: &str, from: &str, to: &str) -> String {
        assert!(text.contains(from), "{from} not in {text}");
        text.replacen(from, to, 1)
    }

    #[test]
    fn takes_canonical_sales_with_serde_json_values() {
        let line = SALE.trim_end();
        let sales = [
            SALE.to_string(),
            line.to_string(),
            format!("{line} \r\n\t"),
            replaced(line, r#""promotion_id":null"#, r#""promotion_id":"PROMO-2025-0001""#),
            replaced(line, r#""promotion_id":null,"#, ""),
            replaced(line, r#""customer_id":"cust_456","#, ""),
            replaced(line, r#""customer_id":"cust_456""#, r#""customer_id":null"#),
            replaced(line, r#""customer_id":"cust_456","#, "").replace(r#""promotion_id":null,"#, ""),
            replaced(line, "10:30:00Z", "10:30:00.123Z"),
            replaced(line, "10:30:00Z", "10:30:00+00:00"),
            replaced(line, "10:30:00Z", "10:30:00.050+00:00"),
            replaced(line, "10:30:00Z", "11:30:00+01:00"),
            replaced(line, r#""unit_price":29.99"#, r#""unit_price":30"#),
            replaced(line, r#""discount_pct":0.0"#, r#""discount_pct":0.25"#),
            replaced(line, r#""quantity":2"#, r#""quantity":-2147483648"#),
            replaced(line, r#""credit_card""#, r#""gift_card""#),
            replaced(line, "cust_456", "cüst_456 ✓"),
            replaced(line, "cust_456", ""),
        ];
        for text in &sales {
            assert!(agree(text), "declined: {text}");
        }
        let s: SaleTransaction = sale(SALE).expect("the fixture is canonical");
        assert_eq!((s.quantity, s.unit_price, s.list_price, s.discount_pct), (2, 29.99, 29.99, 0.0));
        assert_eq!((s.promotion_id, s.customer_id.as_deref()), (None, Some("cust_456")));
        assert_eq!((s.payment_method, s.timestamp.to_rfc3339()), (PaymentMethod::CreditCard, "2025-01-01T10:30:00+00:00".to_string()));
        let s: SaleTransaction = sale(&sales[4]).expect("no promotion_id key");
        assert_eq!(s.promotion_id, None);
        let s: SaleTransaction = sale(&sales[3]).expect("a promotion");
        assert_eq!(s.promotion_id.as_deref(), Some("PROMO-2025-0001"));
    }

    #[test]
    fn takes_canonical_inventory_updates_with_serde_json_values() {
        let updates = [
            INVENTORY.to_string(),
            format!("{INVENTORY}\n"),
            replaced(INVENTORY, r#""reference_id":null"#, r#""reference_id":"0b6c1a4e-8f0e-5d7a-9b1c-2f3e4d5c6b7a""#),
            replaced(INVENTORY, r#","reference_id":null"#, ""),
            replaced(INVENTORY, ".050Z", "Z"),
            replaced(INVENTORY, ".050Z", "+00:00"),
            replaced(INVENTORY, ".050Z", ".050+00:00"),
            replaced(
                INVENTORY,
                r#""quantity_change":-2,"previous_quantity":1000000,"new_quantity":999998,"reason":"sale""#,
                r#""quantity_change":48,"previous_quantity":0,"new_quantity":48,"reason":"restock""#,
            ),
            replaced(INVENTORY, r#""previous_quantity":1000000"#, r#""previous_quantity":2147483647"#),
            replaced(INVENTORY, r#""reason":"sale""#, r#""reason":"count_correction""#),
        ];
        for text in &updates {
            assert!(agree(text), "declined: {text}");
        }
        let u: InventoryUpdate = inventory(INVENTORY).expect("the bench's shape is canonical");
        assert_eq!((u.quantity_change, u.previous_quantity, u.new_quantity, u.reason), (-2, 1_000_000, 999_998, InventoryReason::Sale));
        assert_eq!((u.reference_id, u.timestamp.to_rfc3339()), (None, "2025-01-01T10:30:00.050+00:00".to_string()));
    }

    #[test]
    fn borrowed_strings_are_not_copied() {
        let s: SaleTransaction<Str> = sale(SALE).expect("the fixture is canonical");
        for field in [&s.transaction_id, &s.basket_id, &s.store_id, &s.product_id] {
            assert!(matches!(field.0, Cow::Borrowed(_)), "{field}");
        }
        assert!(matches!(s.customer_id.map(|c| c.0), Some(Cow::Borrowed("cust_456"))));
        let u: InventoryUpdate<Str> = inventory(INVENTORY).expect("canonical");
        assert!(matches!(u.inventory_id.0, Cow::Borrowed(_)));
    }

    /// Valid (to serde_json) or not, none of these is canonical, so all decline: the general
    /// paths decide them.
    #[test]
    fn declines_everything_else() {
        let line = SALE.trim_end();
        let sales = [
            format!(" {line}"),
            format!("{line}x"),
            format!("{line}}}"),
            format!("{line}\u{a0}"),
            line[..line.len() - 1].to_string(),
            replaced(line, r#""schema_version":1"#, r#""schema_version": 1"#),
            replaced(line, r#","basket_id""#, r#", "basket_id""#),
            replaced(line, r#""event_type":"sale","schema_version":1"#, r#""schema_version":1,"event_type":"sale""#),
            replaced(line, r#""event_type":"sale""#, r#""event_type":"inventory_update""#),
            replaced(line, r#""customer_id":"cust_456","#, r#""customer_id":"cust_456","customer_id":"cust_456","#),
            replaced(line, r#""customer_id":"cust_456","#, r#""customer_id":"cust_456","extra":1,"#),
            replaced(line, r#","payment_method":"credit_card""#, ""),
            replaced(line, "cust_456", r"cust_\u0034\u00356"),
            replaced(line, "cust_456", "cust_4\t56"),
            replaced(line, r#""credit_card""#, r#""bitcoin""#),
            replaced(line, r#""credit_card""#, r#""Credit_card""#),
            replaced(line, r#""quantity":2"#, r#""quantity":2.0"#),
            replaced(line, r#""quantity":2"#, r#""quantity":2147483648"#),
            replaced(line, r#""quantity":2"#, r#""quantity":-0"#),
            replaced(line, r#""schema_version":1"#, r#""schema_version":-1"#),
            replaced(line, r#""unit_price":29.99"#, r#""unit_price":2.999e1"#),
            replaced(line, r#""unit_price":29.99"#, r#""unit_price":29.9900000000000001"#),
            replaced(line, r#""discount_pct":0.0"#, r#""discount_pct":-0"#),
            replaced(line, r#""promotion_id":null"#, r#""promotion_id":nul"#),
            replaced(line, r#""promotion_id":null"#, r#""promotion_id":Null"#),
            replaced(line, "10:30:00Z", "10:30:00z"),
            replaced(line, "2025-01-01T", "2025-01-01 "),
            replaced(line, "2025-01-01T", "2025-02-30T"),
            replaced(line, r#""timestamp":"2025-01-01T10:30:00Z""#, r#""timestamp":null"#),
        ];
        for text in &sales {
            assert!(sale::<String>(text).is_none(), "took: {text}");
            assert!(!agree(text), "took: {text}");
        }
        // Right shape, wrong type.
        assert!(inventory::<String>(SALE).is_none() && sale::<String>(INVENTORY).is_none());
        assert!(sale::<String>("").is_none() && sale::<String>("{").is_none());
    }

    /// Every single-byte edit (replace, insert, delete) at every position of a canonical sale
    /// and inventory update: tens of thousands of near-canonical messages, each declined or
    /// read as serde_json reads it.
    #[test]
    fn every_single_byte_edit_declines_or_agrees() {
        let alphabet = b"\"\\{}[],:.-+0123456789eEnulltrfa sx\t\n\r\x01\x7fZ:T_";
        let mut edits = 0;
        let mut taken = 0;
        for base in [SALE, SALE.trim_end(), INVENTORY] {
            let base = base.as_bytes();
            for at in 0..=base.len() {
                let mut variants = Vec::with_capacity(2 * alphabet.len() + 1);
                for &c in alphabet {
                    if at < base.len() {
                        let mut v = base.to_vec();
                        v[at] = c;
                        variants.push(v);
                    }
                    let mut v = base.to_vec();
                    v.insert(at, c);
                    variants.push(v);
                }
                if at < base.len() {
                    let mut v = base.to_vec();
                    v.remove(at);
                    variants.push(v);
                }
                for v in variants {
                    if let Ok(text) = std::str::from_utf8(&v) {
                        edits += 1;
                        taken += agree(text) as usize;
                    }
                }
            }
        }
        assert!(edits > 80_000, "only {edits} edits");
        // Edits inside ids, digits and trailing whitespace stay canonical: those were compared.
        assert!(taken > 15_000, "only {taken} of {edits} edited messages took the canonical path");
    }

    /// The parse alone, per tier (a measurement, run explicitly):
    /// `cargo test --release -p retail-core --lib parse_alone -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check; run explicitly"]
    fn parse_alone_per_tier() {
        fn ns_per_call(mut f: impl FnMut() -> bool) -> f64 {
            let n = 200_000;
            (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    for _ in 0..n {
                        assert!(f());
                    }
                    t.elapsed().as_secs_f64() * 1e9 / n as f64
                })
                .fold(f64::INFINITY, f64::min)
        }
        let text = std::hint::black_box(SALE);
        let canonical = ns_per_call(|| sale::<Str>(text).is_some());
        let plain = ns_per_call(|| fastjson::from_str::<SaleTransaction<Str>>(text).is_some());
        let serde = ns_per_call(|| serde_json::from_str::<SaleTransaction<Str>>(text).is_ok());
        println!("sale into borrowed strings: canonical {canonical:.0} ns, plain-shape {plain:.0} ns, serde_json {serde:.0} ns");
        let text = std::hint::black_box(INVENTORY);
        let canonical = ns_per_call(|| inventory::<Str>(text).is_some());
        let plain = ns_per_call(|| fastjson::from_str::<InventoryUpdate<Str>>(text).is_some());
        let serde = ns_per_call(|| serde_json::from_str::<InventoryUpdate<Str>>(text).is_ok());
        println!("inventory update into borrowed strings: canonical {canonical:.0} ns, plain-shape {plain:.0} ns, serde_json {serde:.0} ns");
    }
}
