//! Parser for tracefs `events/<system>/<event>/format` files.
//!
//! Tools never address event fields by their position in the text output: they look
//! fields up by name here and read them from the binary payload at the offset and size
//! the running kernel declares. The parser is pure (`&str` in, [`EventFormat`] out) so it
//! can be tested on format files captured from many kernels.

use std::fmt;

/// How a field's bytes are located inside the event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The value lives at `offset`, `size` bytes long.
    Fixed,
    /// `__data_loc`: a u32 at `offset` holds (length << 16 | offset_from_payload_start).
    DataLoc,
    /// `__rel_loc`: like `DataLoc` but the offset is relative to the end of the field.
    RelLoc,
}

/// One `field:` line of a format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field name, e.g. `sector`.
    pub name: String,
    /// The C type as written, without the name and array suffix, e.g. `sector_t` or `char`.
    pub type_name: String,
    /// Byte offset from the start of the payload (where `common_type` lives).
    pub offset: usize,
    /// Size in bytes (for `__data_loc`/`__rel_loc` fields, the size of the locator word).
    pub size: usize,
    /// Whether the kernel declares the value signed.
    pub signed: bool,
    /// Number of elements when declared as a fixed array (`char comm[16]` → 16).
    pub array_len: Option<usize>,
    /// Fixed, `__data_loc` or `__rel_loc`.
    pub location: Location,
}

impl Field {
    /// True for string-like fields: char arrays and dynamic char strings.
    pub fn is_string(&self) -> bool {
        self.type_name.ends_with("char")
            && (self.array_len.is_some() || self.location != Location::Fixed)
    }

    /// Reads an unsigned integer field (1, 2, 4 or 8 bytes, native byte order).
    /// Returns `None` if the field is not an integer or the payload is too short.
    #[inline(always)]
    pub fn read_u64(&self, payload: &[u8]) -> Option<u64> {
        read_uint(payload, self.offset, self.size)
    }

    /// Reads an integer field, sign-extending it when the kernel declares it signed.
    #[inline]
    pub fn read_i64(&self, payload: &[u8]) -> Option<i64> {
        let raw = read_uint(payload, self.offset, self.size)?;
        Some(to_i64(raw, self.size, self.signed))
    }

    /// Reads a string a dynamic probe fetched (`:string`, `:ustring`): `None` if the
    /// kernel could not fetch it (it then stores a zero-length string, which it prints
    /// as `(fault)`; a string that was fetched, even an empty one, has at least its
    /// NUL). Fields that are not dynamic strings read as with [`Field::read_bytes`].
    pub fn read_fetched_string<'a>(&self, payload: &'a [u8]) -> Option<&'a [u8]> {
        if matches!(self.location, Location::DataLoc | Location::RelLoc) && self.size == 4 {
            let word = read_uint(payload, self.offset, 4)?;
            if word >> 16 == 0 {
                return None;
            }
        }
        Some(self.read_bytes(payload))
    }

    /// Returns the bytes of a string or dynamic array field, without the trailing NUL
    /// and anything after it. Out-of-range locators yield an empty slice.
    pub fn read_bytes<'a>(&self, payload: &'a [u8]) -> &'a [u8] {
        let raw: &[u8] = match self.location {
            Location::Fixed => payload
                .get(self.offset..self.offset.saturating_add(self.size))
                .unwrap_or(&[]),
            Location::DataLoc | Location::RelLoc => {
                let Some(word) = read_uint(payload, self.offset, self.size.min(4)) else {
                    return &[];
                };
                let (start, len) = if self.size == 2 {
                    // Very old kernels: a 2-byte offset, data runs to the end of the payload.
                    (word as usize, payload.len().saturating_sub(word as usize))
                } else {
                    ((word & 0xffff) as usize, (word >> 16) as usize)
                };
                let start = if self.location == Location::RelLoc {
                    start + self.offset + self.size
                } else {
                    start
                };
                payload.get(start..start.saturating_add(len)).unwrap_or(&[])
            }
        };
        if self.is_string() || self.location == Location::Fixed {
            match raw.iter().position(|&b| b == 0) {
                Some(n) => &raw[..n],
                None => raw,
            }
        } else {
            raw
        }
    }
}

/// `raw`, an integer of `size` bytes, as an i64: sign-extended when `signed`.
#[inline(always)]
pub fn to_i64(raw: u64, size: usize, signed: bool) -> i64 {
    if signed && size < 8 {
        let shift = 64 - 8 * size as u32;
        ((raw << shift) as i64) >> shift
    } else {
        raw as i64
    }
}

