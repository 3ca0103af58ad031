//! What the probe VMs run and how their output is read: `ping` on Linux (iputils or
//! busybox), `Test-Connection` on Windows (Windows PowerShell 5.1's table or
//! PowerShell 7's), and the timestamped series of a drill. Pure text in, numbers out,
//! so both clouds' adapters share it and fixtures test it.

use std::net::Ipv4Addr;

use serde::Serialize;

/// The probe host's shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    /// `sh` with `ping` (Azure `RunShellScript`, SSM `AWS-RunShellScript`).
    Linux,
    /// Windows PowerShell with `Test-Connection` (Azure `RunPowerShellScript`, SSM
    /// `AWS-RunPowerShellScript`).
    Windows,
}

/// Echoes the verify ping sends.
pub const ECHOES: u32 = 5;

/// Echoes sent and received, and the round-trip times of those received.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PingStats {
    pub sent: u32,
    pub received: u32,
    /// Round-trip times in milliseconds (`None` when nothing came back).
    pub rtt_ms: Option<Rtt>,
}

impl PingStats {
    /// Loss in percent of the echoes sent.
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 { 100.0 } else { 100.0 * f64::from(self.sent.saturating_sub(self.received)) / f64::from(self.sent) }
    }
}

impl Eq for PingStats {}

/// Round-trip times, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Rtt {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

/// The script that pings `to` [`ECHOES`] times and always exits 0 (the ping's own
/// status is printed, so a total loss is read as a loss, not as a failed command).
pub fn ping_script(os: Os, to: Ipv4Addr) -> String {
    match os {
        Os::Linux => format!("ping -c {ECHOES} -W 2 {to} 2>&1; echo \"vpnbridge-exit=$?\"; exit 0"),
        Os::Windows => format!(
            "Test-Connection -ComputerName {to} -Count {ECHOES} -ErrorAction SilentlyContinue | Format-Table -AutoSize | Out-String -Width 200\n\
             \"vpnbridge-sent={ECHOES}\"\nexit 0"
        ),
    }
}

/// The script of a series: one echo every `interval_ms`, `samples` times, each printed
/// as `vpnbridge-sample seq=N at=UNIXSECONDS reply=0|1`; always exits 0.
pub fn series_script(os: Os, to: Ipv4Addr, samples: u32, interval_ms: u64) -> String {
    match os {
        Os::Linux => {
            let sleep = format!("{}.{:03}", interval_ms / 1000, interval_ms % 1000);
            format!(
                "i=0; while [ $i -lt {samples} ]; do i=$((i+1)); t=$(date +%s.%N); \
                 if ping -c 1 -W 1 {to} >/dev/null 2>&1; then r=1; else r=0; fi; \
                 echo \"vpnbridge-sample seq=$i at=$t reply=$r\"; sleep {sleep}; done; exit 0"
            )
        }
        Os::Windows => format!(
            "for ($i = 1; $i -le {samples}; $i++) {{ $t = [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds() / 1000; \
             $r = Test-Connection -ComputerName {to} -Count 1 -Quiet; \
             \"vpnbridge-sample seq=$i at=$t reply=$([int]$r)\"; Start-Sleep -Milliseconds {interval_ms} }}\nexit 0"
        ),
    }
}

/// Reads a ping's output: the iputils or busybox summary (`N packets transmitted, M
/// [packets] received`, `rtt|round-trip min/avg/max[/mdev] = a/b/c[/d] ms`), or the
/// rows of a `Test-Connection` table for `to`. `Err` says why it is unreadable.
pub fn parse_ping(stdout: &str, to: Ipv4Addr) -> Result<PingStats, String> {
    if let Some(stats) = parse_unix_summary(stdout) {
        return Ok(stats);
    }
    if let Some(stats) = parse_test_connection(stdout, to) {
        return Ok(stats);
    }
    let first = stdout.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("vpnbridge-")).unwrap_or("(no output)");
    Err(format!("its output is not a ping summary vpnbridge can read: {first}"))
}

