//! `retail bench stream` on a small backlog: its tables report what the run did, including where
//! the CPU went by thread (the measurement itself is a benchmark, not a test; this checks the
//! command works and reports consistently).

use std::process::Command;

#[test]
fn bench_stream_reports_events_outcomes_and_cpu_by_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_retail"));
    for var in ["RETAIL_BUS", "RETAIL_LAKE", "RETAIL_WAREHOUSE", "RETAIL_CONFIG", "RETAIL_TEST_KAFKA"] {
        cmd.env_remove(var);
    }
    let out =
        cmd.arg("--data-dir").arg(dir.path()).args(["bench", "stream", "--events", "20000", "--latency-rate", "2000", "--latency-secs", "1"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let row = |section: &str, run: &str| -> Vec<String> {
        let body = stdout.split(section).nth(1).unwrap_or_else(|| panic!("no `{section}` table in:\n{stdout}"));
        let line = body.lines().find(|l| l.starts_with(run)).unwrap_or_else(|| panic!("no `{run}` row under `{section}`:\n{stdout}"));
        line[run.len()..].split_whitespace().map(str::to_string).collect()
    };
    // Throughput: every record of the backlog read, and every one of them valid.
    assert_eq!(row("run ", "embedded backlog")[0], "20000");
    assert_eq!(row("outcome", "embedded backlog")[..2], ["20000".to_string(), "0".to_string()]);
    // The paced run's records all arrive as well (at most 1 s of 2 k/s, plus the tick's rounding).
    let paced: u64 = row("outcome", "embedded paced")[0].parse().unwrap();
    assert!(paced > 0 && paced <= 2_100, "paced run validated {paced} records");
    // Stage seconds: every stage has a column, the loop's waits for its sinks included.
    let header = stdout.lines().find(|l| l.starts_with("stage seconds")).unwrap_or_else(|| panic!("no stage table in:\n{stdout}"));
    for stage in ["poll", "process", "warehouse", "lake", "checkpoint", "sink_wait", "loop cpu"] {
        assert!(header.contains(stage), "no `{stage}` column in `{header}`");
    }
    let stages = row("stage seconds", "embedded backlog");
    assert_eq!(stages.len(), 7, "{stages:?}");
    assert!(stages.iter().all(|v| v.parse::<f64>().is_ok_and(|x| x >= 0.0)), "{stages:?}");
    // CPU by thread: the loop's thread (the main one here) did work, and the groups account for
    // no more CPU than the process used (cpu µs/event × events).
    let groups = row("cpu seconds by thread", "embedded backlog").join(" ");
    assert!(groups.contains("retail "), "no loop thread in `{groups}`");
    let by_thread: f64 = groups.split(", ").filter_map(|g| g.rsplit(' ').next()?.parse::<f64>().ok()).sum();
    let cpu_per_event: f64 = row("run ", "embedded backlog")[6].parse().unwrap();
    let process_cpu = cpu_per_event * 20_000.0 / 1e6;
    assert!(by_thread > 0.0 && by_thread <= process_cpu * 1.1 + 0.05, "threads {by_thread} s against the process's {process_cpu} s");
    // Cores busy: the process's CPU over the run's wall time and the machine's cores, in percent.
    let run = row("run ", "embedded backlog");
    let (secs, busy): (f64, f64) = (run[1].parse().unwrap(), run[7].parse().unwrap());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let expected = 100.0 * process_cpu / (secs * cores);
    // Seconds and µs/event are printed to 0.01, busy % to 1: allow for those roundings (a
    // short run's seconds carry a large relative rounding).
    let tolerance = expected * (0.005 / secs + 0.005 / cpu_per_event) * 1.1 + 0.6;
    assert!(
        busy > 0.0 && (busy - expected).abs() <= tolerance,
        "busy {busy} % against {expected:.1} ± {tolerance:.1} % ({process_cpu} s CPU over {secs} s × {cores} cores)"
    );
}

/// `--keep-dir` keeps the run's lake for inspection, and refuses a folder that already holds a
/// run rather than mixing two.
#[test]
fn bench_stream_keeps_its_data_where_asked_and_never_mixes_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_retail"));
        for var in ["RETAIL_BUS", "RETAIL_LAKE", "RETAIL_WAREHOUSE", "RETAIL_CONFIG", "RETAIL_TEST_KAFKA"] {
            cmd.env_remove(var);
        }
        cmd.args(["bench", "stream", "--events", "4000", "--latency-rate", "1000", "--latency-secs", "1", "--keep-dir"]).arg(dir.path()).output().unwrap()
    };
    let out = run();
    assert!(out.status.success(), "bench failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let sales = dir.path().join("embedded/lake/raw-data/sales");
    let files = walk(&sales);
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "parquet")), "no raw sales kept under {}: {files:?}", sales.display());
    let again = run();
    assert!(!again.status.success(), "a second run into the same folder succeeded");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("is not empty"), "unclear refusal: {stderr}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
