//! libpod's `/info` in the Docker API's words, so one Podman gives the same facts through
//! either API.

use serde_json::{json, Value};

/// The Docker-API `/info` fields the policy reads, taken from libpod's `/info`, so that one
/// engine gives the same facts through either API.
pub fn info_from_libpod(libpod: &Value) -> Value {
    let host = &libpod["host"];
    let mut info = json!({"OSType": host["os"].as_str().unwrap_or("linux")});
    let pairs = [
        ("Name", &host["hostname"]),
        ("KernelVersion", &host["kernel"]),
        ("Architecture", &host["arch"]),
        ("ServerVersion", &libpod["version"]["Version"]),
        ("OperatingSystem", &host["distribution"]["distribution"]),
        ("Rootless", &host["security"]["rootless"]),
        ("BuildahVersion", &host["buildahVersion"]),
    ];
    for (k, v) in pairs {
        if !v.is_null() {
            info[k] = v.clone();
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpod_info_maps_to_the_fields_the_policy_reads() {
        let libpod = json!({"host": {"os": "linux", "hostname": "localhost.localdomain", "kernel": "6.8.0", "arch": "arm64",
            "security": {"rootless": true}, "distribution": {"distribution": "fedora"}, "buildahVersion": "1.39.0"},
            "version": {"Version": "5.4.0"}});
        let info = info_from_libpod(&libpod);
        assert_eq!(
            info,
            json!({"OSType": "linux", "Name": "localhost.localdomain", "KernelVersion": "6.8.0", "Architecture": "arm64",
            "ServerVersion": "5.4.0", "OperatingSystem": "fedora", "Rootless": true, "BuildahVersion": "1.39.0"})
        );
        assert_eq!(info_from_libpod(&json!({})), json!({"OSType": "linux"}));
    }
}
