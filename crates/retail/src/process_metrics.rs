//! The process's own health in Prometheus' standard names (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, …), read from `/proc` at each scrape (Linux; elsewhere the
//! collector reports nothing).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// One reading of `/proc/self`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub minor_faults: u64,
    pub threads: u64,
    pub open_fds: u64,
    pub start_time_seconds: f64,
}

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ: 100 on every mainstream Linux build).
const TICKS: f64 = 100.0;

/// The kernel's page size, bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(1) as u64
}

/// Fields of a `/proc/…/stat` line after the command name (which may hold spaces and
/// parentheses, so the split is after its last `)`).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat.rsplit_once(')')?.1.split_whitespace().collect())
}

/// User + system CPU seconds among a stat line's `stat_fields` (utime and stime).
fn cpu_seconds_in(fields: &[&str]) -> Option<f64> {
    Some((fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?) as f64 / TICKS)
}

impl ProcessStats {
    /// User + system CPU seconds in a `/proc/…/stat` file (`/proc/thread-self/stat`: this thread).
    pub fn cpu_seconds_of(stat_path: &str) -> Option<f64> {
        cpu_seconds_in(&stat_fields(&std::fs::read_to_string(stat_path).ok()?)?)
    }

    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Self::parse(&stat, &boot, open_fds)
    }

    /// From the text of `/proc/self/stat` and `/proc/stat` (for the boot time).
    fn parse(stat: &str, proc_stat: &str, open_fds: u64) -> Option<ProcessStats> {
        let f = stat_fields(stat)?;
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        let boot: f64 = proc_stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
        let page = page_size();
        Some(ProcessStats {
            cpu_seconds: cpu_seconds_in(&f)?,
            minor_faults: num(7)?,
            threads: num(17)?,
            start_time_seconds: boot + num(19)? as f64 / TICKS,
            virtual_bytes: num(20)?,
            resident_bytes: num(21)? * page,
            open_fds,
        })
    }
}

/// CPU seconds of each live thread of this process, by thread id, with its group: the thread's
/// name without a trailing `-<n>` (`retail-encode-1` → `retail-encode`). Linux only.
pub fn thread_cpu_seconds() -> Option<std::collections::BTreeMap<u64, (String, f64)>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u64>().ok()) else { continue };
        // A thread may end between the listing and the read: skip it.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if let Some(reading) = parse_thread_stat(&stat) {
            out.insert(tid, reading);
        }
    }
    Some(out)
}

/// (group, CPU seconds) from one `/proc/…/task/<tid>/stat` line.
fn parse_thread_stat(stat: &str) -> Option<(String, f64)> {
    let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?;
    let cpu = cpu_seconds_in(&stat_fields(stat)?)?;
    let group = match name.rsplit_once('-') {
        Some((base, n)) if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    };
    Some((group.to_string(), cpu))
}

