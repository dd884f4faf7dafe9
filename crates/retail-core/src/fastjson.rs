//! A minimal JSON deserializer for the flat event objects, tried before `serde_json`.
//!
//! The derived `Deserialize` impls of the events drive it, so field matching, missing, unknown
//! and duplicate fields, optional fields and enum symbols behave exactly as with `serde_json`.
//! It only understands the plain shapes producers write: strings without escapes, `null`,
//! integers and decimals of at most 15 digits without exponent. Anything else (escapes,
//! exponents, long numbers, arrays, any error at all) declines, and the caller parses the
//! message with `serde_json`, which then gives the verdict and the error text. So where this
//! succeeds, it yields the value `serde_json` would; it never decides a rejection.
//!
//! Why: with the input checked as UTF-8 once, this skips `serde_json`'s per-token generality
//! (scratch buffers, position tracking for errors), which was most of a valid event's cost.
//! Keys written in the struct's declaration order (as every producer of ours writes them) are
//! recognised by comparing the expected name in place and handed to the derived visitor as a
//! field index: no scan for the closing quote, no comparison against every field name (+5..12 %
//! valid sales per second, `tests/validation_speed.rs`). Once a key is out of that order the
//! rest of the object takes the general path; such input (keys sorted, say) parses ≈ 7 % slower
//! than before the in-place match.
//!
//! Tiers: sales and inventory updates, the two hot events, first try `canonical.rs`, a
//! straight-line reading of exactly the form producers write (keys in declaration order, no
//! whitespace inside the object, these plain values), which skips the derived visitor
//! altogether; it declines any other form to this parser, and this parser declines to
//! `serde_json`. All three agree wherever
//! a faster one accepts. The canonical tier shares this parser's number and string rules
//! ([`scan_number`], [`find_quote_or_special`]), so the tiers cannot drift apart there.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use std::fmt;

/// `Some` only if `text` is one value of `T` in the plain shapes (see the module docs).
pub(crate) fn from_str<'a, T: de::Deserialize<'a>>(text: &'a str) -> Option<T> {
    let mut parser = Parser { text, i: 0 };
    let value = T::deserialize(&mut parser).ok()?;
    parser.skip_whitespace();
    (parser.i == text.len()).then_some(value)
}

/// Not an error of the message: only "not a shape this parser takes".
#[derive(Debug)]
pub(crate) struct Declined;

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("declined by the plain-shape parser")
    }
}

impl std::error::Error for Declined {}

impl de::Error for Declined {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Declined
    }
}

struct Parser<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// JSON's four whitespace bytes, as `serde_json` skips them.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.bytes().get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes().get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Result<(), Declined> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Declined)
        }
    }

    /// A string without escapes or control characters, borrowed from the input.
    fn string(&mut self) -> Result<&'a str, Declined> {
        self.eat(b'"')?;
        let start = self.i;
        let end = start + find_quote_or_special(&self.bytes()[start..]).ok_or(Declined)?;
        if self.bytes()[end] != b'"' {
            return Err(Declined);
        }
        self.i = end + 1;
        // Both ends are ASCII quotes, so these are char boundaries of valid UTF-8.
        Ok(&self.text[start..end])
    }

    /// A number in the plain shapes (see [`scan_number`]), visited as `serde_json` visits it.
    fn number<V: Visitor<'a>>(&mut self, visitor: V) -> Result<V::Value, Declined> {
        self.skip_whitespace();
        let (number, end) = scan_number(self.bytes(), self.i).ok_or(Declined)?;
        self.i = end;
        match number {
            Number::U64(n) => visitor.visit_u64(n),
            Number::I64(n) => visitor.visit_i64(n),
            Number::F64(f) => visitor.visit_f64(f),
        }
    }
}

