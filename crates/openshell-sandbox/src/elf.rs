//! Just enough of an ELF file to tell whether it can run as the relay: its architecture,
//! whether it asks for a program interpreter, and whether the tables and segments its header
//! points at are all inside the file. A truncated copy (an interrupted download or build) used
//! to pass on its first bytes alone and was imported as an image whose relay could not start;
//! it is refused here, before anything is sent to an engine.
//!
//! Only the ELF header, the program header table and the section header table's bounds are
//! read; nothing is executed or mapped.

/// What the header says, once every table it points at was found inside the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElfFacts {
    /// The architecture named by `e_machine`, in the engines' normalised words (`x86_64`,
    /// `aarch64`), or `another architecture`.
    pub(crate) arch: &'static str,
    /// It has a `PT_INTERP` program header: it needs a dynamic loader.
    pub(crate) interpreter: bool,
}

/// Why a file is not an ELF executable we can read whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ElfError {
    /// Not an ELF file at all (no magic, unknown class or byte order).
    #[error("not an ELF executable")]
    NotElf,
    /// The header points past the end of the file, or at a table that cannot be one.
    #[error("a truncated or malformed ELF file ({0})")]
    Malformed(String),
}

const PT_LOAD: u64 = 1;
const PT_INTERP: u64 = 3;

/// Reads `bin`'s ELF header and checks that the program header table, the section header
/// table and every `PT_LOAD` segment lie within its `bin.len()` bytes.
pub(crate) fn inspect(bin: &[u8]) -> Result<ElfFacts, ElfError> {
    if bin.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf);
    }
    let wide = match bin.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(ElfError::NotElf),
    };
    let big = match bin.get(5) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(ElfError::NotElf),
    };
    let len = bin.len() as u64;
    let bad = |what: String| ElfError::Malformed(what);
    // An unsigned integer of `n` bytes at `at`, in the file's byte order.
    let int = |at: u64, n: usize| -> Result<u64, ElfError> {
        let start = usize::try_from(at).map_err(|_| bad(format!("offset {at} is out of range")))?;
        let b = start
            .checked_add(n)
            .and_then(|end| bin.get(start..end))
            .ok_or_else(|| {
                bad(format!(
                    "{n} bytes at offset {at} are past the end of its {len} bytes"
                ))
            })?;
        Ok((0..n).fold(0u64, |v, i| {
            let byte = if big { b[i] } else { b[n - 1 - i] };
            (v << 8) | u64::from(byte)
        }))
    };
    let header_len = if wide { 64 } else { 52 };
    if len < header_len {
        return Err(bad(format!(
            "{len} bytes, shorter than its {header_len}-byte header"
        )));
    }
    let machine = int(18, 2)?;
    // (e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum) by class; the smallest
    // entry sizes are the class's own structures.
    let (phoff, shoff, phentsize, phnum, shentsize, shnum) = if wide {
        (
            int(0x20, 8)?,
            int(0x28, 8)?,
            int(0x36, 2)?,
            int(0x38, 2)?,
            int(0x3a, 2)?,
            int(0x3c, 2)?,
        )
    } else {
        (
            int(0x1c, 4)?,
            int(0x20, 4)?,
            int(0x2a, 2)?,
            int(0x2c, 2)?,
            int(0x2e, 2)?,
            int(0x30, 2)?,
        )
    };
    let (min_ph, min_sh) = if wide { (56, 64) } else { (32, 40) };
    if phnum == 0 {
        return Err(bad("no program headers: nothing to load".into()));
    }
    if phentsize < min_ph {
        return Err(bad(format!(
            "program header entries of {phentsize} bytes, under {min_ph}"
        )));
    }
    within(
        "the program header table",
        phoff,
        phnum.saturating_mul(phentsize),
        len,
    )?;
    // A section header table is optional (e_shoff 0), but one that is named must be there.
    if shoff != 0 && shnum != 0 {
        if shentsize < min_sh {
            return Err(bad(format!(
                "section header entries of {shentsize} bytes, under {min_sh}"
            )));
        }
        within(
            "the section header table",
            shoff,
            shnum.saturating_mul(shentsize),
            len,
        )?;
    }
    let mut interpreter = false;
    let mut loads = 0u32;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = int(at, 4)?;
        if p_type == PT_INTERP {
            interpreter = true;
        }
        if p_type == PT_LOAD {
            loads += 1;
            let (offset, filesz) = if wide {
                (int(at + 8, 8)?, int(at + 32, 8)?)
            } else {
                (int(at + 4, 4)?, int(at + 16, 4)?)
            };
            within(&format!("loadable segment {i}"), offset, filesz, len)?;
        }
    }
    if loads == 0 {
        return Err(bad("no loadable segment".into()));
    }
    let arch = match machine {
        0x3e => "x86_64",
        0xb7 => "aarch64",
        _ => "another architecture",
    };
    Ok(ElfFacts { arch, interpreter })
}