/// CPU seconds spent between two `thread_cpu_seconds` readings, by thread group, largest first
/// (threads started in between count from zero; threads that ended are missing).
pub fn thread_cpu_between(
    before: &std::collections::BTreeMap<u64, (String, f64)>,
    after: &std::collections::BTreeMap<u64, (String, f64)>,
) -> Vec<(String, f64)> {
    let mut by_group: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    for (tid, (group, cpu)) in after {
        let earlier = before.get(tid).map_or(0.0, |(_, c)| *c);
        *by_group.entry(group).or_default() += (cpu - earlier).max(0.0);
    }
    let mut out: Vec<(String, f64)> = by_group.into_iter().map(|(g, c)| (g.to_string(), c)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = ProcessStats::read() else { return Ok(()) };
        let counter = |e: &mut DescriptorEncoder, name: &str, help: &str, v: f64| -> Result<(), std::fmt::Error> {
            let c = ConstCounter::new(v);
            c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
        };
        let gauge = |e: &mut DescriptorEncoder, name: &str, help: &str, v: f64| -> Result<(), std::fmt::Error> {
            let g = ConstGauge::new(v);
            g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
        };
        counter(&mut encoder, "process_cpu_seconds", "User and system CPU time spent, seconds", s.cpu_seconds)?;
        let faults = ConstCounter::new(s.minor_faults);
        faults.encode(encoder.encode_descriptor(
            "process_minor_page_faults",
            "Memory pages touched for the first time (zeroed and mapped by the kernel)",
            None,
            faults.metric_type(),
        )?)?;
        gauge(&mut encoder, "process_resident_memory_bytes", "Resident memory size, bytes", s.resident_bytes as f64)?;
        gauge(&mut encoder, "process_virtual_memory_bytes", "Virtual memory size, bytes", s.virtual_bytes as f64)?;
        gauge(&mut encoder, "process_threads", "Operating system threads", s.threads as f64)?;
        gauge(&mut encoder, "process_open_fds", "Open file descriptors", s.open_fds as f64)?;
        gauge(&mut encoder, "process_start_time_seconds", "Start time of the process since the Unix epoch, seconds", s.start_time_seconds)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_spaces_and_parentheses_in_the_name() {
        // A real /proc/self/stat line, with a command name made awkward on purpose.
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1234 0 5 0 250 50 0 0 20 0 7 0 3000 123456789 1000 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let proc_stat = "cpu  1 2 3 4\nbtime 1700000000\nprocesses 99\n";
        let s = ProcessStats::parse(stat, proc_stat, 9).expect("parses");
        let page = page_size();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.minor_faults, 1234);
        assert_eq!(s.threads, 7);
        assert_eq!(s.start_time_seconds, 1_700_000_030.0);
        assert_eq!(s.virtual_bytes, 123_456_789);
        assert_eq!(s.resident_bytes, 1000 * page);
        assert_eq!(s.open_fds, 9);
        assert_eq!(ProcessStats::parse("garbage", proc_stat, 0), None);
    }

    #[test]
    fn thread_groups_drop_the_thread_number() {
        let line = |name: &str, utime: u64| format!("77 ({name}) S 1 4242 4242 0 -1 4194560 1234 0 5 0 {utime} 50 0 0 20 0 7 0 3000 1 1");
        assert_eq!(parse_thread_stat(&line("retail-encode-1", 250)), Some(("retail-encode".to_string(), 3.0)));
        assert_eq!(parse_thread_stat(&line("tokio-runtime-w", 50)), Some(("tokio-runtime-w".to_string(), 1.0)));
        assert_eq!(parse_thread_stat(&line("my (odd) name-x", 0)), Some(("my (odd) name-x".to_string(), 0.5)));
        assert_eq!(parse_thread_stat(&line("-7", 0)), Some(("-7".to_string(), 0.5)));
        assert_eq!(parse_thread_stat("garbage"), None);
        assert_eq!(parse_thread_stat("1 )x( S"), None);

        let reading = |v: &[(u64, &str, f64)]| v.iter().map(|(t, g, c)| (*t, (g.to_string(), *c))).collect();
        let before = reading(&[(1, "main", 1.0), (2, "encode", 0.5), (3, "gone", 9.0)]);
        let after = reading(&[(1, "main", 1.25), (2, "encode", 2.5), (4, "encode", 0.5)]);
        assert_eq!(thread_cpu_between(&before, &after), vec![("encode".to_string(), 2.5), ("main".to_string(), 0.25)]);
    }

    #[test]
    fn the_live_process_reports_itself() {
        let s = ProcessStats::read().expect("this test runs on Linux");
        let threads = thread_cpu_seconds().expect("this test runs on Linux");
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() } as u64;
        assert!(threads.contains_key(&me), "this thread ({me}) missing in {threads:?}");
        assert!(s.resident_bytes > 0 && s.threads >= 1 && s.open_fds >= 3, "{s:?}");
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in ["process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ", "process_minor_page_faults_total "] {
            assert!(text.contains(name), "{name} missing in:\n{text}");
        }
    }
}
