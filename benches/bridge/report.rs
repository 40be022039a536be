//! The report: result rows, targets met or missed, notes; printed as they come and written to
//! BENCHMARKS.md at the end of a full run (keeping its hand-written analysis).

use std::fmt::Write as _;
use std::time::Duration;

#[derive(Default)]
pub struct Report {
    rows: Vec<[String; 8]>,
    notes: Vec<String>,
    targets: Vec<(String, String, bool)>,
}

impl Report {
    /// One line of the results table: run, requests/s, ratio to ceiling, p50, p99, max, peak
    /// RSS, CPU.
    pub fn row(&mut self, cells: [&str; 8]) {
        println!("{}", cells.join(" | "));
        self.rows.push(cells.map(str::to_string));
    }

    pub fn target(&mut self, what: &str, figure: String, met: bool) {
        println!(
            "target: {what}: {figure} ({})",
            if met { "met" } else { "MISSED" }
        );
        self.targets.push((what.to_string(), figure, met));
    }

    pub fn note(&mut self, note: String) {
        println!("note: {note}");
        self.notes.push(note);
    }

    /// Writes BENCHMARKS.md: everything above its `## Analysis` section is replaced.
    pub fn write_markdown(&self, quick: bool) {
        let mut md = String::new();
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "Measured with `cargo bench --bench bridge{}` on {} (load generator, fakes and server all on this machine).",
            if quick { " -- --quick" } else { "" },
            machine()
        );
        let _ = writeln!(
            md,
            "Date: {}. The bridge runs as a release-build process of its own, logging JSON at `info` to /dev/null; requests are HTTP/1.1 keep-alive over loopback; each client sends its next request when the previous one is answered.\n",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        let _ = writeln!(md, "## Targets\n\n| target | measured | |\n|---|---|---|");
        for (what, figure, met) in &self.targets {
            let _ = writeln!(
                md,
                "| {what} | {figure} | {} |",
                if *met { "met" } else { "**missed**" }
            );
        }
        let _ = writeln!(
            md,
            "\n## Results\n\n| run | requests/s | ratio to ceiling | p50 ms | p99 ms | max ms | peak RSS | CPU |\n|---|---|---|---|---|---|---|---|"
        );
        for row in &self.rows {
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
        let _ = writeln!(md, "\n## Notes\n");
        for note in &self.notes {
            let _ = writeln!(md, "- {note}");
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        // Keep the hand-written analysis that follows the generated part.
        let analysis = existing
            .split_once("\n## Analysis")
            .map(|(_, rest)| format!("\n## Analysis{rest}"))
            .unwrap_or_default();
        std::fs::write(path, md + &analysis).expect("write BENCHMARKS.md");
        println!("wrote {path}");
    }
}

pub fn fmt_rps(rps: f64) -> String {
    format!("{rps:.0}")
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A ratio to the ceiling's rate, or `-` when the ceiling was not measured in this run.
pub fn ratio(rps: f64, ceiling: Option<f64>) -> String {
    match ceiling {
        Some(ceiling) => format!("{:.2}", rps / ceiling),
        None => "-".to_string(),
    }
}

/// `1000000` as `1,000,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = proc_meminfo_gib();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {memory:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

fn proc_meminfo_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0)
}
