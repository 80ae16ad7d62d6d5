//! The process environment: what is read, and what is not.

use crate::common::*;

/// A non-UTF-8 value in a variable we never read is ignored; in one we read it is invalid input
/// (exit 2) that names the variable. It used to panic (exit 101) in live mode and be ignored
/// silently in `settle`.
#[cfg(unix)]
#[test]
fn non_utf8_environment_is_ignored_unless_read() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let bad = OsStr::from_bytes(b"tcp://\xff:2375");
    let no_engine = [
        "detect",
        "--no-config",
        "--endpoint",
        "unix:///nonexistent/openshell.sock",
    ];
    let facts = fixture("native-docker/debian12-docker.io-20.10.24-this-machine.json");
    let with_config = ["detect", "-o", "json", "--facts", facts.as_str()];
    let with_env = |args: &[&str], var: &str| {
        bin()
            .args(args)
            .env(var, bad)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    for (args, var, code) in [
        (&no_engine[..], "SOME_UNRELATED_VARIABLE", 3),
        (&no_engine[..], "DOCKER_HOST", 2),
        (&no_engine[..], "XDG_RUNTIME_DIR", 2),
        (&with_config[..], "OPENSHELL_BIND_ADDRESS", 2),
        (&with_config[..], "SOME_UNRELATED_VARIABLE", 0),
    ] {
        let out = with_env(args, var);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{var} {args:?}: {err}");
        if code == 2 {
            assert!(err.contains(var) && err.contains("UTF-8"), "{var}: {err}");
        }
    }
}
