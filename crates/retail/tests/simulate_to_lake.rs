//! `retail simulate --out lake`: history straight into the lake's raw Parquet, idempotently.

use std::process::Command;

fn simulate(data_dir: &std::path::Path, out: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_retail"))
        .args(["simulate", "--stores", "3", "--products", "80", "--backfill-days", "2", "--seed", "11", "--out", out])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RETAIL_LAKE")
        .status()
        .unwrap();
    assert!(status.success(), "retail simulate --out {out} failed");
}

#[tokio::test]
async fn backfill_straight_to_the_lake_holds_every_event_once_even_when_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("events.jsonl");
    simulate(dir.path(), &format!("jsonl:{}", jsonl.display()));
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    let count = |kind: &str| lines.lines().filter(|l| l.contains(&format!("\"event_type\":\"{kind}\""))).count();
    let (sales, inventory) = (count("sale"), count("inventory_update"));
    let others = lines.lines().count() - sales - inventory;
    assert!(sales > 0 && inventory > 0);

    simulate(dir.path(), "lake");
    simulate(dir.path(), "lake"); // a rerun overwrites, never duplicates

    let lake_url = format!("file://{}", dir.path().join("lake").display());
    let lake = retail_lake::Lake::open(&lake_url, &retail_lake::S3Options::default()).unwrap();
    let rows = |prefix: &'static str| {
        let lake = lake.clone();
        async move {
            let files = lake.read_parquet_prefix(prefix).await.unwrap();
            assert!(files.iter().all(|(key, _)| key.contains("/year=") && key.contains("/month=") && key.contains("/day=")), "seed layout");
            files.iter().flat_map(|(_, batches)| batches).map(|b| b.num_rows()).sum::<usize>()
        }
    };
    assert_eq!(rows("raw-data/sales/").await, sales);
    assert_eq!(rows("raw-data/inventory/").await, inventory);
    assert_eq!(rows("raw-data/events/").await, others);
}
