//! Rendering kprobe, kretprobe, uprobe and uretprobe events decoded from the binary ring buffer as the
//! kernel's own text output prints them (`trace_pipe`), with every string that came from
//! user space (the task's comm, `string`/`ustring` arguments, `char` arguments) escaped by
//! the suite's one rule ([`perf_tools_core::output::escape_into`]).
//!
//! The layout is taken from the running kernel, never from its version number:
//!
//! * the line context (`comm-pid [cpu] flags timestamp: `) follows the column legend of
//!   the instance's own `trace` header (the width of the PID column, the number of flag
//!   columns, or none);
//! * the fields come from `events/<group>/<event>/format`, and how each argument is
//!   printed (hex, unsigned, signed, string, symbol, char, arrays) from its `print fmt`,
//!   which the kernel generates from the argument's fetch type;
//! * code addresses are resolved with `/proc/kallsyms`, read once (`sym+0xoff/0xsize`, a
//!   symbol's size running to the next symbol's address, as the kernel computes it).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::format::{EventFormat, Field, Location};
use perf_tools_core::output::escape_into;

/// The columns of the line context, from the instance's `trace` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Width of the PID column (`%-7d`).
    pub pid_width: usize,
    /// Number of latency-flag columns: 5 (irqs-off, need-resched, hardirq/softirq,
    /// preempt-depth, migrate-disable), 4 (kernels without migrate-disable), or 0 when
    /// the instance does not print them.
    pub flag_cols: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            pid_width: 7,
            flag_cols: 5,
        }
    }
}

impl Style {
    /// Reads the column legend of a `trace` file's header, e.g.
    /// `#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION`. `None` if it has none.
    pub fn from_header(text: &str) -> Option<Style> {
        let line = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .find(|l| l.contains("TASK-PID") && l.contains("CPU#"))?;
        let pid = line.find("TASK-PID")? + "TASK-".len();
        let cpu = line.find("CPU#")?;
        // "%16s-%-Nd [%03d]": the CPU column starts one space after the PID column.
        let pid_width = cpu.checked_sub(pid + 1).filter(|&w| w > 0 && w < 16)?;
        let flag_cols = line[cpu..].chars().filter(|&c| c == '|').count();
        Some(Style {
            pid_width,
            flag_cols,
        })
    }
}

/// Kernel symbols from `/proc/kallsyms`: code symbols with their sizes (the distance to
/// the next symbol of the same module, or of the kernel image, of any kind).
#[derive(Debug, Default)]
pub struct Symbols {
    /// Code symbols by address.
    syms: Vec<Sym>,
    names: String,
    modules: Vec<String>,
    /// Rendered addresses (`with offset`, address) -> text.
    cache: HashMap<(bool, u64), String>,
}

#[derive(Debug, Clone, Copy)]
struct Sym {
    addr: u64,
    size: u32,
    name: u32,
    name_len: u16,
    /// Module index + 1, or 0 for the kernel image.
    module: u16,
}

impl Symbols {
    /// Parses the text of `/proc/kallsyms`.
    pub fn parse(text: &str) -> Symbols {
        Symbols::read(text.as_bytes())
    }

    /// Parses `/proc/kallsyms` line by line, keeping only code symbols (every symbol
    /// still ends the one before it). Addresses shown as zero (kptr_restrict) are left
    /// out: with none, every address prints as hex.
    pub fn read(mut input: impl std::io::BufRead) -> Symbols {
        let mut s = Symbols::default();
        // (address, module, is code, name offset, name length), in file order.
        let mut all: Vec<(u64, u16, bool, u32, u16)> = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            match input.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let Ok(l) = std::str::from_utf8(&line) else {
                continue;
            };
            let mut it = l.split_whitespace();
            let (Some(a), Some(k), Some(n)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(a, 16) else {
                continue;
            };
            if addr == 0 || n.len() > usize::from(u16::MAX) {
                continue;
            }
            let module = match it
                .next()
                .and_then(|m| m.strip_prefix('[')?.strip_suffix(']'))
            {
                None => 0,
                Some(m) => match s.modules.iter().rposition(|x| x == m) {
                    Some(p) => p + 1,
                    None => {
                        s.modules.push(m.to_string());
                        s.modules.len()
                    }
                },
            };
            let Ok(module) = u16::try_from(module) else {
                continue;
            };
            let code = matches!(k, "t" | "T" | "w" | "W");
            let (off, len) = if code {
                let off = s.names.len() as u32;
                s.names.push_str(n);
                (off, n.len() as u16)
            } else {
                (0, 0)
            };
            all.push((addr, module, code, off, len));
        }
        // Stable: of symbols at one address, the first listed is the one the kernel names.
        all.sort_by_key(|e| (e.1, e.0));
        let mut i = 0;
        while i < all.len() {
            let (addr, module, _, _, _) = all[i];
            let mut j = i + 1;
            while j < all.len() && all[j].1 == module && all[j].0 == addr {
                j += 1;
            }
            let next = all.get(j).filter(|n| n.1 == module).map(|n| n.0);
            let (_, _, code, name, name_len) = all[i];
            if let (true, Some(end)) = (code, next) {
                s.syms.push(Sym {
                    addr,
                    size: u32::try_from(end - addr).unwrap_or(u32::MAX),
                    name,
                    name_len,
                    module,
                });
            }
            i = j;
        }
        drop(all);
        s.syms.sort_by_key(|e| e.addr);
        s.names.shrink_to_fit();
        s.syms.shrink_to_fit();
        s
    }

