//! Never silently print faults: when a `string`/`ustring` fetch of the user's probe read
//! nothing (`(fault)`) in every event of the first second, the tool says so once on stderr,
//! with the likely reason.

/// How a string argument is fetched, from the probe definition's `name=fetch:type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// `:string`: a kernel pointer.
    Kernel,
    /// `:ustring`: a user-space pointer.
    User,
}

/// The fetch type of each named argument of a definition's argument text
/// (`fn=+0($arg2):ustring flags=$arg3`): `(name, fetch)` for every `string`/`ustring`.
pub fn string_fetches(args: &str) -> Vec<(String, Fetch)> {
    args.split_whitespace()
        .filter_map(|a| {
            let (name, fetch) = a.split_once('=')?;
            let ty = fetch.rsplit_once(':')?.1;
            let f = match ty {
                "string" => Fetch::Kernel,
                "ustring" => Fetch::User,
                _ => return None,
            };
            Some((name.to_string(), f))
        })
        .collect()
}

/// Watches the string arguments over the first second of events.
#[derive(Debug, Clone)]
pub struct FaultWatch {
    /// Each watched argument: name, fetch type, events in which it faulted.
    args: Vec<(String, Option<Fetch>, u64)>,
    /// Events seen in the window.
    events: u64,
    /// End of the window (trace clock, ns).
    until: u64,
    done: bool,
    /// The tool named in the warning.
    tool: &'static str,
}

/// How long the watch looks at events.
pub const WINDOW_NS: u64 = 1_000_000_000;

impl FaultWatch {
    /// Watches `names` (the probe's string arguments, in record order) over events up to
    /// `start + WINDOW_NS`; `fetches` gives their fetch types from the definition.
    pub fn new(
        tool: &'static str,
        names: &[String],
        fetches: &[(String, Fetch)],
        start: u64,
    ) -> FaultWatch {
        FaultWatch {
            args: names
                .iter()
                .map(|n| {
                    let f = fetches.iter().find(|(m, _)| m == n).map(|(_, f)| *f);
                    (n.clone(), f, 0)
                })
                .collect(),
            events: 0,
            until: start.saturating_add(WINDOW_NS),
            done: names.is_empty(),
            tool,
        }
    }

    /// Records one event at `ts` with, for each watched argument, whether it faulted.
    pub fn record(&mut self, ts: u64, faults: impl Iterator<Item = bool>) {
        if self.done || ts > self.until {
            return;
        }
        self.events += 1;
        for (a, f) in self.args.iter_mut().zip(faults) {
            if f {
                a.2 += 1;
            }
        }
    }

    /// Once the window has passed (`now` beyond it, or `end`: the run is over), the
    /// warning if some argument faulted in every event seen, at most once per run.
    pub fn verdict(&mut self, now: u64, end: bool) -> Option<String> {
        if self.done || (!end && now <= self.until) {
            return None;
        }
        self.done = true;
        let n = self.events;
        let all: Vec<&(String, Option<Fetch>, u64)> =
            self.args.iter().filter(|a| n > 0 && a.2 == n).collect();
        if all.is_empty() {
            return None;
        }
        let names: Vec<&str> = all.iter().map(|a| a.0.as_str()).collect();
        let reason = match all[0].1 {
            Some(Fetch::Kernel) => "it is fetched with :string, which reads kernel memory: if the pointer comes from user space (a system call's argument, such as a file name), use :ustring",
            Some(Fetch::User) if self.tool == "kprobe" => "it is fetched with :ustring, which reads user memory: if the pointer is a kernel one, use :string; if it is a user pointer, its page was not resident when the probe fired (kprobes cannot fault pages in: probe a later point, after the kernel copied the data)",
            Some(Fetch::User) => "it is fetched with :ustring, which reads user memory: check that the argument is a pointer to a string (the register or $argN of the right argument, at the function's entry) and that its page is resident when the probe fires",
            None => "check the fetch: :string reads kernel memory, :ustring user memory, and a user page that is not resident reads as a fault",
        };
        Some(format!(
            "{}: WARNING: {} printed (fault) in every one of the {n} events of the first second: the fetch read nothing; {reason}",
            self.tool,
            names.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_types_come_from_the_definition() {
        assert_eq!(
            string_fetches("fn=+0($arg2):ustring fl=$arg3 k=+0(%di):string x=+8($arg1):u64"),
            vec![
                ("fn".to_string(), Fetch::User),
                ("k".to_string(), Fetch::Kernel)
            ]
        );
        assert!(string_fetches("$arg1 $retval").is_empty());
    }

    fn watch(fetch: &str) -> FaultWatch {
        let names = vec!["fn".to_string(), "k".to_string()];
        FaultWatch::new("kprobe", &names, &string_fetches(fetch), 1_000)
    }

    #[test]
    fn every_event_faulting_in_the_first_second_is_reported_once() {
        let mut w = watch("fn=+0($arg2):string k=+0($arg1):string");
        for i in 0..5 {
            w.record(1_000 + i, [true, false].into_iter());
            assert_eq!(
                w.verdict(1_000 + i, false),
                None,
                "not before the second ends"
            );
        }
        // An event after the window does not count.
        w.record(1_000 + WINDOW_NS + 1, [false, false].into_iter());
        let msg = w.verdict(1_000 + WINDOW_NS + 1, false).unwrap();
        assert!(
            msg.starts_with("kprobe: WARNING: fn printed (fault) in every one of the 5 events of the first second"),
            "{msg}"
        );
        assert!(msg.contains("use :ustring"), "{msg}");
        assert_eq!(w.verdict(u64::MAX, true), None, "only once");
    }

    #[test]
    fn a_ustring_fault_names_residency_and_kernel_pointers() {
        let mut w = watch("fn=+0($arg2):ustring");
        w.record(2_000, [true, false].into_iter());
        let msg = w.verdict(5_000, true).unwrap();
        assert!(msg.contains("fetched with :ustring"), "{msg}");
        assert!(msg.contains("not resident"), "{msg}");
        assert!(msg.contains("use :string"), "{msg}");
    }

    #[test]
    fn some_good_fetches_or_no_events_mean_no_warning() {
        let mut w = watch("fn=+0($arg2):ustring");
        w.record(2_000, [true, false].into_iter());
        w.record(3_000, [false, false].into_iter());
        assert_eq!(w.verdict(u64::MAX, true), None);
        let mut w = watch("fn=+0($arg2):ustring");
        assert_eq!(w.verdict(u64::MAX, true), None, "no events: nothing to say");
        let mut w = FaultWatch::new("kprobe", &[], &[], 0);
        w.record(1, std::iter::empty());
        assert_eq!(w.verdict(u64::MAX, true), None);
    }
}
