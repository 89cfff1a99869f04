//! Formatting into a caller-supplied byte buffer: no allocation, so trace
//! lines and the census can be written from any context.

/// A byte buffer being filled; text past its end is dropped and noted.
pub struct Buf<'a> {
    data: &'a mut [u8],
    len: usize,
    /// True when something did not fit.
    pub overflow: bool,
}

impl<'a> Buf<'a> {
    /// An empty buffer over `data`.
    pub fn new(data: &'a mut [u8]) -> Buf<'a> {
        Buf {
            data,
            len: 0,
            overflow: false,
        }
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// Appends raw bytes.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        let room = self.data.len() - self.len;
        let n = bytes.len().min(room);
        self.data[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        if n < bytes.len() {
            self.overflow = true;
        }
        self
    }

    /// Appends a string.
    pub fn s(&mut self, text: &str) -> &mut Self {
        self.raw(text.as_bytes())
    }

    /// Appends an unsigned decimal number.
    pub fn u(&mut self, mut value: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.raw(&digits[i..])
    }

    /// Appends a signed decimal number.
    pub fn i(&mut self, value: i64) -> &mut Self {
        if value < 0 {
            self.raw(b"-");
        }
        self.u(value.unsigned_abs())
    }

    /// Appends `0x` and a hexadecimal number.
    pub fn hex(&mut self, mut value: u64) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[(value & 0xf) as usize];
            value >>= 4;
            if value == 0 {
                break;
            }
        }
        self.raw(b"0x").raw(&digits[i..])
    }

    /// Appends `bytes` as a JSON string (with the quotes).
    pub fn json_str(&mut self, bytes: &[u8]) -> &mut Self {
        self.raw(b"\"");
        for &b in bytes {
            match b {
                b'"' => self.raw(b"\\\""),
                b'\\' => self.raw(b"\\\\"),
                b'\n' => self.raw(b"\\n"),
                b'\t' => self.raw(b"\\t"),
                0..=0x1f | 0x7f..=0xff => {
                    // Control characters and non-ASCII bytes (paths need
                    // not be UTF-8) are escaped byte by byte.
                    let hex = b"0123456789abcdef";
                    self.raw(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        hex[(b >> 4) as usize],
                        hex[(b & 0xf) as usize],
                    ])
                }
                _ => self.raw(&[b]),
            };
        }
        self.raw(b"\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_strings_and_overflow() {
        let mut data = [0u8; 64];
        let mut b = Buf::new(&mut data);
        b.u(0)
            .s(" ")
            .u(18_446_744_073_709_551_615)
            .s(" ")
            .i(-42)
            .s(" ");
        b.hex(0xae80).s(" ").json_str(b"a\"b\\c\n\x01\xff");
        assert_eq!(
            core::str::from_utf8(b.bytes()).unwrap(),
            "0 18446744073709551615 -42 0xae80 \"a\\\"b\\\\c\\n\\u0001\\u00ff\""
        );
        assert!(!b.overflow);
        let mut small = [0u8; 4];
        let mut b = Buf::new(&mut small);
        b.s("hello");
        assert_eq!(b.bytes(), b"hell");
        assert!(b.overflow);
    }
}
