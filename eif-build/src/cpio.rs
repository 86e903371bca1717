//! A deterministic cpio archive in the "newc" format, the format Linux unpacks as an initramfs.
//!
//! Every field that could vary between two builds of the same inputs is fixed: entries appear in
//! the order they are added, inode numbers count up from 1, owners are root, and every entry
//! carries the same modification time (`SOURCE_DATE_EPOCH`).

/// Builds an archive in memory.
#[derive(Debug)]
pub struct Archive {
    bytes: Vec<u8>,
    next_ino: u32,
    mtime: u32,
}

/// A directory, mode 0755.
const DIR: u32 = 0o040_755;
/// A regular file; the permission bits are the caller's.
const FILE: u32 = 0o100_000;

impl Archive {
    /// An empty archive whose entries all carry `mtime` (seconds since the epoch; later times
    /// than cpio's 32-bit field holds are clamped).
    pub fn new(mtime: u64) -> Self {
        Self {
            bytes: Vec::new(),
            next_ino: 1,
            mtime: u32::try_from(mtime).unwrap_or(u32::MAX),
        }
    }

    /// Adds a directory.
    pub fn dir(&mut self, name: &str) {
        let ino = self.ino();
        self.entry(ino, DIR, 2, name, &[]);
    }

    /// Adds a regular file with permission bits `perm` (e.g. 0o755).
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        let ino = self.ino();
        self.entry(ino, FILE | (perm & 0o7777), 1, name, data);
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry(0, 0, 1, "TRAILER!!!", &[]);
        self.bytes
    }

    fn ino(&mut self) -> u32 {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    fn entry(&mut self, ino: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) {
        // Sizes beyond 4 GiB do not fit newc's fields; nothing in an enclave image comes close,
        // and the callers read their inputs into memory first.
        let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
        let fields = [
            ino, mode, 0, 0, nlink, self.mtime, size, 0, 0, 0, 0, namesize, 0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back (name, mode, mtime, data) of every entry, checking the layout on the way.
    fn entries(bytes: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(&bytes[at..at + 6], b"070701");
            let field = |i: usize| {
                let s = std::str::from_utf8(&bytes[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (mode, mtime, size, namesize) = (field(1), field(5), field(6), field(11));
            let name_at = at + 110;
            let name = std::str::from_utf8(&bytes[name_at..name_at + namesize as usize - 1])
                .unwrap()
                .to_string();
            let data_at = (name_at + namesize as usize).next_multiple_of(4);
            let data = bytes[data_at..data_at + size as usize].to_vec();
            at = (data_at + size as usize).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(at, bytes.len());
                return out;
            }
            out.push((name, mode, mtime, data));
        }
    }

    #[test]
    fn entries_read_back_in_order_with_fixed_times() {
        let mut a = Archive::new(1_700_000_000);
        a.dir("rootfs");
        a.file("rootfs/x", 0o755, b"hello");
        a.file("cmd", 0o644, b"");
        let bytes = a.finish();
        assert_eq!(bytes.len() % 4, 0);
        let got = entries(&bytes);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], ("rootfs".into(), 0o040_755, 1_700_000_000, vec![]));
        assert_eq!(
            got[1],
            (
                "rootfs/x".into(),
                0o100_755,
                1_700_000_000,
                b"hello".to_vec()
            )
        );
        assert_eq!(got[2].0, "cmd");
        assert_eq!(got[2].1, 0o100_644);
    }

    #[test]
    fn same_entries_give_same_bytes_and_a_time_changes_them() {
        let build = |t| {
            let mut a = Archive::new(t);
            a.file("init", 0o755, b"\x7fELF");
            a.finish()
        };
        assert_eq!(build(5), build(5));
        assert_ne!(build(5), build(6));
    }
}
