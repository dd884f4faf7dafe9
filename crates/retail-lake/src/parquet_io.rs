//! Parquet bytes ↔ Arrow record batches, in memory (objects are written with one atomic put).

use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use std::collections::HashSet;

/// Who reads a Parquet file, which decides what its encoding spends CPU on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetProfile {
    /// Lake data for any reader (query engines, notebooks): dictionaries where values repeat,
    /// min/max statistics where they can prune (numbers, timestamps). Not on strings: ids and
    /// names land in files by hash of the store, so a file's min/max of them spans nearly
    /// everything, and comparing every value cost a third of the encoding.
    Analytics,
    /// Files only this system reads back whole (the embedded warehouse's parts): plain values,
    /// no dictionaries, no statistics, LZ4 (raw blocks). About twice as fast to encode as
    /// `Analytics`, about 20 % larger (raw sales, `tests/parquet_speed.rs`). LZ4 rather than the
    /// lake's Snappy: 5 % faster to encode and 15 % smaller on plain values, faster to decode;
    /// any reader we care about here is this system, so Snappy's wider support buys nothing.
    Internal,
}

/// Target size of a data page (values before compression).
const DATA_PAGE_BYTES: usize = 64 * 1024;

/// Encode batches (all of one schema, at least one) as a Snappy-compressed Parquet file for
/// any reader (`ParquetProfile::Analytics`).
pub fn encode_parquet(batches: &[RecordBatch]) -> Result<Bytes, String> {
    encode_parquet_as(batches, ParquetProfile::Analytics)
}

pub fn encode_parquet_as(batches: &[RecordBatch], profile: ParquetProfile) -> Result<Bytes, String> {
    let first = batches.first().ok_or("no record batches to write")?;
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // Row groups of 128k rows keep statistics useful for pruning without tiny pages.
        .set_max_row_group_row_count(Some(128 * 1024))
        // Pages of 64 KiB, not the default 1 MiB: a page's buffers grow by doubling from empty,
        // and at 1 MiB each growth step copied the page into fresh memory: a third of the
        // encoding's samples in perf, −18..25 % encoding CPU when timed. Files come out ≈ 1 %
        // larger (more page headers).
        .set_data_page_size_limit(DATA_PAGE_BYTES);
    // The sample comes from the largest batch: a file may start with a few rows only.
    let sample = batches.iter().max_by_key(|b| b.num_rows()).unwrap_or(first);
    if profile == ParquetProfile::Internal {
        props = props.set_compression(Compression::LZ4_RAW).set_dictionary_enabled(false).set_statistics_enabled(EnabledStatistics::None);
    }
    for (field, column) in first.schema().fields().iter().zip(sample.columns()) {
        let path = ColumnPath::from(field.name().as_str());
        let distinct = mostly_distinct(column.as_ref());
        if distinct && incompressible_strings(column.as_ref()) {
            props = props.set_column_compression(path.clone(), Compression::UNCOMPRESSED);
        }
        if profile == ParquetProfile::Analytics {
            if matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
                props = props.set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
            }
            if distinct {
                props = props.set_column_dictionary_enabled(path, false);
            }
        }
    }
    let props = props.build();
    // Room for the whole file up front: growing by doubling copied it about once more, into
    // fresh memory. Capacity never written is never touched, so over-reserving costs nothing.
    let mut buf = Vec::with_capacity(batches.iter().map(RecordBatch::get_array_memory_size).sum());
    let mut w = ArrowWriter::try_new(&mut buf, first.schema(), Some(props)).map_err(|e| e.to_string())?;
    for b in batches {
        w.write(b).map_err(|e| e.to_string())?;
    }
    w.close().map_err(|e| e.to_string())?;
    Ok(Bytes::from(buf))
}