    /// Reads `/proc/kallsyms` (an empty table if it cannot be read).
    pub fn load() -> Symbols {
        match std::fs::File::open("/proc/kallsyms") {
            Ok(f) => Symbols::read(std::io::BufReader::with_capacity(1 << 16, f)),
            Err(_) => Symbols::default(),
        }
    }

    /// Number of code symbols known.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// True if no symbol is known.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// The symbol containing `addr`: (name, offset, size, module).
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64, u64, Option<&str>)> {
        let i = self
            .syms
            .partition_point(|e| e.addr <= addr)
            .checked_sub(1)?;
        let e = self.syms[i];
        if addr - e.addr >= u64::from(e.size) {
            return None;
        }
        let name = self
            .names
            .get(e.name as usize..e.name as usize + usize::from(e.name_len))?;
        let module = (e.module > 0)
            .then(|| self.modules.get(usize::from(e.module) - 1))
            .flatten()
            .map(String::as_str);
        Some((name, addr - e.addr, u64::from(e.size), module))
    }

    /// Appends `addr` as the kernel prints a code address in an event: with `offset`,
    /// `sym+0xoff/0xsize [module]` (else `0xaddr`); without, the bare name (else
    /// `0x%08lx`). Zero prints as `0`; a kretprobe trampoline as `[unknown/kretprobe'd]`.
    pub fn render(&mut self, out: &mut Vec<u8>, addr: u64, offset: bool) {
        if addr == 0 {
            out.push(b'0');
            return;
        }
        if let Some(s) = self.cache.get(&(offset, addr)) {
            out.extend_from_slice(s.as_bytes());
            return;
        }
        let mut s = String::new();
        match self.lookup(addr) {
            Some((name, _, _, _)) if name.ends_with("kretprobe_trampoline") => {
                s.push_str("[unknown/kretprobe'd]")
            }
            Some((name, off, size, module)) if offset => {
                let _ = write!(s, "{name}+{off:#x}/{size:#x}");
                if let Some(m) = module {
                    let _ = write!(s, " [{m}]");
                }
            }
            Some((name, _, _, _)) => s.push_str(name),
            None if offset => {
                let _ = write!(s, "{addr:#x}");
            }
            None => {
                let _ = write!(s, "0x{addr:08x}");
            }
        }
        out.extend_from_slice(s.as_bytes());
        if self.cache.len() < 65_536 {
            self.cache.insert((offset, addr), s);
        }
    }
}

/// How one argument is printed (from its `print fmt` conversion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    /// `%u`, `%Lu`.
    Unsigned,
    /// `%d`, `%Ld`.
    Signed,
    /// `0x%x`, `0x%Lx`.
    Hex,
    /// `"%s"`: a `__data_loc` string, `(fault)` when the fetch failed.
    Str,
    /// `%pS`: a code address, `sym+0xoff/0xsize`.
    Symbol,
    /// `'%c'`: one byte.
    Char,
}

fn conv(fmt: &str) -> Option<Conv> {
    Some(match fmt {
        "%u" | "%Lu" | "%llu" | "%lu" => Conv::Unsigned,
        "%d" | "%Ld" | "%lld" | "%ld" => Conv::Signed,
        "0x%x" | "0x%Lx" | "0x%llx" | "0x%lx" => Conv::Hex,
        "\"%s\"" => Conv::Str,
        "%pS" | "%pB" => Conv::Symbol,
        "'%c'" => Conv::Char,
        _ => return None,
    })
}

#[derive(Debug, Clone)]
struct Arg {
    name: String,
    field: Field,
    conv: Conv,
    /// Elements of an array argument (`{a,b,c}`); `None` for a scalar.
    count: Option<usize>,
}

/// Splits the first C string literal of a `print fmt:` line into its text.
fn first_literal(print_fmt: &str) -> Option<String> {
    let s = print_fmt.trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
    None
}

/// A kprobe or kretprobe event's layout, ready to render records.
#[derive(Debug, Clone)]
pub struct ProbeEvent {
    /// The event's name (printed before the colon).
    pub name: String,
    /// The event id (`common_type`).
    pub id: u16,
    ip: Field,
    func: Option<Field>,
    args: Vec<Arg>,
    comm: Option<Field>,
    flags: Field,
    preempt: Field,
    pid: Field,
    /// A uprobe/uretprobe: code addresses print as `0x%lx`, as the kernel prints them
    /// (user addresses have no kernel symbol).
    user: bool,
}

impl ProbeEvent {
    /// The `common_pid` field: the same place in every record of this kernel (the common
    /// fields head every event's format), so it reads stack records too.
    pub fn pid_field(&self) -> &Field {
        &self.pid
    }