/// Reads a 1, 2, 4 or 8-byte native-endian integer at `offset` (`None`: out of bounds
/// or another size).
#[inline(always)]
pub fn read_uint(payload: &[u8], offset: usize, size: usize) -> Option<u64> {
    // Dispatch on the size first, then load a fixed-size array: this compiles to one
    // bounds check and one load (it runs for every field of every event).
    let at = |n: usize| payload.get(offset..offset.checked_add(n)?);
    Some(match size {
        8 => u64::from_ne_bytes(at(8)?.try_into().ok()?),
        4 => u32::from_ne_bytes(at(4)?.try_into().ok()?) as u64,
        2 => u16::from_ne_bytes(at(2)?.try_into().ok()?) as u64,
        1 => *payload.get(offset)? as u64,
        _ => return None,
    })
}

/// A parsed format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormat {
    /// Event name (`name:` line).
    pub name: String,
    /// Event id (`ID:` line): the value of `common_type` in every record of this event.
    pub id: u16,
    /// All fields, common ones first, in file order.
    pub fields: Vec<Field>,
}

/// Why a format file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// 1-based line number (0 when the problem is the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "bad event format file: {}", self.message)
        } else {
            write!(
                f,
                "bad event format file, line {}: {}",
                self.line, self.message
            )
        }
    }
}

impl std::error::Error for FormatError {}

impl EventFormat {
    /// Parses the text of a `format` file.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let mut name = None;
        let mut id = None;
        let mut fields = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let err = |message: String| FormatError {
                line: i + 1,
                message,
            };
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("name:") {
                name = Some(rest.trim().to_string());
            } else if let Some(rest) = t.strip_prefix("ID:") {
                let v: u32 = rest
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("ID is not a number: {:?}", rest.trim())))?;
                id = Some(u16::try_from(v).map_err(|_| err(format!("ID {v} exceeds 65535")))?);
            } else if t.starts_with("field:") {
                fields.push(parse_field(t).map_err(err)?);
            } else if t.starts_with("print fmt:") {
                break;
            }
        }
        let name = name.ok_or(FormatError {
            line: 0,
            message: "no name: line".into(),
        })?;
        let id = id.ok_or(FormatError {
            line: 0,
            message: "no ID: line".into(),
        })?;
        Ok(EventFormat { name, id, fields })
    }

    /// Looks a field up by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Looks a field up by name, with an error that names the event and the field.
    pub fn require(&self, name: &str) -> anyhow::Result<Field> {
        self.field(name).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "event {} has no field '{}' on this kernel (fields: {})",
                self.name,
                name,
                self.fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
}

