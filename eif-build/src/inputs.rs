//! Checks on the image's inputs before anything is built: the kernel is a kernel of a Nitro
//! architecture, the enclave binary is a static executable of the same architecture.

use std::path::Path;

use crate::EifError;

/// The CPU architecture of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86-64 (Intel and AMD parents).
    X86_64,
    /// AArch64 (Graviton parents).
    Aarch64,
}

impl Arch {
    /// The name used in the measurements JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }
}

/// What the kernel file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// Its architecture.
    pub arch: Arch,
    /// The version string the kernel carries (x86 bzImage only), e.g. "6.1.0-56-cloud-amd64 …".
    pub version: Option<String>,
}

/// Recognises an x86 bzImage ("HdrS" boot header) or an arm64 `Image` ("ARM\x64" magic).
pub fn kernel(path: &Path, bytes: &[u8]) -> Result<Kernel, EifError> {
    if bytes.get(0x202..0x206) == Some(b"HdrS") {
        // The boot protocol's kernel_version field: an offset from 0x200 to a NUL-terminated
        // string, 0 when absent.
        let version = u16_le(bytes, 0x20e).filter(|&o| o != 0).and_then(|o| {
            let start = usize::from(o) + 0x200;
            let rest = bytes.get(start..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            std::str::from_utf8(&rest[..end]).ok().map(str::to_string)
        });
        return Ok(Kernel {
            arch: Arch::X86_64,
            version,
        });
    }
    if bytes.get(0x38..0x3c) == Some(b"ARM\x64") {
        return Ok(Kernel {
            arch: Arch::Aarch64,
            version: None,
        });
    }
    Err(EifError::NotAKernel {
        path: path.to_path_buf(),
    })
}

const PT_INTERP: u32 = 3;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// Checks that `bytes` are a 64-bit little-endian ELF executable for a Nitro architecture with
/// no program interpreter: the enclave's root file system has no dynamic loader and no libc.
pub fn static_executable(path: &Path, bytes: &[u8]) -> Result<Arch, EifError> {
    let not_elf = |reason: &'static str| EifError::NotAnExecutable {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err(not_elf("no ELF magic"));
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(not_elf("not a 64-bit little-endian ELF file"));
    }
    match u16_le(bytes, 16) {
        Some(2 | 3) => {} // ET_EXEC, or ET_DYN for a static PIE
        _ => return Err(not_elf("not an executable")),
    }
    let arch = match u16_le(bytes, 18) {
        Some(EM_X86_64) => Arch::X86_64,
        Some(EM_AARCH64) => Arch::Aarch64,
        _ => return Err(not_elf("not an x86-64 or AArch64 executable")),
    };
    let phoff = u64_le(bytes, 0x20).ok_or_else(|| not_elf("truncated header"))?;
    let phentsize = u16_le(bytes, 0x36).ok_or_else(|| not_elf("truncated header"))?;
    let phnum = u16_le(bytes, 0x38).ok_or_else(|| not_elf("truncated header"))?;
    if phentsize < 56 {
        return Err(not_elf("program headers too small"));
    }
    for i in 0..u64::from(phnum) {
        let at = phoff
            .checked_add(i * u64::from(phentsize))
            .and_then(|a| usize::try_from(a).ok())
            .filter(|&a| {
                a.checked_add(usize::from(phentsize))
                    .is_some_and(|end| end <= bytes.len())
            })
            .ok_or_else(|| not_elf("program header out of range"))?;
        let p_type = u32_le(bytes, at).ok_or_else(|| not_elf("program header out of range"))?;
        if p_type == PT_INTERP {
            let interp = u64_le(bytes, at + 8)
                .zip(u64_le(bytes, at + 32))
                .and_then(|(off, len)| {
                    let off = usize::try_from(off).ok()?;
                    let len = usize::try_from(len).ok()?;
                    bytes.get(off..off.checked_add(len)?)
                })
                .map(|s| {
                    String::from_utf8_lossy(s)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .unwrap_or_else(|| "?".into());
            return Err(EifError::NotStatic {
                path: path.to_path_buf(),
                interpreter: interp,
            });
        }
    }
    Ok(arch)
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_le(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16, interp: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 + 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let p_type: u32 = if interp.is_some() { PT_INTERP } else { 1 };
        b[64..68].copy_from_slice(&p_type.to_le_bytes());
        if let Some(i) = interp {
            b[64 + 8..64 + 16].copy_from_slice(&120u64.to_le_bytes());
            b[64 + 32..64 + 40].copy_from_slice(&(i.len() as u64 + 1).to_le_bytes());
            b[120..120 + i.len()].copy_from_slice(i.as_bytes());
        }
        b
    }

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        let p = Path::new("x");
        assert_eq!(
            static_executable(p, &elf(EM_X86_64, None)).unwrap(),
            Arch::X86_64
        );
        assert_eq!(
            static_executable(p, &elf(EM_AARCH64, None)).unwrap(),
            Arch::Aarch64
        );
        match static_executable(p, &elf(EM_X86_64, Some("/lib64/ld-linux-x86-64.so.2"))) {
            Err(EifError::NotStatic { interpreter, .. }) => {
                assert_eq!(interpreter, "/lib64/ld-linux-x86-64.so.2")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_executables_are_refused_without_panicking() {
        let p = Path::new("x");
        let good = elf(EM_X86_64, None);
        assert!(static_executable(p, b"").is_err());
        assert!(static_executable(p, b"#!/bin/sh\n").is_err());
        assert!(static_executable(p, &elf(40, None)).is_err()); // 32-bit ARM
        for cut in [5, 17, 0x21, 0x39, 70] {
            assert!(static_executable(p, &good[..cut]).is_err(), "cut at {cut}");
        }
        let mut far = good.clone();
        far[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(static_executable(p, &far).is_err());
    }

    #[test]
    fn kernels_are_recognised_and_other_files_refused() {
        let p = Path::new("k");
        let mut bz = vec![0u8; 0x400];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        bz[0x300..0x305].copy_from_slice(b"6.1.0");
        let k = kernel(p, &bz).unwrap();
        assert_eq!(k.arch, Arch::X86_64);
        assert_eq!(k.version.as_deref(), Some("6.1.0"));
        let mut arm = vec![0u8; 0x40];
        arm[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert_eq!(kernel(p, &arm).unwrap().arch, Arch::Aarch64);
        assert!(kernel(p, &elf(EM_X86_64, None)).is_err());
        assert!(kernel(p, b"").is_err());
    }
}
