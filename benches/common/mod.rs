//! Helpers the benchmark programs share: the process's peak resident memory and numeric
//! settings read from the environment.

#![allow(dead_code)]

/// Peak resident set size (`VmHWM` of `/proc/self/status`) in MiB; NaN where unavailable.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Peak resident set size as text, e.g. `113 MiB`.
pub fn peak_rss() -> String {
    format!("{:.0} MiB", peak_rss_mib())
}

/// The number in environment variable `name`, or `default` when unset or not a number.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