/// A JSON number as `serde_json` hands it to a visitor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// The number starting at `b[start]` and the index just past it, if it is
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?` with at most 15 digits: integers as u64 (or i64 when
/// negative), decimals as f64, as `serde_json` reads them. `None` for anything else (exponents,
/// longer numbers, `-0`), which is left to `serde_json`.
pub(crate) fn scan_number(b: &[u8], start: usize) -> Option<(Number, usize)> {
    let negative = b.get(start) == Some(&b'-');
    let int_start = start + negative as usize;
    let int_end = int_start + b.get(int_start..)?.iter().take_while(|c| c.is_ascii_digit()).count();
    let int_digits = int_end - int_start;
    if int_digits == 0 || (int_digits > 1 && b[int_start] == b'0') {
        return None;
    }
    let mut end = int_end;
    let mut frac_digits = 0;
    if b.get(int_end) == Some(&b'.') {
        frac_digits = b[int_end + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if frac_digits == 0 {
            return None;
        }
        end = int_end + 1 + frac_digits;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) || int_digits + frac_digits > 15 {
        return None;
    }
    let significand = b[int_start..end].iter().filter(|c| c.is_ascii_digit()).fold(0u64, |acc, c| acc * 10 + (c - b'0') as u64);
    let number = if frac_digits > 0 {
        // Below 2^53 and 10^15 both operands are exact, so this one division is the correctly
        // rounded value, which is what either of serde_json's float parsers returns.
        let f = significand as f64 / POW10[frac_digits];
        Number::F64(if negative { -f } else { f })
    } else if !negative {
        Number::U64(significand)
    } else if significand == 0 {
        // serde_json reads `-0` as the float -0.0; leave that rarity to it.
        return None;
    } else {
        Number::I64(-(significand as i64))
    };
    Some((number, end))
}

const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// Index of the first `"`, `\` or control byte, eight bytes at a time (as serde_json scans).
pub(crate) fn find_quote_or_special(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    let special = |c: &u8| *c == b'"' || *c == b'\\' || *c < 0x20;
    let mut chunks = b.chunks_exact(8);
    for (n, chunk) in chunks.by_ref().enumerate() {
        let w = u64::from_le_bytes(chunk.try_into().unwrap());
        let ctrl = w.wrapping_sub(ONES * 0x20) & !w;
        let q = w ^ (ONES * b'"' as u64);
        let quote = q.wrapping_sub(ONES) & !q;
        let s = w ^ (ONES * b'\\' as u64);
        let backslash = s.wrapping_sub(ONES) & !s;
        let found = (ctrl | quote | backslash) & (ONES << 7);
        if found != 0 {
            // The lowest flagged byte is exact (borrows only run upwards from a real match).
            return Some(n * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    let tail = chunks.remainder();
    tail.iter().position(special).map(|p| b.len() - tail.len() + p)
}

impl<'de> de::Deserializer<'de> for &mut Parser<'de> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Declined> {
        self.eat(b'{')?;
        let value = visitor.visit_map(Entries { parser: &mut *self, first: true, fields, expected: 0 })?;
        self.eat(b'}')?;
        Ok(value)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        visitor.visit_borrowed_str(self.string()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        if self.peek() == Some(b'n') {
            if !self.bytes()[self.i..].starts_with(b"null") {
                return Err(Declined);
            }
            self.i += 4;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    /// Unit variants written as their name (serde_json also takes `{"name": null}`; that declines).
    fn deserialize_enum<V: Visitor<'de>>(self, _: &'static str, _: &'static [&'static str], visitor: V) -> Result<V::Value, Declined> {
        let name: &str = self.string()?;
        visitor.visit_enum(name.into_deserializer())
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.number(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.number(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.number(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.number(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.number(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.number(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.number(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.number(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.number(visitor)
    }

    // f32 (serde_json parses it in single precision), bools, sequences, maps, …: not in the
    // event contracts, so they decline.
    serde::forward_to_deserialize_any! {
        bool f32 char bytes byte_buf unit unit_struct newtype_struct seq tuple tuple_struct map ignored_any
    }
}

struct Entries<'p, 'de> {
    parser: &'p mut Parser<'de>,
    first: bool,
    /// The struct's field names in declaration order, as `serde` derives them.
    fields: &'static [&'static str],
    /// The field producers write next (ours write fields in declaration order); the number of
    /// fields once the keys turned out to come in another order.
    expected: usize,
}

impl Entries<'_, '_> {
    /// The expected field's index if the next key is exactly its name: the key is then known
    /// without scanning it and without comparing it against every field name. The field after
    /// it is tried too (an optional field left out); if neither matches, the keys come in some
    /// other order, and the rest of the object takes the general path without trying again
    /// (trying at every key cost more than it saved).
    fn expected_key(&mut self) -> Option<usize> {
        for index in self.expected..(self.expected + 2).min(self.fields.len()) {
            let name = self.fields[index].as_bytes();
            let rest = &self.parser.bytes()[self.parser.i..];
            if rest.len() > name.len() + 1 && rest[0] == b'"' && rest[name.len() + 1] == b'"' && same_bytes(&rest[1..name.len() + 1], name) {
                self.parser.i += name.len() + 2;
                self.expected = index + 1;
                return Some(index);
            }
        }
        self.expected = self.fields.len();
        None
    }
}

/// `a == b` for the short keys of the events, a word at a time: inline, where the library
/// `memcmp` call cost as much as the comparison.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    // Whole words, then one last word overlapping the previous (no byte tail).
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = Declined;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Declined> {
        if self.parser.peek() == Some(b'}') {
            return Ok(None);
        }
        if !std::mem::take(&mut self.first) {
            self.parser.eat(b',')?;
            self.parser.skip_whitespace();
        }
        let matched = if self.expected < self.fields.len() { self.expected_key() } else { None };
        match matched {
            // `serde`'s derived field visitors take a field's index as well as its name.
            Some(index) => seed.deserialize((index as u64).into_deserializer()).map(Some),
            None => seed.deserialize(&mut *self.parser).map(Some),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Declined> {
        self.parser.eat(b':')?;
        seed.deserialize(&mut *self.parser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::*;

    /// What must hold: whenever the fast parser takes a message, serde_json takes it too and
    /// reads the same value (compared through `Debug`, so -0.0 and 0.0 differ).
    fn agree<T: de::DeserializeOwned + fmt::Debug>(text: &str) -> bool {
        let Some(fast) = from_str::<T>(text) else { return false };
        let reference: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("fast took what serde_json rejects ({e}): {text}"));
        assert_eq!(format!("{fast:?}"), format!("{reference:?}"), "{text}");
        true
    }

    const SALE: &str = include_str!("../tests/fixtures/sale_ok.json");
    const INVENTORY: &str = r#"{"event_type":"inventory_update","schema_version":1,"inventory_id":"2c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f","store_id":"store_001","product_id":"SKU000123","quantity_change":-2,"previous_quantity":50,"new_quantity":48,"reason":"sale","reference_id":null,"timestamp":"2025-01-01T10:30:00.050+00:00"}"#;
    const PRICE: &str = r#"{"event_type":"price_change","schema_version":1,"price_change_id":"3c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f","store_id":"store_002","product_id":"SKU7","old_price":4.99,"new_price":3.99,"reason":"promotion","promotion_id":"PROMO-2025-0001","timestamp":"2025-01-01T06:00:00Z"}"#;
    const CUSTOMER: &str = r#"{"event_type":"customer_event","schema_version":1,"customer_event_id":"4c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f","store_id":"store_010","customer_id":"cust_99","action":"loyalty_redeem","loyalty_points":250,"timestamp":"2025-01-01T18:00:00Z"}"#;
    const ALERT: &str = r#"{"event_type":"restock_alert","schema_version":1,"alert_id":"5c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f","store_id":"store_010","product_id":"SKU42","status":"open","severity":"high","on_hand":3,"reorder_point":12,"velocity_per_hour":1.5,"days_of_cover":0.2,"stockout_risk":0.8,"suggested_order_qty":48,"reason":"on hand 3 is below the reorder point 12 — ünïcode","timestamp":"2025-01-01T18:00:00Z"}"#;

    fn all_agree(text: &str) -> bool {
        // Each message through every event type: the wrong ones must decline or agree too. The
        // canonical tier (sales and inventory updates) is checked against serde_json and this
        // parser on every message as well.
        let took = [
            crate::canonical::tests::agree(text),
            agree::<SaleTransaction>(text),
            agree::<InventoryUpdate>(text),
            agree::<PriceChange>(text),
            agree::<CustomerEvent>(text),
            agree::<RestockAlert>(text),
        ];
        took.iter().any(|&t| t)
    }

    #[test]
    fn plain_events_take_the_fast_path_with_serde_json_values() {
        for text in [SALE, INVENTORY, PRICE, CUSTOMER, ALERT] {
            assert!(all_agree(text), "{text}");
        }
        let spaced = SALE.replacen(r#"{"event_type":"sale","#, " {\n\t\"event_type\" : \"sale\" ,\r\n", 1) + " \n";
        assert!(all_agree(&spaced), "{spaced}");
        // Missing optional fields are None, as with serde_json.
        assert!(all_agree(&SALE.replace(r#""promotion_id":null,"#, "")));
        // Keys in another order (here sorted, as `serde_json::Value` writes them) still take
        // the fast path, through the general key handling.
        for text in [SALE, INVENTORY, PRICE, CUSTOMER, ALERT] {
            let sorted = serde_json::to_string(&serde_json::from_str::<serde_json::Value>(text).unwrap()).unwrap();
            assert_ne!(sorted, text);
            assert!(all_agree(&sorted), "{sorted}");
        }
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let texts: [&[u8]; 8] = [b"", b"a", b"store_id", b"store_ie", b"event_type", b"event_typf", b"customer_event_id", b"customer_event_ie"];
        for a in texts {
            for b in texts {
                assert_eq!(same_bytes(a, b), a == b, "{:?} {:?}", a, b);
            }
        }
        // Every single-byte difference at every position of lengths 1..=24.
        for n in 1..=24 {
            let a: Vec<u8> = (0..n as u8).collect();
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x40;
                assert!(!same_bytes(&a, &b), "{n} {i}");
            }
            assert!(same_bytes(&a, &a.clone()));
        }
    }

    #[test]
    fn numbers_read_as_serde_json_reads_them() {
        let numbers = [
            "0",
            "1",
            "-1",
            "2147483647",
            "2147483648",
            "-2147483648",
            "-2147483649",
            "4294967295",
            "4294967296",
            "999999999999999",
            "9999999999999999",
            "0.0",
            "-0.0",
            "-0",
            "00",
            "01",
            "1.",
            ".5",
            "1.5e3",
            "1E2",
            "-",
            "+1",
            "29.99",
            "0.1",
            "0.30000000000000004",
            "123456789.123456",
            "12345678.1234567",
            "1.00000000000001",
            "0.000000000000001",
            "99999.99",
            "1e400",
            "18446744073709551616",
        ];
        let (mut taken, mut canonical) = (0, 0);
        for n in numbers {
            for field in ["quantity", "unit_price", "discount_pct", "schema_version"] {
                let text = SALE.replacen(&format!(r#""{field}":"#), &format!(r#""{field}":{n},"x{field}":"#), 1);
                // Replace the old value: cut from the inserted marker to the next comma.
                let marker = format!(r#","x{field}":"#);
                let at = text.find(&marker).unwrap();
                let rest = &text[at + marker.len()..];
                let text = format!("{}{}", &text[..at], &rest[rest.find(',').unwrap()..]);
                taken += agree::<SaleTransaction>(&text) as usize;
                canonical += crate::canonical::tests::agree(&text) as usize;
            }
        }
        assert!(taken > 30, "only {taken} number shapes took the fast path");
        // The canonical tier reads numbers by the same rules, so it takes the same ones.
        assert_eq!(canonical, taken, "the canonical tier took {canonical} number shapes");
    }

    #[test]
    fn unusual_shapes_decline_or_agree() {
        let cases = [
            SALE.replace("cust_456", r"cust_\u0034\u00356"),
            SALE.replace("cust_456", "cust_4\\n56"),
            SALE.replace("cust_456", "cust_4\t56"),
            SALE.replace("cust_456", "cust_4é56"),
            SALE.replace(r#""sale""#, r#"{"sale":null}"#),
            SALE.replace(r#""sale""#, r#""Sale""#),
            SALE.replace(r#""credit_card"}"#, r#""credit_card",}"#),
            SALE.replace(r#""credit_card"}"#, r#""credit_card","quantity":3}"#),
            SALE.replace(r#""credit_card"}"#, r#""credit_card","extra":3}"#),
            SALE.replace(r#""promotion_id":null"#, r#""promotion_id":nul"#),
            SALE.replace(r#""promotion_id":null"#, r#""promotion_id":nullx"#),
            SALE.replace(r#""promotion_id":null"#, r#""promotion_id":"P1""#),
            SALE.replace(r#""customer_id":"cust_456","#, ""),
            SALE.replace(r#""transaction_id":"0b6c1a4e-8f0e-5d7a-9b1c-2f3e4d5c6b7a","#, ""),
            SALE.replace("2025-01-01T10:30:00Z", "2025-01-01 10:30:00Z"),
            SALE.replace("2025-01-01T10:30:00Z", "2025-02-30T10:30:00Z"),
            SALE.replace("2025-01-01T10:30:00Z", "2025-01-01T10:30:00.123456+05:30"),
            format!("{SALE} x"),
            format!("{SALE}}}"),
            format!("[{SALE}]"),
            SALE[..SALE.len() - 1].to_string(),
            // Keys out of declaration order, repeated, cut short, or one byte longer than expected.
            SALE.replacen(r#""event_type":"sale","schema_version":1"#, r#""schema_version":1,"event_type":"sale""#, 1),
            SALE.replacen(r#""event_type":"sale","#, r#""event_type":"sale","event_type":"sale","#, 1),
            SALE.replacen(r#""schema_version":1,"#, r#""schema_version":1,"schema_version":1,"#, 1),
            SALE.replacen(r#""store_id""#, r#""store_i""#, 1),
            SALE.replacen(r#""store_id""#, r#""store_idx""#, 1),
            SALE.replacen(r#""store_id""#, r#""store_id"#, 1),
            String::new(),
            "null".into(),
        ];
        for text in &cases {
            all_agree(text);
        }
    }

    #[test]
    fn byte_mutations_decline_or_agree() {
        // Deterministic pseudo-random edits of every kind of message: replace, insert or delete
        // one or two bytes with JSON-significant characters.
        let alphabet = b"\"\\{}[],:.-+0123456789eEnulltrfa sx\t\n\x01Z:T";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut taken = 0;
        for base in [SALE, INVENTORY, PRICE, CUSTOMER, ALERT] {
            for _ in 0..4000 {
                let mut bytes = base.as_bytes().to_vec();
                for _ in 0..1 + next() % 2 {
                    let at = (next() as usize) % bytes.len();
                    let c = alphabet[(next() as usize) % alphabet.len()];
                    match next() % 3 {
                        0 => bytes[at] = c,
                        1 => bytes.insert(at, c),
                        _ => {
                            bytes.remove(at);
                        }
                    }
                }
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    taken += all_agree(text) as usize;
                }
            }
        }
        // Plenty of the edits stay valid (inside ids, digits, whitespace): those were compared.
        assert!(taken > 2_000, "only {taken} mutated messages took the fast path");
    }
}