    /// Builds the layout from the text of the event's `format` file. `comm_field` names
    /// an argument holding the task's `$comm`, used for the line context and, when
    /// `hide_comm`, left out of the arguments printed.
    pub fn new(
        format_text: &str,
        comm_field: Option<&str>,
        hide_comm: bool,
    ) -> Result<Self, String> {
        let fmt = EventFormat::parse(format_text).map_err(|e| e.to_string())?;
        let print = format_text
            .lines()
            .find_map(|l| l.trim().strip_prefix("print fmt:"))
            .ok_or("the format has no print fmt line")?;
        let lit = first_literal(print).ok_or("unreadable print fmt")?;
        let field = |n: &str| {
            fmt.field(n)
                .cloned()
                .ok_or_else(|| format!("the format has no field {n}"))
        };
        let (ip, func, rest) = if let Some(r) = lit.strip_prefix("(%lx <- %lx)") {
            (field("__probe_ret_ip")?, Some(field("__probe_func")?), r)
        } else if let Some(r) = lit.strip_prefix("(%lx)") {
            (field("__probe_ip")?, None, r)
        } else {
            return Err(format!("not a kprobe print fmt: {lit:?}"));
        };
        let mut args = Vec::new();
        let mut comm = None;
        for tok in rest.split(' ').filter(|t| !t.is_empty()) {
            let (name, f) = tok
                .split_once('=')
                .ok_or_else(|| format!("unexpected print fmt part {tok:?}"))?;
            let fld = field(name)?;
            let (c, count) = match f.strip_prefix('{').and_then(|f| f.strip_suffix('}')) {
                Some(inner) => {
                    let parts: Vec<&str> = inner.split(',').collect();
                    let c = conv(parts[0])
                        .filter(|_| parts.iter().all(|p| *p == parts[0]))
                        .ok_or_else(|| format!("argument {name}: unknown format {f:?}"))?;
                    (c, Some(parts.len()))
                }
                None => (
                    conv(f).ok_or_else(|| format!("argument {name}: unknown format {f:?}"))?,
                    None,
                ),
            };
            if count.is_some() && c == Conv::Str {
                return Err(format!("argument {name}: string arrays are not supported"));
            }
            if c == Conv::Str && fld.location == Location::Fixed {
                return Err(format!("argument {name}: a string that is not __data_loc"));
            }
            if Some(name) == comm_field {
                comm = Some(fld.clone());
                if hide_comm {
                    continue;
                }
            }
            args.push(Arg {
                name: name.to_string(),
                field: fld,
                conv: c,
                count,
            });
        }
        Ok(ProbeEvent {
            name: fmt.name.clone(),
            id: fmt.id,
            ip,
            func,
            args,
            comm,
            flags: field("common_flags")?,
            preempt: field("common_preempt_count")?,
            pid: field("common_pid")?,
            user: false,
        })
    }

    /// The same layout for a uprobe or uretprobe: addresses print as `0x%lx`.
    pub fn user_space(mut self) -> Self {
        self.user = true;
        self
    }

    /// The task's comm recorded in a record of this event (`None`: the event has no comm
    /// argument, or its fetch failed).
    pub fn comm<'a>(&self, payload: &'a [u8]) -> Option<&'a [u8]> {
        string_at(self.comm.as_ref()?, payload)
    }

    /// The names of the string arguments (`string`/`ustring` fetches) printed, in order.
    pub fn string_args(&self) -> Vec<String> {
        self.strings().map(|a| a.name.clone()).collect()
    }

    /// For each of [`ProbeEvent::string_args`], whether its fetch faulted (printed as
    /// `(fault)`) in this record.
    pub fn string_faults<'a>(&'a self, payload: &'a [u8]) -> impl Iterator<Item = bool> + 'a {
        self.strings()
            .map(|a| string_at(&a.field, payload).is_none())
    }

    fn strings(&self) -> impl Iterator<Item = &Arg> {
        self.args
            .iter()
            .filter(|a| a.conv == Conv::Str && a.count.is_none())
    }

    /// True if the task's comm comes from the event itself.
    pub fn has_comm(&self) -> bool {
        self.comm.is_some()
    }

    /// Appends the event's line (with its newline) for a record of this event.
    pub fn render(&self, out: &mut Vec<u8>, ctx: &mut Context, cpu: u32, ts: u64, payload: &[u8]) {
        let comm = self.comm.as_ref().map(|f| string_at(f, payload));
        ctx.line_start(
            out,
            &self.pid,
            &self.flags,
            &self.preempt,
            comm,
            cpu,
            ts,
            payload,
        );
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(b": (");
        let ip = self.ip.read_u64(payload).unwrap_or(0);
        if self.user {
            let _ = write!(HexOut(out), "0x{ip:x}");
        } else {
            ctx.syms.render(out, ip, true);
        }
        if let Some(func) = &self.func {
            out.extend_from_slice(b" <- ");
            let f = func.read_u64(payload).unwrap_or(0);
            if self.user {
                let _ = write!(HexOut(out), "0x{f:x}");
            } else {
                ctx.syms.render(out, f, false);
            }
        }
        out.push(b')');
        for a in &self.args {
            out.push(b' ');
            out.extend_from_slice(a.name.as_bytes());
            out.push(b'=');
            match a.count {
                None => value(
                    out,
                    ctx,
                    a.conv,
                    &a.field,
                    a.field.offset,
                    a.field.size,
                    payload,
                ),
                Some(n) => {
                    let size = a.field.size / n.max(1);
                    out.push(b'{');
                    for i in 0..n {
                        value(
                            out,
                            ctx,
                            a.conv,
                            &a.field,
                            a.field.offset + i * size,
                            size,
                            payload,
                        );
                        out.push(if i + 1 == n { b'}' } else { b',' });
                    }
                }
            }
        }
        out.push(b'\n');
    }
}

