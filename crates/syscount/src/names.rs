//! Syscall names from the running kernel.
//!
//! `raw_syscalls:sys_enter` carries only the syscall number. The `syscalls:sys_enter_*`
//! events each belong to one syscall and record its number (`__syscall_nr`), so while
//! a run counts, the enter events of syscalls not yet named are enabled next to it: the
//! first event of each names its number, and the event is then turned off again. The
//! names are the kernel's own, for its architecture, never a list compiled in. A number
//! no enter event ever named (a syscall without a tracepoint) is shown as `nr_N`. The
//! raw event does not say whether a call was a 32-bit compat one (other numbers): those
//! are counted under the native name of their number (a documented limit).

use anyhow::{Context, Result};
use std::collections::HashMap;

use perf_tools_ftrace::format::Field;
use perf_tools_ftrace::instance::Instance;

/// The `syscalls:sys_enter_*` events and what they have taught.
#[derive(Debug, Default)]
pub struct SyscallNames {
    /// Event type id -> syscall name (`getppid` for `sys_enter_getppid`).
    events: HashMap<u16, String>,
    /// Event type id -> its `__syscall_nr` field (from its format file, read at its
    /// first event); `None` if it has none.
    nr_fields: HashMap<u16, Option<Field>>,
    /// Syscall number -> name.
    names: HashMap<i64, String>,
    /// Events that named their syscall and are to be turned off.
    learned: Vec<String>,
    /// Events still enabled for learning.
    pub enabled: usize,
}

impl SyscallNames {
    /// Lists the `syscalls:sys_enter_*` events of the instance (their `id` files).
    pub fn load(inst: &Instance) -> Result<SyscallNames> {
        let dir = inst.dir().join("events/syscalls");
        let mut events = HashMap::new();
        for e in std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .flatten()
        {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(call) = name.strip_prefix("sys_enter_") else {
                continue;
            };
            let Ok(id) = std::fs::read_to_string(e.path().join("id")) else {
                continue;
            };
            if let Ok(id) = id.trim().parse::<u16>() {
                events.insert(id, call.to_string());
            }
        }
        Ok(SyscallNames {
            enabled: 0,
            events,
            ..Default::default()
        })
    }

    /// How many enter events the kernel has.
    pub fn events(&self) -> usize {
        self.events.len()
    }

    /// Enables every enter event in the instance (its `enable` file: the syscall
    /// events share one tracepoint, so each costs the kernel a bit in a map).
    pub fn enable_all(&mut self, inst: &Instance) -> Result<()> {
        for call in self.events.values() {
            inst.write(format!("events/syscalls/sys_enter_{call}/enable"), "1")?;
            self.enabled += 1;
        }
        Ok(())
    }

    /// True if `ty` is one of the enter events that has not named its syscall yet.
    #[inline]
    pub fn wants(&self, ty: u16) -> bool {
        self.events.contains_key(&ty) && !self.nr_fields.contains_key(&ty)
    }

    /// Learns the number of the syscall of enter event `ty` from one of its events.
    pub fn learn(&mut self, inst: &Instance, ty: u16, payload: &[u8]) {
        let Some(call) = self.events.get(&ty) else {
            return;
        };
        let field = self.nr_fields.entry(ty).or_insert_with(|| {
            inst.event_format("syscalls", &format!("sys_enter_{call}"))
                .ok()
                .and_then(|f| f.field("__syscall_nr").cloned())
        });
        let nr = field.as_ref().and_then(|f| f.read_i64(payload));
        // Turned off whatever it taught: an event without the field teaches nothing.
        self.learned.push(call.clone());
        let Some(nr) = nr else {
            return;
        };
        self.names.entry(nr).or_insert_with(|| call.clone());
    }

    /// Turns off the enter events that have named their syscall.
    pub fn disable_learned(&mut self, inst: &Instance) -> Result<()> {
        for call in self.learned.drain(..) {
            inst.write(format!("events/syscalls/sys_enter_{call}/enable"), "0")?;
            self.enabled = self.enabled.saturating_sub(1);
        }
        Ok(())
    }

    /// The name of syscall `nr`, if learned.
    pub fn name(&self, nr: i64) -> Option<&str> {
        self.names.get(&nr).map(String::as_str)
    }

    /// Records a name (for tests and for what `--check` verified).
    pub fn insert(&mut self, nr: i64, name: &str) {
        self.names.insert(nr, name.to_string());
    }
}

/// The name shown for a syscall number that no enter event named.
pub fn unnamed(nr: i64) -> String {
    format!("nr_{nr}")
}
