//! Kernel CPU lists (`0-3,8,10-11`), as sysfs prints them (`cpu/online`, a PMU's `cpus`)
//! and as `-C` options take them: the one parser and the one formatter.

/// The widest range one part may span (`0-65535`): a typo cannot allocate gigabytes.
const MAX_SPAN: u32 = 65_535;

/// Parses a CPU list such as `0-3,8,10-11` (spaces around parts and a trailing newline
/// allowed) into sorted, deduplicated CPU numbers; an empty list is empty.
pub fn parse(s: &str) -> Result<Vec<u32>, String> {
    let mut v = Vec::new();
    if s.trim().is_empty() {
        return Ok(v);
    }
    let bad = || format!("invalid CPU list {s:?}: expected e.g. 0 or 0-3,8");
    for part in s.trim().split(',') {
        let part = part.trim();
        if let Some((a, b)) = part.split_once('-') {
            let a: u32 = a.trim().parse().map_err(|_| bad())?;
            let b: u32 = b.trim().parse().map_err(|_| bad())?;
            if a > b || b - a > MAX_SPAN {
                return Err(bad());
            }
            v.extend(a..=b);
        } else {
            v.push(part.parse().map_err(|_| bad())?);
        }
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// Formats sorted CPU numbers as a kernel-style list, runs as ranges (`0-3,8`).
pub fn format(cpus: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_sorts_dedups_and_refuses_bad_parts() {
        assert_eq!(parse("0-3,8,10-11\n"), Ok(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse("1, 1,0"), Ok(vec![0, 1]));
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("\n"), Ok(vec![]));
        for bad in ["3-1", "x", "-1", "0-", "0-70000", "1,,2"] {
            assert_eq!(
                parse(bad),
                Err(format!(
                    "invalid CPU list {bad:?}: expected e.g. 0 or 0-3,8"
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn format_compresses_runs() {
        assert_eq!(format(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format(&[5]), "5");
        assert_eq!(format(&[4, 5]), "4-5");
        assert_eq!(format(&[]), "");
    }

    #[test]
    fn format_inverts_parse() {
        for s in ["0", "0-3,8,10-11", "1,3,5-6"] {
            assert_eq!(format(&parse(s).unwrap()), s);
        }
    }
}
