//! Compiles the relay (`crates/openshell-relay`, `std` only) with `rustc` alone, statically
//! linked, for every Linux architecture this toolchain can build, and embeds the binaries, so
//! that whoever builds this crate (the CLI, a gateway) has a relay and a probe for its engines
//! without a separate build step, a download or a registry. See docs/relay.md.
//!
//! An architecture this toolchain cannot build for (no standard library installed for its
//! target, no linker, no static C library) is left out; the library then says at run time
//! which architecture is missing and how to add it. The build itself never fails for it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The architectures engines run, with their Rust target and the C linker a cross build needs.
const ARCHES: &[(&str, &str, &str)] = &[
    ("x86_64", "x86_64-unknown-linux-gnu", "x86_64-linux-gnu-gcc"),
    (
        "aarch64",
        "aarch64-unknown-linux-gnu",
        "aarch64-linux-gnu-gcc",
    ),
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let source = manifest.join("../openshell-relay/src");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-env-changed=OPENSHELL_RELAY_EMBED");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let host = std::env::var("HOST").unwrap_or_default();
    // `OPENSHELL_RELAY_EMBED=none` builds without any (for a packager who ships the relay apart).
    let wanted = std::env::var("OPENSHELL_RELAY_EMBED").unwrap_or_default();
    // Each architecture's compiler: this build's rustc when it has the target's standard
    // library, else Debian's (`rustc` and `libstd-rust-dev:<arch>`), which can cross-compile
    // where rustup cannot add a target (no network). Both run at once.
    let mut builds = Vec::new();
    for &(arch, target, cross_linker) in ARCHES {
        if wanted == "none" {
            break;
        }
        let native = host == target;
        let compiler = if native || installed(&rustc, target) {
            rustc.clone()
        } else if installed(DEBIAN_RUSTC.as_ref(), target) {
            DEBIAN_RUSTC.into()
        } else {
            continue;
        };
        if !native && !on_path(cross_linker) {
            continue;
        }
        let binary = out.join(format!("openshell-relay-{arch}"));
        match spawn(
            &compiler,
            &source.join("main.rs"),
            target,
            &binary,
            !native,
            cross_linker,
        ) {
            Ok(child) => builds.push((arch, native, binary, child)),
            Err(why) => report(arch, native, &why),
        }
    }
    let mut embedded = Vec::new();
    for (arch, native, binary, child) in builds {
        match finish(child) {
            Ok(()) => embedded.push((arch, binary)),
            Err(why) => report(arch, native, &why),
        }
    }
    let mut table = String::from(
        "/// The relay binaries embedded at build time, by architecture.\npub(crate) static EMBEDDED: &[(&str, &[u8])] = &[\n",
    );
    for (arch, binary) in &embedded {
        table.push_str(&format!(
            "    ({arch:?}, include_bytes!({:?})),\n",
            binary.display().to_string()
        ));
    }
    table.push_str("];\n");
    if let Err(e) = std::fs::write(out.join("embedded_relays.rs"), table) {
        println!("cargo:warning=cannot write the embedded relay table: {e}");
    }
}

/// Debian's own compiler, which `libstd-rust-dev:<arch>` gives other targets.
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

/// Says why an architecture's relay was not embedded: a warning for the native one (every
/// build should have it), nothing for an optional cross build.
fn report(arch: &str, native: bool, why: &str) {
    if native {
        println!("cargo:warning=the relay for {arch} was not embedded ({why}); set OPENSHELL_RELAY_BINARY to a static relay, see docs/relay.md");
    }
}

/// Whether the toolchain has the standard library for `target`.
fn installed(rustc: &std::ffi::OsStr, target: &str) -> bool {
    Command::new(rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .is_some_and(|mut entries| {
            entries.any(|e| {
                e.ok()
                    .and_then(|e| e.file_name().into_string().ok())
                    .is_some_and(|n| n.starts_with("libstd-"))
            })
        })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false)
}

fn spawn(
    rustc: &std::ffi::OsStr,
    main: &Path,
    target: &str,
    binary: &Path,
    cross: bool,
    linker: &str,
) -> Result<std::process::Child, String> {
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition=2021",
        "--crate-type=bin",
        "--crate-name=openshell_relay",
        "-Copt-level=s",
        "-Cpanic=abort",
        "-Cstrip=symbols",
        "-Ccodegen-units=1",
        "-Ctarget-feature=+crt-static",
        "--cap-lints=allow",
        "--target",
        target,
    ]);
    if cross {
        cmd.arg(format!("-Clinker={linker}"));
    }
    cmd.arg("-o").arg(binary).arg(main);
    // The outer build's flags (coverage, sanitizers, a cross linker for the host) are not the
    // relay's: it is always the same small static program.
    cmd.env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd.spawn()
        .map_err(|e| format!("cannot run {}: {e}", rustc.to_string_lossy()))
}

fn finish(child: std::process::Child) -> Result<(), String> {
    let out = child
        .wait_with_output()
        .map_err(|e| format!("rustc did not finish: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("rustc failed")
            .to_string())
    }
}