/// Parses one `field:TYPE NAME[N];\toffset:O;\tsize:S;\tsigned:X;` line.
fn parse_field(line: &str) -> Result<Field, String> {
    let mut decl = None;
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for part in line.split(';') {
        let part = part.trim();
        if let Some(d) = part.strip_prefix("field:") {
            decl = Some(d.trim());
        } else if let Some(v) = part.strip_prefix("offset:") {
            offset = Some(
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("bad offset {v:?}"))?,
            );
        } else if let Some(v) = part.strip_prefix("size:") {
            size = Some(
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("bad size {v:?}"))?,
            );
        } else if let Some(v) = part.strip_prefix("signed:") {
            signed = v.trim() == "1";
        }
    }
    let decl = decl.ok_or("no field declaration")?;
    let offset = offset.ok_or("field without offset")?;
    let size = size.ok_or("field without size")?;
    if offset > u16::MAX as usize || size > u16::MAX as usize {
        return Err(format!("field offset/size out of range: {offset}/{size}"));
    }

    let (location, decl) = if let Some(rest) = decl.strip_prefix("__data_loc ") {
        (Location::DataLoc, rest.trim())
    } else if let Some(rest) = decl.strip_prefix("__rel_loc ") {
        (Location::RelLoc, rest.trim())
    } else {
        (Location::Fixed, decl)
    };

    // Split "TYPE NAME[N]" at the last identifier.
    let (head, array_len) = match decl.strip_suffix(']') {
        Some(d) => {
            let open = d.rfind('[').ok_or("unbalanced [] in field declaration")?;
            let n = &d[open + 1..];
            let len = if n.is_empty() {
                None
            } else {
                // Array sizes may be expressions on odd kernels; only plain numbers are used.
                n.trim().parse::<usize>().ok()
            };
            (d[..open].trim_end(), len.or(Some(0)))
        }
        None => (decl, None),
    };
    // Start of the trailing identifier (a char boundary even if the text before it is
    // not ASCII).
    let split = head
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let name = head[split..].to_string();
    if name.is_empty() {
        return Err(format!("no field name in {decl:?}"));
    }
    let mut type_name = head[..split].trim().to_string();
    if type_name.is_empty() {
        return Err(format!("no type in field declaration {decl:?}"));
    }
    // Dynamic fields are written as `__data_loc char[] name`: the [] belongs to the type.
    if let Some(t) = type_name.strip_suffix("[]") {
        type_name = t.trim().to_string();
    }
    let array_len = match (location, array_len) {
        (Location::Fixed, Some(0)) => None,
        (Location::Fixed, a) => a,
        _ => None,
    };
    Ok(Field {
        name,
        type_name,
        offset,
        size,
        signed,
        array_len,
        location,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_fetch_fault_is_a_zero_length_string_and_an_empty_string_is_not() {
        let f = EventFormat::parse(
            "name: p\nID: 9\nformat:\n\tfield:__data_loc char[] a;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: \"\"\n",
        )
        .unwrap();
        let a = f.field("a").unwrap();
        let mut p = vec![0u8; 12];
        p[8..12].copy_from_slice(&12u32.to_ne_bytes());
        assert_eq!(a.read_fetched_string(&p), None);
        p[8..12].copy_from_slice(&((1u32 << 16) | 12).to_ne_bytes());
        p.push(0);
        assert_eq!(a.read_fetched_string(&p), Some(&b""[..]));
    }
    use super::*;

    const ISSUE_618: &str = include_str!("../../../tests/fixtures/formats/6.18/block_rq_issue");

    #[test]
    fn parses_real_618_block_rq_issue() {
        let f = EventFormat::parse(ISSUE_618).unwrap();
        assert_eq!(f.name, "block_rq_issue");
        assert_eq!(f.fields.len(), 12);
        let sector = f.field("sector").unwrap();
        assert_eq!((sector.offset, sector.size, sector.signed), (16, 8, false));
        let rwbs = f.field("rwbs").unwrap();
        assert_eq!((rwbs.offset, rwbs.size, rwbs.array_len), (34, 10, Some(10)));
        assert!(rwbs.is_string());
        let cmd = f.field("cmd").unwrap();
        assert_eq!(cmd.location, Location::DataLoc);
        assert_eq!(cmd.type_name, "char");
        assert!(cmd.is_string());
        let pid = f.field("common_pid").unwrap();
        assert!(pid.signed);
        assert_eq!(f.field("ioprio").unwrap().offset, 32);
    }

    #[test]
    fn reads_values_by_layout() {
        let f = EventFormat::parse(ISSUE_618).unwrap();
        let mut p = vec![0u8; 72];
        p[4..8].copy_from_slice(&(-5i32).to_ne_bytes());
        p[16..24].copy_from_slice(&2048u64.to_ne_bytes());
        p[34..36].copy_from_slice(b"WS");
        p[44..48].copy_from_slice(b"dd\0x");
        // __data_loc: data at payload offset 64, 3 bytes ("ab\0").
        p[60..64].copy_from_slice(&((3u32 << 16) | 64).to_ne_bytes());
        p[64..67].copy_from_slice(b"ab\0");
        assert_eq!(f.field("sector").unwrap().read_u64(&p), Some(2048));
        assert_eq!(f.field("common_pid").unwrap().read_i64(&p), Some(-5));
        assert_eq!(f.field("rwbs").unwrap().read_bytes(&p), b"WS");
        assert_eq!(f.field("comm").unwrap().read_bytes(&p), b"dd");
        assert_eq!(f.field("cmd").unwrap().read_bytes(&p), b"ab");
        // Truncated payloads give None / empty, never a panic.
        assert_eq!(f.field("sector").unwrap().read_u64(&p[..20]), None);
        assert_eq!(f.field("cmd").unwrap().read_bytes(&p[..62]), b"");
    }

    #[test]
    fn rel_loc_is_relative_to_field_end() {
        let text = "name: x\nID: 7\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:__rel_loc char[] s;\toffset:8;\tsize:4;\tsigned:0;\n";
        let f = EventFormat::parse(text).unwrap();
        let s = f.field("s").unwrap();
        assert_eq!(s.location, Location::RelLoc);
        let mut p = vec![0u8; 20];
        p[8..12].copy_from_slice(&((3u32 << 16) | 2).to_ne_bytes());
        p[14..17].copy_from_slice(b"hi\0");
        assert_eq!(s.read_bytes(&p), b"hi");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(EventFormat::parse("").is_err());
        assert!(EventFormat::parse("name: a\nID: x\n").is_err());
        assert!(EventFormat::parse("name: a\nID: 1\n\tfield:int ;\toffset:0;\tsize:4;\n").is_err());
        assert!(
            EventFormat::parse("name: a\nID: 1\n\tfield:int a[;\toffset:0;\tsize:4;\n").is_err()
        );
        assert!(EventFormat::parse("name: a\nID: 99999\n").is_err());
        // Found by the property tests: a multi-byte character before the name.
        let _ = EventFormat::parse("name: a\nID: 1\n\tfield:int é;\toffset:0;\tsize:4;\n");
        let f = EventFormat::parse("name: a\nID: 1\n\tfield:intéx;\toffset:0;\tsize:4;\n").unwrap();
        assert_eq!(f.fields[0].name, "x");
    }

    #[test]
    fn require_names_the_missing_field() {
        let f = EventFormat::parse(ISSUE_618).unwrap();
        let e = f.require("nope").unwrap_err().to_string();
        assert!(e.contains("block_rq_issue") && e.contains("nope"), "{e}");
    }
}