/// A `__data_loc` string: `None` when its length is 0 (the fetch faulted).
fn string_at<'a>(f: &Field, payload: &'a [u8]) -> Option<&'a [u8]> {
    let word = f.read_u64(payload)?;
    if word >> 16 == 0 {
        return None;
    }
    Some(f.read_bytes(payload))
}

fn value(
    out: &mut Vec<u8>,
    ctx: &mut Context,
    c: Conv,
    f: &Field,
    offset: usize,
    size: usize,
    payload: &[u8],
) {
    let mut b = itoa::Buffer::new();
    let raw = || {
        let end = offset.checked_add(size)?;
        let s = payload.get(offset..end)?;
        let mut v = [0u8; 8];
        if size > 8 {
            return None;
        }
        if cfg!(target_endian = "little") {
            v[..size].copy_from_slice(s);
        } else {
            v[8 - size..].copy_from_slice(s);
        }
        Some(u64::from_ne_bytes(v))
    };
    match c {
        Conv::Str => match string_at(f, payload) {
            None => out.extend_from_slice(b"(fault)"),
            Some(s) => {
                out.push(b'"');
                escape_into(out, s);
                out.push(b'"');
            }
        },
        Conv::Unsigned => out.extend_from_slice(b.format(raw().unwrap_or(0)).as_bytes()),
        Conv::Signed => {
            let v = raw().unwrap_or(0);
            let v = if size < 8 && size > 0 {
                let sh = 64 - 8 * size as u32;
                ((v << sh) as i64) >> sh
            } else {
                v as i64
            };
            out.extend_from_slice(b.format(v).as_bytes());
        }
        Conv::Hex => {
            let _ = write!(HexOut(out), "0x{:x}", raw().unwrap_or(0));
        }
        Conv::Symbol => ctx.syms.render(out, raw().unwrap_or(0), true),
        Conv::Char => {
            out.push(b'\'');
            escape_into(out, &[raw().unwrap_or(0) as u8]);
            out.push(b'\'');
        }
    }
}

struct HexOut<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for HexOut<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// What every line needs besides its event: the column style, the symbol table and a
/// way to name tasks whose comm the event does not carry.
pub struct Context {
    /// Column style of the line context.
    pub style: Style,
    /// Kernel symbols.
    pub syms: Symbols,
    /// Comm of tasks by PID, for events without a comm argument (read from
    /// `/proc/PID/comm`; `<...>` when the task is gone, as the kernel prints a task it
    /// did not record).
    comms: HashMap<i32, Vec<u8>>,
    /// Read `/proc/PID/comm` for unknown tasks (off in tests).
    pub read_proc: bool,
}

impl Context {
    /// A context with the given style and symbols.
    pub fn new(style: Style, syms: Symbols) -> Context {
        Context {
            style,
            syms,
            comms: HashMap::new(),
            read_proc: true,
        }
    }

    /// Names task `pid` for events that carry no comm.
    pub fn set_comm(&mut self, pid: i32, comm: &[u8]) {
        self.comms.insert(pid, comm.to_vec());
    }

    fn comm_of(&mut self, pid: i32) -> Vec<u8> {
        if let Some(c) = self.comms.get(&pid) {
            return c.clone();
        }
        let c = if self.read_proc {
            std::fs::read(format!("/proc/{pid}/comm")).ok()
        } else {
            None
        };
        let c = match c {
            Some(mut c) => {
                if c.last() == Some(&b'\n') {
                    c.pop();
                }
                c
            }
            None => b"<...>".to_vec(),
        };
        if self.comms.len() > 100_000 {
            self.comms.clear();
        }
        self.comms.insert(pid, c.clone());
        c
    }

    /// Appends `comm-pid [cpu] flags timestamp: ` as the kernel prints it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn line_start(
        &mut self,
        out: &mut Vec<u8>,
        pid_f: &Field,
        flags_f: &Field,
        preempt_f: &Field,
        comm: Option<Option<&[u8]>>,
        cpu: u32,
        ts: u64,
        payload: &[u8],
    ) {
        let pid = pid_f.read_i64(payload).unwrap_or(0) as i32;
        let owned;
        let name: &[u8] = if pid == 0 {
            b"<idle>"
        } else {
            match comm {
                Some(Some(c)) => c,
                Some(None) => b"<...>",
                None => {
                    owned = self.comm_of(pid);
                    &owned
                }
            }
        };
        let start = out.len();
        escape_into(out, name);
        let w = out.len() - start;
        if w < 16 {
            out.splice(start..start, std::iter::repeat_n(b' ', 16 - w));
        }
        out.push(b'-');
        let mut b = itoa::Buffer::new();
        let p = b.format(pid);
        out.extend_from_slice(p.as_bytes());
        for _ in p.len()..self.style.pid_width {
            out.push(b' ');
        }
        out.extend_from_slice(b" [");
        let c = b.format(cpu);
        for _ in c.len()..3 {
            out.push(b'0');
        }
        out.extend_from_slice(c.as_bytes());
        out.extend_from_slice(b"] ");
        if self.style.flag_cols > 0 {
            let f = flags_f.read_u64(payload).unwrap_or(0) as u8;
            let pc = preempt_f.read_u64(payload).unwrap_or(0) as u8;
            lat_flags(out, f, pc, self.style.flag_cols);
        }
        // " %5lu.%06lu": microseconds, rounded to nearest, as the kernel's ns2usecs.
        let us = ts.saturating_add(500) / 1000;
        let secs = b.format(us / 1_000_000);
        out.push(b' ');
        for _ in secs.len()..5 {
            out.push(b' ');
        }
        out.extend_from_slice(secs.as_bytes());
        out.push(b'.');
        let frac = b.format(us % 1_000_000);
        for _ in frac.len()..6 {
            out.push(b'0');
        }
        out.extend_from_slice(frac.as_bytes());
        out.extend_from_slice(b": ");
    }
}

