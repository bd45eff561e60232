//! A fixed-capacity text buffer for probe failure reasons (the probe has no heap).

use core::fmt;

/// Capacity of a [`Msg`] in bytes; longer text is cut and ends with "...".
pub const MSG_CAPACITY: usize = 200;

/// A short formatted message.
#[derive(Clone, Copy)]
pub struct Msg {
    buf: [u8; MSG_CAPACITY],
    len: usize,
    truncated: bool,
}

impl Msg {
    /// An empty message.
    pub const fn new() -> Self {
        Msg {
            buf: [0; MSG_CAPACITY],
            len: 0,
            truncated: false,
        }
    }

    /// Format `args` into a new message.
    pub fn from_args(args: fmt::Arguments<'_>) -> Self {
        let mut m = Msg::new();
        // Writing into a Msg never fails: overflow is recorded as truncation.
        let _ = fmt::Write::write_fmt(&mut m, args);
        m
    }

    /// The text (valid UTF-8: cuts happen on character boundaries).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl Default for Msg {
    fn default() -> Self {
        Msg::new()
    }
}

impl fmt::Write for Msg {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut tmp = [0u8; 4];
            let bytes = c.encode_utf8(&mut tmp).as_bytes();
            if self.len + bytes.len() > MSG_CAPACITY - 3 {
                if !self.truncated {
                    self.truncated = true;
                    self.buf[self.len..self.len + 3].copy_from_slice(b"...");
                    self.len += 3;
                }
                return Ok(());
            }
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// `msg!("...", args)`: format into a [`Msg`].
#[macro_export]
macro_rules! msg {
    ($($arg:tt)*) => { $crate::msg::Msg::from_args(format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn formats_and_truncates() {
        let m = crate::msg!("esr={:#x}", 0x9600_0045u32);
        assert_eq!(m.as_str(), "esr=0x96000045");
        let long = crate::msg!("{}", "é".repeat(300));
        assert!(long.as_str().ends_with("..."));
        assert!(long.as_str().len() <= MSG_CAPACITY);
    }
}