/// Whether more than half of a sample of the column's values are distinct (ids, timestamps).
/// A dictionary only costs there: every value is hashed into it until it overflows, and the
/// file comes out no smaller (raw sales: 15–25% faster to encode, files within 2%, measured
/// by `tests/parquet_speed.rs`).
fn mostly_distinct(column: &dyn Array) -> bool {
    let n = column.len().min(4096);
    if n < 64 {
        return false;
    }
    let data = column.to_data();
    let mut seen: HashSet<&[u8], foldhash::fast::RandomState> = HashSet::with_capacity_and_hasher(n, Default::default());
    if let Some(strings) = column.as_string_opt::<i32>() {
        seen.extend((0..n).filter(|&i| strings.is_valid(i)).map(|i| strings.value(i).as_bytes()));
    } else if let Some(width) = column.data_type().primitive_width() {
        let Some(values) = data.buffers().first() else { return false };
        let start = data.offset() * width;
        seen.extend(values.as_slice()[start..start + n * width].chunks_exact(width).enumerate().filter(|(i, _)| column.is_valid(*i)).map(|(_, v)| v));
    } else {
        return false;
    }
    seen.len() * 2 > n
}

/// Whether a string column's values (a sample of up to 64 KiB) shrink by less than a tenth under
/// Snappy. Random ids (UUIDs) do not, and Snappy on them was the largest single cost of
/// encoding realistic sales and inventory rows (`retail bench stream --workload sim`): written
/// uncompressed, those tables encode ≈ 35 % faster for files 5–10 % larger. Ids that do repeat
/// themselves (sequential ones) stay compressed.
fn incompressible_strings(column: &dyn Array) -> bool {
    let Some(strings) = column.as_string_opt::<i32>() else { return false };
    let offsets = strings.value_offsets();
    let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else { return false };
    let (start, end) = (first as usize, last as usize);
    let sample = &strings.values().as_slice()[start..end.min(start + (64 << 10))];
    if sample.len() < 4096 {
        return false;
    }
    match snap::raw::Encoder::new().compress_vec(sample) {
        Ok(compressed) => compressed.len() * 10 > sample.len() * 9,
        Err(_) => false,
    }
}

/// Decode a whole Parquet file into record batches.
pub fn decode_parquet(bytes: Bytes) -> Result<Vec<RecordBatch>, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?.with_batch_size(64 * 1024).build().map_err(|e| e.to_string())?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

/// Serde rows → one record batch of `schema`, matching fields by name (extra fields ignored).
/// Strings parse into timestamps (RFC 3339) and dates (`YYYY-MM-DD`); numbers into decimals.
pub fn rows_to_batch<S: serde::Serialize>(schema: datafusion::arrow::datatypes::SchemaRef, rows: &[S]) -> Result<RecordBatch, String> {
    if rows.is_empty() {
        return Ok(RecordBatch::new_empty(schema));
    }
    let mut decoder = datafusion::arrow::json::ReaderBuilder::new(schema).with_batch_size(rows.len()).build_decoder().map_err(|e| e.to_string())?;
    decoder.serialize(rows).map_err(|e| e.to_string())?;
    decoder.flush().map_err(|e| e.to_string())?.ok_or_else(|| "no rows decoded".to_string())
}