const IRQS_OFF: u8 = 0x01;
const NEED_RESCHED_LAZY: u8 = 0x02;
const NEED_RESCHED: u8 = 0x04;
const HARDIRQ: u8 = 0x08;
const SOFTIRQ: u8 = 0x10;
const PREEMPT_RESCHED: u8 = 0x20;
const NMI: u8 = 0x40;
const BH_OFF: u8 = 0x80;

/// The latency flags (`d..1.`), as the kernel's `trace_print_lat_fmt`. Bit 0x02 was
/// "irqs-off not supported" (never set on architectures with irq-flags tracing, such as
/// x86_64 and arm64) until Linux 6.13 made it "lazy need-resched".
fn lat_flags(out: &mut Vec<u8>, f: u8, pc: u8, cols: usize) {
    let irqs = match (f & IRQS_OFF != 0, f & BH_OFF != 0) {
        (true, true) => b'D',
        (true, false) => b'd',
        (false, true) => b'b',
        _ => b'.',
    };
    let resched = match (
        f & NEED_RESCHED != 0,
        f & NEED_RESCHED_LAZY != 0,
        f & PREEMPT_RESCHED != 0,
    ) {
        (true, true, true) => b'B',
        (true, false, true) => b'N',
        (false, true, true) => b'L',
        (true, true, false) => b'b',
        (true, false, false) => b'n',
        (false, false, true) => b'p',
        (false, true, false) => b'l',
        _ => b'.',
    };
    let irq = match (f & NMI != 0, f & HARDIRQ != 0, f & SOFTIRQ != 0) {
        (true, true, _) => b'Z',
        (true, false, _) => b'z',
        (false, true, true) => b'H',
        (false, true, false) => b'h',
        (false, false, true) => b's',
        _ => b'.',
    };
    out.extend_from_slice(&[irqs, resched, irq]);
    let hex = |out: &mut Vec<u8>, v: u8| {
        let _ = write!(HexOut(out), "{v:x}");
    };
    if cols >= 5 {
        match pc & 0xf {
            0 => out.push(b'.'),
            v => hex(out, v),
        }
        match pc >> 4 {
            0 => out.push(b'.'),
            v => hex(out, v),
        }
    } else {
        match pc {
            0 => out.push(b'.'),
            v => hex(out, v),
        }
    }
}

/// The kernel's stack-trace records: kernel stacks (`options/stacktrace`, event
/// `ftrace/kernel_stack`) or user stacks (`options/userstacktrace`, `ftrace/user_stack`).
#[derive(Debug, Clone)]
pub struct StackEvent {
    /// The event id.
    pub id: u16,
    caller: usize,
    flags: Field,
    preempt: Field,
    pid: Field,
    /// `user_stack`: raw user addresses, printed as the kernel does.
    user: bool,
}

impl StackEvent {
    /// Builds the layout from `events/ftrace/kernel_stack/format` or
    /// `events/ftrace/user_stack/format`.
    pub fn new(format_text: &str) -> Result<Self, String> {
        let fmt = EventFormat::parse(format_text).map_err(|e| e.to_string())?;
        let field = |n: &str| {
            fmt.field(n)
                .cloned()
                .ok_or_else(|| format!("{} has no field {n}", fmt.name))
        };
        let caller = field("caller")?;
        if caller.size % 8 != 0 || caller.array_len.is_none() {
            return Err(format!(
                "{}'s caller is not an array of 64-bit addresses",
                fmt.name
            ));
        }
        Ok(StackEvent {
            id: fmt.id,
            caller: caller.offset,
            flags: field("common_flags")?,
            preempt: field("common_preempt_count")?,
            pid: field("common_pid")?,
            user: fmt.name == "user_stack",
        })
    }

