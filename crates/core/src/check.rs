//! What a tool would use on this host, and whether it can run: the answer of every
//! tool's `--check` and the per-tool rows of `perf-tools-doctor`.
//!
//! A tool's check probes what it needs (tracefs, events, probe types, devices, counters)
//! the way a run would, verifies it where that is cheap, removes whatever it created, and
//! returns a [`Report`]: one [`Item`] per fact with its [`Status`], what was found, and
//! for every "no" the exact fix (kernel config option, module, sysctl, capability, mount
//! command). [`Report::verdict`] sums it up: runs, runs degraded, or cannot run.

use std::fmt::Write as _;

/// How one fact (or the whole tool) stands on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Available and verified.
    Yes,
    /// Usable with less: a fallback is taken, or a feature is missing.
    Degraded,
    /// Not available.
    No,
}

impl Status {
    /// The word shown in tables and JSON: `yes`, `degraded`, `no`.
    pub fn word(self) -> &'static str {
        match self {
            Status::Yes => "yes",
            Status::Degraded => "degraded",
            Status::No => "no",
        }
    }
}

/// One fact a tool depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// What was checked, e.g. `event probes`, `block:block_rq_issue`.
    pub name: String,
    /// How it stands.
    pub status: Status,
    /// What was found, e.g. `rejected: file names read back as (fault)`.
    pub detail: String,
    /// For `Degraded`/`No`: the exact fix (empty when there is none to give).
    pub fix: String,
    /// True when the tool cannot run at all without this item.
    pub required: bool,
}

/// The result of one tool's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The tool's name.
    pub tool: String,
    /// What the tool would use, in one phrase (e.g. `source: kprobe do_sys_openat2`).
    pub uses: String,
    /// Every fact checked, in the order checked.
    pub items: Vec<Item>,
}

impl Report {
    /// An empty report for `tool`.
    pub fn new(tool: &str) -> Report {
        Report {
            tool: tool.to_string(),
            uses: String::new(),
            items: Vec::new(),
        }
    }

    /// Adds a fact. `fix` may be empty.
    pub fn item(
        &mut self,
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
        required: bool,
    ) -> &mut Report {
        self.items.push(Item {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: fix.into(),
            required,
        });
        self
    }

    /// `No` if a required item is `No`; `Degraded` if any item is not `Yes`; else `Yes`.
    pub fn verdict(&self) -> Status {
        if self
            .items
            .iter()
            .any(|i| i.required && i.status == Status::No)
        {
            Status::No
        } else if self.items.iter().any(|i| i.status != Status::Yes) {
            Status::Degraded
        } else {
            Status::Yes
        }
    }

    /// The exit code of `--check`: 0 if the tool can run (possibly degraded), 1 if not.
    pub fn exit_code(&self) -> i32 {
        if self.verdict() == Status::No {
            1
        } else {
            0
        }
    }

    /// Prints [`Report::render`] on stdout (the answer of `--check`) and returns an error
    /// when the tool cannot run, so that `--check` exits 1 then and 0 otherwise (through
    /// `cli::run_main`). The error names the first required item that is missing.
    pub fn print_check(&self) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        out.write_all(self.render().as_bytes())?;
        out.flush()?;
        if let Some(i) = self
            .items
            .iter()
            .find(|i| i.required && i.status == Status::No)
        {
            anyhow::bail!(
                "{} cannot run on this host: {} ({})",
                self.tool,
                i.name,
                i.detail
            );
        }
        Ok(())
    }

    /// The text `--check` prints: a header line with the verdict, then one aligned row
    /// per item (`NAME  STATUS  DETAIL`), each fix on its own indented `fix:` line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let verdict = match self.verdict() {
            Status::Yes => "can run",
            Status::Degraded => "can run (degraded)",
            Status::No => "cannot run",
        };
        let _ = write!(s, "{}: {verdict}", self.tool);
        if !self.uses.is_empty() {
            let _ = write!(s, "; {}", self.uses);
        }
        s.push('\n');
        let w = self.items.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for i in &self.items {
            let _ = writeln!(s, "  {:<w$}  {:<8}  {}", i.name, i.status.word(), i.detail);
            if !i.fix.is_empty() && i.status != Status::Yes {
                let _ = writeln!(s, "  {:<w$}  {:<8}  fix: {}", "", "", i.fix);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_is_no_only_when_a_required_item_is_missing() {
        let mut r = Report::new("t");
        r.item("a", Status::Yes, "ok", "", true);
        assert_eq!(r.verdict(), Status::Yes);
        r.item("b", Status::No, "absent", "modprobe b", false);
        assert_eq!(r.verdict(), Status::Degraded);
        assert_eq!(r.exit_code(), 0);
        r.item("c", Status::No, "absent", "CONFIG_C=y", true);
        assert_eq!(r.verdict(), Status::No);
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn render_aligns_rows_and_prints_fixes_for_missing_items() {
        let mut r = Report::new("tool");
        r.uses = "source: x".into();
        r.item("long name", Status::Yes, "found", "never shown", true);
        r.item("b", Status::No, "absent", "modprobe b", false);
        assert_eq!(
            r.render(),
            "tool: can run (degraded); source: x\n  long name  yes       found\n  b          no        absent\n                       fix: modprobe b\n"
        );
    }
}