/// `size` bytes at `offset` lie within a file of `len` bytes.
fn within(what: &str, offset: u64, size: u64, len: u64) -> Result<(), ElfError> {
    match offset.checked_add(size) {
        Some(end) if end <= len => Ok(()),
        _ => Err(ElfError::Malformed(format!(
            "{what} ({size} bytes at offset {offset}) ends past the end of its {len} bytes"
        ))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal little-endian ELF64 executable for x86_64: the header, one program header of
    /// type `p_type` whose segment is the whole file, and `tail` bytes after them.
    pub(crate) fn elf64(p_type: u32, tail: usize) -> Vec<u8> {
        let mut bin = vec![0u8; 64 + 56 + tail];
        bin[..4].copy_from_slice(b"\x7fELF");
        bin[4] = 2;
        bin[5] = 1;
        bin[18] = 0x3e;
        bin[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        bin[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        bin[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        bin[64..68].copy_from_slice(&p_type.to_le_bytes());
        let size = bin.len() as u64;
        bin[64 + 32..64 + 40].copy_from_slice(&size.to_le_bytes());
        bin[64 + 40..64 + 48].copy_from_slice(&size.to_le_bytes());
        bin
    }

    /// With a `PT_LOAD` beside a `PT_INTERP`, so that the interpreter is what decides.
    pub(crate) fn dynamic64() -> Vec<u8> {
        let mut bin = elf64(PT_LOAD as u32, 56);
        bin[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        bin[120..124].copy_from_slice(&(PT_INTERP as u32).to_le_bytes());
        bin
    }

    #[test]
    fn a_whole_file_is_read() {
        assert_eq!(
            inspect(&elf64(PT_LOAD as u32, 100)),
            Ok(ElfFacts {
                arch: "x86_64",
                interpreter: false
            })
        );
        assert!(inspect(&dynamic64()).is_ok_and(|f| f.interpreter));
        let mut arm = elf64(PT_LOAD as u32, 0);
        arm[18] = 0xb7;
        assert_eq!(inspect(&arm).map(|f| f.arch), Ok("aarch64"));
        // This test's own executable, a real ELF file, reads whole.
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(&exe).unwrap_or_else(|e| panic!("{e}"));
        assert!(inspect(&bytes).is_ok_and(|f| f.interpreter), "{exe:?}");
    }

    /// A truncated copy is refused, wherever it was cut: in the header, in the program header
    /// table, in a loadable segment, before the section header table.
    #[test]
    fn a_truncated_elf_is_refused() {
        assert_eq!(inspect(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        let whole = elf64(PT_LOAD as u32, 1000);
        for cut in [6, 20, 63, 64, 100, 119, 120, 500, whole.len() - 1] {
            let r = inspect(&whole[..cut]);
            assert!(
                matches!(r, Err(ElfError::Malformed(_))),
                "cut at {cut}: {r:?}"
            );
        }
        // A real executable cut short: its segments end past the cut.
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(&exe).unwrap_or_else(|e| panic!("{e}"));
        let r = inspect(&bytes[..bytes.len() / 2]);
        assert!(matches!(r, Err(ElfError::Malformed(_))), "{r:?}");
        // A section header table named past the end.
        let mut sh = elf64(PT_LOAD as u32, 0);
        sh[0x28..0x30].copy_from_slice(&4096u64.to_le_bytes());
        sh[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        sh[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        let r = inspect(&sh);
        assert!(
            matches!(&r, Err(ElfError::Malformed(m)) if m.contains("section header table")),
            "{r:?}"
        );
        // Tables that overflow the offset arithmetic.
        let mut huge = elf64(PT_LOAD as u32, 0);
        huge[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(inspect(&huge), Err(ElfError::Malformed(_))));
        // A file with nothing to load.
        assert!(matches!(
            inspect(&elf64(6, 0)),
            Err(ElfError::Malformed(m)) if m.contains("no loadable segment")
        ));
    }
}