    /// Appends `<stack trace>` (`<user stack trace>`) and one ` => ` line per frame.
    /// `comm` is the comm of the probe event just before on the same CPU (the stack record
    /// has none).
    pub fn render(
        &self,
        out: &mut Vec<u8>,
        ctx: &mut Context,
        comm: Option<Option<&[u8]>>,
        cpu: u32,
        ts: u64,
        payload: &[u8],
    ) {
        ctx.line_start(
            out,
            &self.pid,
            &self.flags,
            &self.preempt,
            comm,
            cpu,
            ts,
            payload,
        );
        out.extend_from_slice(if self.user {
            b"<user stack trace>\n".as_slice()
        } else {
            b"<stack trace>\n".as_slice()
        });
        // As the kernel: every entry up to the record's end or the first ULONG_MAX (and,
        // for user stacks, the first 0).
        let mut off = self.caller;
        while let Some(w) = payload.get(off..off + 8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            let addr = u64::from_ne_bytes(a);
            if addr == u64::MAX || (self.user && addr == 0) {
                break;
            }
            if self.user {
                let _ = write!(HexOut(out), " =>  <{addr:016x}>");
            } else {
                out.extend_from_slice(b" => ");
                ctx.syms.render(out, addr, false);
            }
            out.push(b'\n');
            off += 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ringbuf::{decode_page, PageBuilder, PageLayout};

    const KERNELS: [&str; 3] = ["5.10", "6.1", "6.12"];

    fn fixture(k: &str, name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/kprobe/");
        std::fs::read(format!("{dir}{k}/{name}")).unwrap()
    }

    fn text(k: &str, name: &str) -> String {
        String::from_utf8(fixture(k, name)).unwrap()
    }

    /// Renders every record of a captured page of kernel `k` (comm shown as an argument,
    /// as in the capture, so lines compare whole with the kernel's).
    fn render_page(k: &str, page: &str, hide_comm: bool) -> Vec<String> {
        let open = ProbeEvent::new(&text(k, "open.format"), Some("comm"), hide_comm).unwrap();
        let ret = ProbeEvent::new(&text(k, "ret.format"), None, false).unwrap();
        let stack = StackEvent::new(&text(k, "kernel_stack.format")).unwrap();
        let style = Style::from_header(&text(k, "header.txt")).unwrap();
        let mut ctx = Context::new(style, Symbols::parse(&text(k, "kallsyms")));
        ctx.read_proc = false;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/formats/");
        let header_page = std::fs::read_to_string(format!("{dir}{k}/header_page")).unwrap();
        let layout = PageLayout::parse(&header_page).unwrap();
        let mut out = Vec::new();
        let mut last_comm: Option<Vec<u8>> = None;
        decode_page(&fixture(k, page), &layout, |ts, p| {
            let id = u16::from_ne_bytes([p[0], p[1]]);
            if id == open.id {
                open.render(&mut out, &mut ctx, 0, ts, p);
                last_comm = open.comm(p).map(<[u8]>::to_vec);
                // The capture's kretprobe has no comm: name its tasks as the kprobe did.
                let pid = i32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
                ctx.set_comm(pid, last_comm.as_deref().unwrap_or_default());
            } else if id == ret.id {
                ret.render(&mut out, &mut ctx, 0, ts, p);
            } else if id == stack.id {
                stack.render(&mut out, &mut ctx, Some(last_comm.as_deref()), 0, ts, p);
            } else {
                panic!("unknown id {id}");
            }
        })
        .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn reads_the_column_legend_of_each_kernel() {
        let s = |k| Style::from_header(&text(k, "header.txt")).unwrap();
        assert_eq!(
            s("5.10"),
            Style {
                pid_width: 7,
                flag_cols: 4
            }
        );
        assert_eq!(
            s("6.1"),
            Style {
                pid_width: 7,
                flag_cols: 5
            }
        );
        assert_eq!(
            s("6.12"),
            Style {
                pid_width: 7,
                flag_cols: 5
            }
        );
        let old = "#           TASK-PID   CPU#  ||||    TIMESTAMP  FUNCTION\n";
        assert_eq!(Style::from_header(old).unwrap().pid_width, 5);
        assert_eq!(Style::from_header("# tracer: nop\n"), None);
    }

    #[test]
    fn lines_equal_the_kernels_text_for_ordinary_names() {
        for k in KERNELS {
            let kernel: Vec<String> = text(k, "opens.txt").lines().map(str::to_string).collect();
            let ours = render_page(k, "opens.bin", false);
            assert!(ours.len() >= 10, "{k}: only {} lines", ours.len());
            // The kernel's text of the hostile task spans several lines; every other
            // line must be in the kernel's text, byte for byte, in the same order.
            let mut at = 0;
            let mut compared = 0;
            for l in ours.iter().filter(|l| !l.contains("\\n")) {
                let pos = kernel[at..]
                    .iter()
                    .position(|x| x == l)
                    .unwrap_or_else(|| panic!("{k}: not in the kernel's text:\n{l}"));
                at += pos + 1;
                compared += 1;
            }
            assert!(compared >= 8, "{k}: {compared}");
        }
    }

    #[test]
    fn hostile_comm_and_file_name_stay_on_one_escaped_line() {
        for k in KERNELS {
            let ours = render_page(k, "opens.bin", true);
            let hostile: Vec<&String> = ours.iter().filter(|l| l.contains("ev\\n")).collect();
            // The hostile task opened its script (via the shell) and the file: two
            // kprobe lines and two kretprobe lines, each one line, nothing raw.
            assert!(hostile.len() >= 2, "{k}: {hostile:?}");
            for l in &hostile {
                assert!(
                    l.starts_with("  ev\\n\\e[31mfake-"),
                    "{k}: comm not escaped and padded to 16: {l:?}"
                );
                assert!(!l.bytes().any(|b| b < 0x20 || b == 0x7f), "{k}: {l:?}");
            }
            assert!(
                hostile
                    .iter()
                    .any(|l| l.contains(" fn=\"/tmp/x\\nfake 1 etc-shadow\" ")),
                "{k}: {hostile:?}"
            );
            assert!(
                hostile
                    .iter()
                    .any(|l| l.contains(" fn=\"/tmp/ev\\n\\e[31mfake\" ")),
                "{k}: {hostile:?}"
            );
            // The hidden comm argument is not printed.
            assert!(ours.iter().all(|l| !l.contains(" comm=")), "{k}");
            // Every rendered line is one of the page's records: none was forged.
            let page_records = {
                let mut n = 0;
                let layout = PageLayout::X86_64_4K;
                decode_page(&fixture(k, "opens.bin"), &layout, |_, _| n += 1).unwrap();
                n
            };
            assert_eq!(ours.len(), page_records, "{k}");
        }
    }

    #[test]
    fn stack_traces_equal_the_kernels_text() {
        for k in KERNELS {
            let kernel: Vec<String> = text(k, "stack.txt")
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string)
                .collect();
            let ours = render_page(k, "stack.bin", false);
            assert!(ours.iter().any(|l| l.ends_with(": <stack trace>")), "{k}");
            assert!(ours.iter().any(|l| l == " => do_sys_openat2"), "{k}");
            assert_eq!(ours[..], kernel[..ours.len()], "{k}");
        }
    }

    #[test]
    fn argument_types_from_print_fmt() {
        // Synthetic record of 6.12's probe: every conversion, a fault, arrays.
        let fmt = "name: t\nID: 9\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:s8 a;\toffset:16;\tsize:1;\tsigned:1;\n\tfield:u8 b[3];\toffset:17;\tsize:3;\tsigned:0;\n\tfield:__data_loc char[] s;\toffset:20;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] f;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:char c;\toffset:28;\tsize:1;\tsigned:0;\n\tfield:u64 sym;\toffset:32;\tsize:8;\tsigned:0;\n\nprint fmt: \"(%lx) a=%d b={0x%x,0x%x,0x%x} s=\\\"%s\\\" f=\\\"%s\\\" c='%c' sym=%pS\", REC->__probe_ip, REC->a\n";
        let ev = ProbeEvent::new(fmt, None, false).unwrap();
        let mut p = vec![0u8; 48];
        p[..2].copy_from_slice(&9u16.to_ne_bytes());
        p[2] = 0x81 | 0x08; // irqs off + BH off, hardirq
        p[3] = 0x21; // preempt 1, migrate-disable 2
        p[4..8].copy_from_slice(&42i32.to_ne_bytes());
        p[8..16].copy_from_slice(&0x1010u64.to_ne_bytes());
        p[16] = 0xfe;
        p[17..20].copy_from_slice(&[1, 0xab, 3]);
        p[20..24].copy_from_slice(&((4u32 << 16) | 40).to_ne_bytes());
        p[24..28].copy_from_slice(&44u32.to_ne_bytes());
        p[28] = 0x1b;
        p[32..40].copy_from_slice(&0x2004u64.to_ne_bytes());
        p[40..44].copy_from_slice(b"a\tb\0");
        let syms = Symbols::parse(
            "0000000000001000 T probed\n0000000000001100 t next\n0000000000002000 t modf\t[mymod]\n0000000000002040 t modg\t[mymod]\n",
        );
        let mut ctx = Context::new(Style::default(), syms);
        ctx.read_proc = false;
        let mut out = Vec::new();
        ev.render(&mut out, &mut ctx, 1, 5_123_456_789_500, &p);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "           <...>-42      [001] D.h12  5123.456790: t: (probed+0x10/0x100) a=-2 b={0x1,0xab,0x3} s=\"a\\tb\" f=(fault) c='\\e' sym=modf+0x4/0x40 [mymod]\n"
        );
        // The decoded values the fault watch sees: s fetched, f faulted.
        assert_eq!(ev.string_args(), ["s", "f"]);
        assert_eq!(ev.string_faults(&p).collect::<Vec<_>>(), [false, true]);
    }

    #[test]
    fn symbols_resolve_like_the_kernel() {
        let s = Symbols::parse(
            "ffffffff81000000 T _stext\nffffffff81000000 T first_alias\nffffffff81000100 d some_data\nffffffff81000200 t f\nffffffff81000300 t __pfx_g\nffffffff81000310 t g\n0000000000000000 t hidden\n",
        );
        assert_eq!(s.lookup(0xffffffff81000010).unwrap().0, "_stext");
        assert_eq!(s.lookup(0xffffffff81000010).unwrap().2, 0x100);
        assert_eq!(s.lookup(0xffffffff81000150), None, "data is not code");
        assert_eq!(
            s.lookup(0xffffffff81000250).map(|x| (x.0, x.1, x.2)),
            Some(("f", 0x50, 0x100))
        );
        assert_eq!(s.lookup(0xffffffff81000400), None, "past the last symbol");
        let mut s = s;
        let mut out = Vec::new();
        s.render(&mut out, 0xdead, true);
        out.push(b' ');
        s.render(&mut out, 0xdead, false);
        out.push(b' ');
        s.render(&mut out, 0, false);
        assert_eq!(out, b"0xdead 0x0000dead 0");
    }

    #[test]
    fn builder_pages_round_trip_through_the_renderer() {
        // A long-form record (over 112 bytes) with a long hostile string, after a
        // time extend, decodes and renders as one line.
        let k = "6.1";
        let open = ProbeEvent::new(&text(k, "open.format"), Some("comm"), true).unwrap();
        let mut p = vec![0u8; 62];
        p[..2].copy_from_slice(&open.id.to_ne_bytes());
        p[4..8].copy_from_slice(&77i32.to_ne_bytes());
        let name = b"/tmp/\x1b]0;pwned\x07\nroot-1 [000] .....  1.000000: open: forged";
        let at = p.len();
        p.extend_from_slice(name);
        p.push(0);
        p[20..24].copy_from_slice(&(((name.len() as u32 + 1) << 16) | at as u32).to_ne_bytes());
        let at2 = p.len();
        p.extend_from_slice(b"x\ny\0");
        p[58..62].copy_from_slice(&((4u32 << 16) | at2 as u32).to_ne_bytes());
        let mut b = PageBuilder::new(PageLayout::X86_64_4K, 1_000_000_000);
        assert!(b.event(3_000_000_000, &p));
        let page = b.finish(None);
        let mut ctx = Context::new(Style::default(), Symbols::default());
        ctx.read_proc = false;
        let mut out = Vec::new();
        decode_page(&page, &PageLayout::X86_64_4K, |ts, pl| {
            open.render(&mut out, &mut ctx, 3, ts, pl)
        })
        .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.matches('\n').count(), 1, "{s:?}");
        assert!(s.starts_with("            x\\ny-77      [003] .....     3.000000: open: (0) dfd=0 fn=\"/tmp/\\e]0;pwned\\x07\\nroot-1"), "{s:?}");
    }

