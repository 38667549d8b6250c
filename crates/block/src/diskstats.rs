//! Block I/O the kernel completed, per device, from `/proc/diskstats`: a count no trace
//! filter touches, for the end-of-run account ("1,204 block I/Os on other devices").

use crate::Device;

/// Completed requests of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRow {
    /// The device.
    pub dev: Device,
    /// Reads, writes, discards and flushes completed.
    pub completed: u64,
}

/// A reading of `/proc/diskstats`, kept to the whole disks that issue requests (the ones
/// `block_rq_*` events fire for: blk-mq disks, not device-mapper, md or zram).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// One row per disk.
    pub rows: Vec<DiskRow>,
}

/// Requests completed in one line of `/proc/diskstats`: `None` for a line that is not
/// one. Fields (after major, minor, name): 1 reads completed, 5 writes completed, 12
/// discards completed (Linux 4.18+), 16 flushes completed (5.5+).
pub fn parse_line(line: &str) -> Option<(Device, &str, u64)> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let major = w.first()?.parse().ok()?;
    let minor = w.get(1)?.parse().ok()?;
    let name = w.get(2)?;
    let field = |i: usize| w.get(2 + i).and_then(|v| v.parse::<u64>().ok());
    let completed = field(1)? + field(5)? + field(12).unwrap_or(0) + field(16).unwrap_or(0);
    Some((Device { major, minor }, name, completed))
}

impl DiskStats {
    /// Parses the text of `/proc/diskstats`, keeping the lines `keep(dev, name)` accepts.
    pub fn parse(text: &str, keep: impl Fn(Device, &str) -> bool) -> DiskStats {
        DiskStats {
            rows: text
                .lines()
                .filter_map(parse_line)
                .filter(|(d, n, _)| keep(*d, n))
                .map(|(dev, _, completed)| DiskRow { dev, completed })
                .collect(),
        }
    }

    /// Reads `/proc/diskstats` now (`None` if it cannot be read: then the account has no
    /// count of what the kernel did).
    pub fn read() -> Option<DiskStats> {
        let text = std::fs::read_to_string("/proc/diskstats").ok()?;
        Some(Self::parse(&text, |d, _| {
            let sys = format!("/sys/dev/block/{}:{}", d.major, d.minor);
            // A whole disk (no `partition` file) that has request queues (`mq`).
            !std::path::Path::new(&format!("{sys}/partition")).exists()
                && std::path::Path::new(&format!("{sys}/mq")).exists()
        }))
    }

    /// Requests completed since `earlier`: `(on dev, on every other disk)`; with no
    /// `dev`, everything is "other".
    pub fn since(&self, earlier: &DiskStats, dev: Option<Device>) -> (u64, u64) {
        let (mut on, mut other) = (0, 0);
        for r in &self.rows {
            let before = earlier
                .rows
                .iter()
                .find(|e| e.dev == r.dev)
                .map_or(0, |e| e.completed);
            let n = r.completed.saturating_sub(before);
            if Some(r.dev) == dev {
                on += n;
            } else {
                other += n;
            }
        }
        (on, other)
    }
}

impl DiskStats {
    /// What the kernel completed since `earlier`, as the end-of-run account states it:
    /// with a device filter, `[(n, "block I/Os on other devices"), (m, "on 7,0 per /proc/diskstats")]`;
    /// without, `[(n, "block I/Os completed per /proc/diskstats")]`.
    pub fn seen(&self, earlier: &DiskStats, dev: Option<Device>) -> Vec<(u64, String)> {
        let (on, other) = self.since(earlier, dev);
        match dev {
            Some(d) => vec![
                (other, "block I/Os on other devices".to_string()),
                (on, format!("on {d} per /proc/diskstats")),
            ],
            None => vec![(
                other,
                "block I/Os completed per /proc/diskstats".to_string(),
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "   7       0 loop0 10 0 80 1 0 0 0 0 0 4 1 0 0 0 0 0 0\n 254       0 vda 19021 5561 1377306 10183 85211 64497 3419336 92418 0 96812 113950 0 0 0 0 1204 1234\n 254       1 vda1 18000 5561 1377306 10183 85211 64497 3419336 92418 0 96812 113950 0 0 0 0 0 0\n";
    const AFTER: &str = "   7       0 loop0 10 0 80 1 0 0 0 0 0 4 1 0 0 0 0 0 0\n 254       0 vda 19521 5561 1377306 10183 86411 64497 3419336 92418 0 96812 113950 4 0 0 0 1210 1234\n 254       1 vda1 18000 5561 1377306 10183 85211 64497 3419336 92418 0 96812 113950 0 0 0 0 0 0\n";

    #[test]
    fn counts_reads_writes_discards_and_flushes() {
        let (d, name, n) = parse_line(BEFORE.lines().nth(1).unwrap()).unwrap();
        assert_eq!(
            (d, name),
            (
                Device {
                    major: 254,
                    minor: 0
                },
                "vda"
            )
        );
        assert_eq!(n, 19021 + 85211 + 1204);
        // A 4.x line (no discard or flush fields).
        let (_, _, n) = parse_line("8 0 sda 5 0 0 0 7 0 0 0 0 0 0").unwrap();
        assert_eq!(n, 12);
        assert_eq!(parse_line("garbage"), None);
    }

    #[test]
    fn splits_the_filtered_device_from_the_others() {
        let whole = |_: Device, n: &str| !n.ends_with('1');
        let (a, b) = (
            DiskStats::parse(BEFORE, whole),
            DiskStats::parse(AFTER, whole),
        );
        assert_eq!(b.rows.len(), 2, "the partition is left out");
        let loop0 = Device { major: 7, minor: 0 };
        // vda: 500 reads + 1200 writes + 4 discards + 6 flushes.
        assert_eq!(b.since(&a, Some(loop0)), (0, 1710));
        assert_eq!(b.since(&a, None), (0, 1710));
        assert_eq!(
            b.seen(&a, Some(loop0)),
            vec![
                (1710, "block I/Os on other devices".to_string()),
                (0, "on 7,0 per /proc/diskstats".to_string())
            ]
        );
    }
}