/// Record batches → one JSON object per row (nulls omitted), for deserializing into serde types.
pub fn batches_to_json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, String> {
    let mut buf = Vec::new();
    {
        let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
        for b in batches {
            w.write(b).map_err(|e| e.to_string())?;
        }
        w.finish().map_err(|e| e.to_string())?;
    }
    buf.split(|c| *c == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).map_err(|e| e.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray, TimestampMillisecondArray};
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use std::sync::Arc;

    #[test]
    fn dictionaries_where_values_repeat_statistics_where_they_prune() {
        let n = 10_000;
        let ids = StringArray::from_iter_values((0..n).map(|i| format!("id-{i:08}")));
        let stores = StringArray::from_iter_values((0..n).map(|i| format!("store_{:03}", i % 50)));
        let times = TimestampMillisecondArray::from_iter_values((0..n).map(|i| 1_700_000_000_000 + i as i64));
        let quantities = Int32Array::from_iter_values((0..n).map(|i| i % 5));
        assert!(mostly_distinct(&ids) && mostly_distinct(&times));
        assert!(!mostly_distinct(&stores) && !mostly_distinct(&quantities));
        assert!(!mostly_distinct(&ids.slice(0, 10)), "too few values to judge");

        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as Arc<dyn Array>),
            ("store", Arc::new(stores) as Arc<dyn Array>),
            ("time", Arc::new(times) as Arc<dyn Array>),
            ("quantity", Arc::new(quantities) as Arc<dyn Array>),
        ])
        .unwrap();
        let bytes = encode_parquet(std::slice::from_ref(&batch)).unwrap();
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let group = reader.metadata().row_group(0);
        let has_dictionary: Vec<bool> = (0..4).map(|c| group.column(c).dictionary_page_offset().is_some()).collect();
        assert_eq!(has_dictionary, [false, true, false, true]);
        // Statistics where they can prune (numbers, timestamps), none on strings.
        let has_statistics: Vec<bool> = (0..4).map(|c| group.column(c).statistics().is_some()).collect();
        assert_eq!(has_statistics, [false, false, true, true]);
        assert_eq!(decode_parquet(bytes).unwrap(), vec![batch.clone()]);

        // Internal files: neither, and the same rows come back.
        let bytes = encode_parquet_as(std::slice::from_ref(&batch), ParquetProfile::Internal).unwrap();
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let group = reader.metadata().row_group(0);
        assert!((0..4).all(|c| group.column(c).dictionary_page_offset().is_none() && group.column(c).statistics().is_none()));
        assert_eq!(decode_parquet(bytes).unwrap(), vec![batch]);
    }

    /// Data pages stay near `DATA_PAGE_BYTES` in both profiles (the writer's default is 1 MiB).
    #[test]
    fn data_pages_are_small() {
        let n = 100_000;
        let ids = StringArray::from_iter_values((0..n).map(|i| format!("00000000-0000-4000-8000-{i:012}")));
        let batch = RecordBatch::try_from_iter([("id", Arc::new(ids) as Arc<dyn Array>)]).unwrap();
        for profile in [ParquetProfile::Analytics, ParquetProfile::Internal] {
            let bytes = encode_parquet_as(std::slice::from_ref(&batch), profile).unwrap();
            let reader = SerializedFileReader::new(bytes).unwrap();
            let mut pages = reader.get_row_group(0).unwrap().get_column_page_reader(0).unwrap();
            let mut sizes = Vec::new();
            while let Some(page) = pages.get_next_page().unwrap() {
                sizes.push(page.num_values() as usize * 40);
            }
            // 100 k values of 36 bytes + a 4-byte length are ≈ 3.8 MiB: ≈ 60 pages of 64 KiB
            // (the size is checked after each write batch of 1,024 values), 4 of 1 MiB.
            assert!(sizes.len() >= 30, "{profile:?}: {} pages", sizes.len());
            assert!(sizes.iter().all(|s| *s <= 2 * DATA_PAGE_BYTES), "{profile:?}: {sizes:?}");
        }
    }

    /// Random ids (UUIDs) are written uncompressed, ids that repeat themselves stay compressed,
    /// per column and in both profiles; the rows come back the same either way.
    #[test]
    fn columns_that_do_not_compress_are_not_compressed() {
        use datafusion::parquet::basic::Compression;
        let n = 5_000;
        let random = StringArray::from_iter_values((0..n).map(|_| uuid::Uuid::new_v4().to_string()));
        let sequential = StringArray::from_iter_values((0..n).map(|i| format!("00000000-0000-4000-8000-{i:012}")));
        assert!(incompressible_strings(&random));
        assert!(!incompressible_strings(&sequential));
        assert!(!incompressible_strings(&random.slice(0, 50)), "too small a sample to judge");
        assert!(!incompressible_strings(&Int32Array::from_iter_values(0..n)), "strings only");
        let batch =
            RecordBatch::try_from_iter([("random", Arc::new(random) as Arc<dyn Array>), ("sequential", Arc::new(sequential) as Arc<dyn Array>)]).unwrap();
        for (profile, codec) in [(ParquetProfile::Analytics, Compression::SNAPPY), (ParquetProfile::Internal, Compression::LZ4_RAW)] {
            let bytes = encode_parquet_as(std::slice::from_ref(&batch), profile).unwrap();
            let reader = SerializedFileReader::new(bytes.clone()).unwrap();
            let group = reader.metadata().row_group(0);
            assert_eq!((group.column(0).compression(), group.column(1).compression()), (Compression::UNCOMPRESSED, codec), "{profile:?}");
            assert_eq!(decode_parquet(bytes).unwrap(), vec![batch.clone()], "{profile:?}");
        }
    }
}
