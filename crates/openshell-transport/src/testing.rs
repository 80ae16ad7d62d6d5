//! Helpers for tests of this crate and of the crates above it (feature `testing`), never in a
//! build of the library itself.

use std::path::Path;

/// Writes an executable script through `install`: the file is never open for writing in this
/// process, where a child another test forks meanwhile would inherit the descriptor and make
/// exec'ing the script fail with "Text file busy" (ETXTBSY) until it execs.
///
/// # Panics
///
/// When the script cannot be written or installed: a test cannot go on without it.
pub fn write_script(path: &Path, text: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, text).unwrap_or_else(|e| panic!("{e}"));
    let installed = std::process::Command::new("install")
        .args(["-m", "0755"])
        .arg(&staged)
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("install: {e}"));
    assert!(
        installed.success(),
        "install {}: {installed}",
        path.display()
    );
}