fn parse_unix_summary(out: &str) -> Option<PingStats> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut parts = line.split(',');
    let sent = leading_number(parts.next()?.trim())?;
    let received = leading_number(parts.next()?.trim())?;
    let rtt = out.lines().find(|l| l.contains("min/avg/max")).and_then(|l| {
        let values = l.split('=').nth(1)?.trim();
        let nums: Vec<f64> = values.split_whitespace().next()?.split('/').filter_map(|n| n.parse().ok()).collect();
        (nums.len() >= 3).then(|| Rtt { min: nums[0], avg: nums[1], max: nums[2] })
    });
    Some(PingStats { sent: sent as u32, received: received as u32, rtt_ms: if received > 0.0 { rtt } else { None } })
}

fn leading_number(s: &str) -> Option<f64> {
    let n: String = s.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    n.parse().ok()
}

/// Windows PowerShell 5.1 prints one row per reply (`Source Destination IPV4Address
/// IPV6Address Bytes Time(ms)`) and nothing for a lost echo (its error is silenced);
/// PowerShell 7 prints one row per echo (`Ping Source Address Latency BufferSize
/// Status`) with `Status` `Success` or e.g. `TimedOut`. The count sent is the script's
/// `vpnbridge-sent=N` line.
fn parse_test_connection(out: &str, to: Ipv4Addr) -> Option<PingStats> {
    let sent = out.lines().find_map(|l| l.trim().strip_prefix("vpnbridge-sent=")).and_then(|n| n.trim().parse::<u32>().ok())?;
    let target = to.to_string();
    let mut times = Vec::new();
    let mut rows = 0u32; // every row for the target, replied or not
    for line in out.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if !cols.contains(&target.as_str()) || cols.first().is_some_and(|c| c.starts_with("Destination")) {
            continue;
        }
        match cols.last().copied() {
            Some("Success") if cols.len() >= 4 => {
                rows += 1;
                times.push(cols[cols.len() - 3].parse::<f64>().unwrap_or(0.0));
            }
            Some(s) if s.chars().all(|c| c.is_ascii_alphabetic()) => rows += 1,
            Some(t) if t.parse::<f64>().is_ok() && cols.len() >= 3 => {
                rows += 1;
                times.push(t.parse().unwrap_or(0.0));
            }
            _ => {}
        }
    }
    let _ = rows;
    let received = times.len() as u32;
    let rtt_ms = (!times.is_empty()).then(|| Rtt {
        min: times.iter().copied().fold(f64::INFINITY, f64::min),
        avg: times.iter().sum::<f64>() / times.len() as f64,
        max: times.iter().copied().fold(0.0, f64::max),
    });
    Some(PingStats { sent, received: received.min(sent), rtt_ms })
}