    /// A uprobe, a uretprobe and user stacks captured on 6.18 (scripts/capture-uprobe.sh):
    /// ordinary lines equal the kernel's text byte for byte; strings with a newline and
    /// an escape stay on one escaped line.
    #[test]
    fn user_space_probes_and_stacks_render_as_the_kernel_prints_them() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/uprobe/6.18/"
        );
        let read = |n: &str| std::fs::read_to_string(format!("{dir}{n}")).unwrap();
        let entry = ProbeEvent::new(&read("entry.format"), None, false)
            .unwrap()
            .user_space();
        let ret = ProbeEvent::new(&read("ret.format"), None, false)
            .unwrap()
            .user_space();
        let stack = StackEvent::new(&read("user_stack.format")).unwrap();
        let mut ctx = Context::new(
            Style::from_header(&read("header.txt")).unwrap(),
            Symbols::default(),
        );
        ctx.read_proc = false;
        let page = std::fs::read(format!("{dir}calls.bin")).unwrap();
        let mut out = Vec::new();
        let mut pids = Vec::new();
        decode_page(&page, &PageLayout::X86_64_4K, |ts, p| {
            let id = u16::from_ne_bytes([p[0], p[1]]);
            let pid = i32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
            if !pids.contains(&pid) {
                // The capture's program is named "p" (its comm, as /proc would give).
                ctx.set_comm(pid, b"p");
                pids.push(pid);
            }
            if id == entry.id {
                entry.render(&mut out, &mut ctx, 0, ts, p);
            } else if id == ret.id {
                ret.render(&mut out, &mut ctx, 0, ts, p);
            } else if id == stack.id {
                stack.render(&mut out, &mut ctx, Some(Some(b"p")), 0, ts, p);
            } else {
                panic!("unknown id {id}");
            }
        })
        .unwrap();
        let ours = String::from_utf8(out).unwrap();
        let kernel = read("calls.txt");
        // 5 calls: entry and return, each a line and a stack of 3 lines.
        assert_eq!(ours.lines().count(), 40, "{ours}");
        let (ordinary, hostile): (Vec<&str>, Vec<&str>) =
            ours.lines().partition(|l| !l.contains('\\'));
        let mut at = 0;
        for l in &ordinary {
            let k: Vec<&str> = kernel.lines().collect();
            let pos = k[at..]
                .iter()
                .position(|x| x == l)
                .unwrap_or_else(|| panic!("not in the kernel's text:\n{l}"));
            at += pos + 1;
        }
        assert_eq!(
            hostile.len(),
            2,
            "the two strings with control characters: {hostile:?}"
        );
        assert!(
            hostile[0].ends_with(") a=0x4 s=\"ev\\nfake\\e[31m\""),
            "{}",
            hostile[0]
        );
        assert!(
            hostile[1].ends_with(") a=0x5 s=\"x\\ny\""),
            "{}",
            hostile[1]
        );
        assert!(ours
            .lines()
            .any(|l| l.contains(": ret: (0x") && l.contains(" <- 0x") && l.ends_with(" ret=0x82")));
        assert!(ours.lines().any(|l| l.ends_with(": <user stack trace>")));
    }
}
