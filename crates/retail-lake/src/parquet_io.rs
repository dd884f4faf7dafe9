//! Parquet bytes ↔ Arrow record batches, in memory (objects are written with one atomic put).

use bytes::Bytes;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;

/// Encode batches (all of one schema, at least one) as a Snappy-compressed Parquet file.
pub fn encode_parquet(batches: &[RecordBatch]) -> Result<Bytes, String> {
    let first = batches.first().ok_or("no record batches to write")?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // Row groups of 128k rows keep statistics useful for pruning without tiny pages.
        .set_max_row_group_row_count(Some(128 * 1024))
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, first.schema(), Some(props)).map_err(|e| e.to_string())?;
    for b in batches {
        w.write(b).map_err(|e| e.to_string())?;
    }
    w.close().map_err(|e| e.to_string())?;
    Ok(Bytes::from(buf))
}

/// Decode a whole Parquet file into record batches.
pub fn decode_parquet(bytes: Bytes) -> Result<Vec<RecordBatch>, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| e.to_string())?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| e.to_string())?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

/// Serde rows → one record batch of `schema`, matching fields by name (extra fields ignored).
/// Strings parse into timestamps (RFC 3339) and dates (`YYYY-MM-DD`); numbers into decimals.
pub fn rows_to_batch<S: serde::Serialize>(
    schema: datafusion::arrow::datatypes::SchemaRef,
    rows: &[S],
) -> Result<RecordBatch, String> {
    if rows.is_empty() {
        return Ok(RecordBatch::new_empty(schema));
    }
    let mut decoder = datafusion::arrow::json::ReaderBuilder::new(schema)
        .with_batch_size(rows.len())
        .build_decoder()
        .map_err(|e| e.to_string())?;
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
    buf.split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| e.to_string()))
        .collect()
}
