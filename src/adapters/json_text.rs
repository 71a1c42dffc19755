//! JSON string literals written straight into a text buffer: the log
//! formatter's lines and the verify response's body. Same escapes as
//! serde_json (a test holds them equal), found eight bytes at a time.

use std::fmt;

/// `s` as a JSON string literal (the escapes serde_json uses).
pub fn write_json_str(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    write_json_str_body(out, s)?;
    out.write_char('"')
}

/// `s` escaped as the inside of a JSON string literal. Runs that need no
/// escape (nearly every byte of a log line) are found eight bytes at a time
/// and written whole.
pub fn write_json_str_body(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        let i = start + first_to_escape(&bytes[start..]);
        if i == bytes.len() {
            return out.write_str(&s[start..]);
        }
        // Escaped bytes are ASCII, so `start..i` are char boundaries.
        out.write_str(&s[start..i])?;
        let b = bytes[i];
        match b {
            b'"' => out.write_str("\\\"")?,
            b'\\' => out.write_str("\\\\")?,
            b'\n' => out.write_str("\\n")?,
            b'\r' => out.write_str("\\r")?,
            b'\t' => out.write_str("\\t")?,
            0x08 => out.write_str("\\b")?,
            0x0c => out.write_str("\\f")?,
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let esc = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ];
                out.write_str(std::str::from_utf8(&esc).expect("ASCII"))?;
            }
        }
        start = i + 1;
    }
}

/// The index of the first byte of `b` that a JSON string must escape (a
/// control character, `"` or a backslash), or `b.len()`.
fn first_to_escape(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let needs = |x: u8| x < 0x20 || x == b'"' || x == b'\\';
    let mut i = 0;
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        // A byte's high bit is set here if it is < 0x20, or equal to '"' or
        // '\\' (the classic "has zero byte" test on w, w ^ '"' and w ^ '\\');
        // bytes ≥ 0x80 (UTF-8) are masked out by `!w`.
        let ctl = w.wrapping_sub(LO * 0x20);
        let quote = (w ^ (LO * u64::from(b'"'))).wrapping_sub(LO);
        let bslash = (w ^ (LO * u64::from(b'\\'))).wrapping_sub(LO);
        if (ctl | quote | bslash) & !w & HI != 0 {
            // A hit, or a false positive from a borrow: settle it bytewise.
            if let Some(j) = b[i..i + 8].iter().position(|&x| needs(x)) {
                return i + j;
            }
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&x| needs(x))
        .map_or(b.len(), |j| i + j)
}

/// A byte buffer as a `fmt::Write` target, for the writers above.
pub struct VecText<'a>(pub &'a mut Vec<u8>);

impl fmt::Write for VecText<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `s` as a JSON string literal at the end of `out`.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    write_json_str(&mut VecText(out), s).expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_found_wherever_they_fall() {
        // Every byte that needs an escape, at every offset of a 20-byte
        // string (both sides of the 8-byte steps), among plain ASCII and
        // multi-byte UTF-8 (whose bytes are ≥ 0x80 and never escaped).
        for fill in ["a", "é"] {
            for at in 0..20 {
                for b in (0u8..0x20).chain([b'"', b'\\']) {
                    let mut s: String = fill.repeat(20);
                    let byte_at = at * fill.len();
                    s.insert(byte_at, char::from(b));
                    let mut ours = String::new();
                    write_json_str(&mut ours, &s).unwrap();
                    assert_eq!(ours, serde_json::to_string(&s).unwrap(), "{b:#x} at {at}");
                }
            }
            let plain = fill.repeat(37);
            let mut ours = String::new();
            write_json_str(&mut ours, &plain).unwrap();
            assert_eq!(ours, serde_json::to_string(&plain).unwrap());
        }
        // Bytes just around the escaped ranges are left alone.
        for c in ['\u{20}', '!', '#', '[', ']', '\u{7f}'] {
            let s = format!("{c}{c}{c}{c}{c}{c}{c}{c}{c}");
            let mut ours = String::new();
            write_json_str(&mut ours, &s).unwrap();
            assert_eq!(ours, serde_json::to_string(&s).unwrap());
        }
    }
}