/// Reads a series' `vpnbridge-sample` lines, in order of `seq`.
pub fn parse_series(stdout: &str) -> Result<Vec<crate::probe::Sample>, String> {
    let mut out: Vec<(u32, crate::probe::Sample)> = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.trim().strip_prefix("vpnbridge-sample ") else { continue };
        let field = |k: &str| rest.split_whitespace().find_map(|f| f.strip_prefix(k));
        let (Some(seq), Some(at), Some(reply)) = (field("seq="), field("at="), field("reply=")) else {
            return Err(format!("a series line vpnbridge cannot read: {line}"));
        };
        let (Ok(seq), Some(at)) = (seq.parse::<u32>(), leading_number(at.replace(',', ".").as_str())) else {
            return Err(format!("a series line vpnbridge cannot read: {line}"));
        };
        out.push((seq, crate::probe::Sample { at, replied: reply == "1" || reply.eq_ignore_ascii_case("true") }));
    }
    if out.is_empty() {
        let first = stdout.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(no output)");
        return Err(format!("the series printed no sample: {first}"));
    }
    out.sort_by_key(|(seq, _)| *seq);
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TO: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 4);

    #[test]
    fn iputils_all_replies() {
        let s = parse_ping(include_str!("fixtures/iputils-all.txt"), TO).unwrap();
        assert_eq!((s.sent, s.received), (5, 5));
        let rtt = s.rtt_ms.unwrap();
        assert_eq!((rtt.min, rtt.avg, rtt.max), (1.650, 1.843, 2.010));
        assert_eq!(s.loss_percent(), 0.0);
    }

    #[test]
    fn iputils_total_loss_with_errors() {
        let s = parse_ping(include_str!("fixtures/iputils-none.txt"), TO).unwrap();
        assert_eq!((s.sent, s.received, s.rtt_ms), (5, 0, None));
        assert_eq!(s.loss_percent(), 100.0);
    }

    #[test]
    fn iputils_partial_loss() {
        let s = parse_ping(include_str!("fixtures/iputils-partial.txt"), TO).unwrap();
        assert_eq!((s.sent, s.received), (5, 3));
        assert_eq!(s.loss_percent(), 40.0);
        assert_eq!(s.rtt_ms.unwrap().max, 2.331);
    }

    #[test]
    fn busybox_replies_and_loss() {
        let s = parse_ping(include_str!("fixtures/busybox-all.txt"), TO).unwrap();
        assert_eq!((s.sent, s.received), (5, 5));
        assert_eq!(s.rtt_ms.unwrap().avg, 1.384);
        let s = parse_ping(include_str!("fixtures/busybox-none.txt"), TO).unwrap();
        assert_eq!((s.sent, s.received, s.rtt_ms), (5, 0, None));
    }

    #[test]
    fn windows_powershell_5_table() {
        let s = parse_ping(include_str!("fixtures/test-connection-5.1.txt"), TO).unwrap();
        assert_eq!((s.sent, s.received), (5, 4));
        let rtt = s.rtt_ms.unwrap();
        assert_eq!((rtt.min, rtt.max), (1.0, 3.0));
        let s = parse_ping(include_str!("fixtures/test-connection-5.1-none.txt"), TO).unwrap();
        assert_eq!((s.sent, s.received, s.rtt_ms), (5, 0, None));
    }

    #[test]
    fn powershell_7_table() {
        let s = parse_ping(include_str!("fixtures/test-connection-7.txt"), TO).unwrap();
        assert_eq!((s.sent, s.received), (5, 3));
        assert_eq!(s.rtt_ms.unwrap().max, 4.0);
    }

    #[test]
    fn unreadable_output_says_what_it_was() {
        let e = parse_ping("sh: 1: ping: not found\nvpnbridge-exit=127\n", TO).unwrap_err();
        assert!(e.contains("ping: not found"), "{e}");
    }

    #[test]
    fn series_lines_in_order() {
        let out = "vpnbridge-sample seq=2 at=1700000001.25 reply=0\nnoise\nvpnbridge-sample seq=1 at=1700000000.0 reply=1\n\
                   vpnbridge-sample seq=3 at=1700000002,5 reply=True\n";
        let s = parse_series(out).unwrap();
        assert_eq!(s.iter().map(|s| s.replied).collect::<Vec<_>>(), [true, false, true]);
        assert_eq!(s[1].at, 1700000001.25);
        assert_eq!(s[2].at, 1700000002.5);
        assert!(parse_series("bash: date: command not found").is_err());
    }

    #[test]
    fn scripts_always_exit_zero_and_name_the_target() {
        for os in [Os::Linux, Os::Windows] {
            assert!(ping_script(os, TO).contains("10.2.0.4") && ping_script(os, TO).ends_with("exit 0"));
            let s = series_script(os, TO, 60, 1000);
            assert!(s.contains("vpnbridge-sample") && s.contains("60") && s.ends_with("exit 0"), "{s}");
        }
        assert!(series_script(Os::Linux, TO, 3, 1500).contains("sleep 1.500"));
    }
}
