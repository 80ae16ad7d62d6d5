//! Every capture the Docker driver can reach, served by the replay engine: the driver, through
//! bollard over a Unix socket, must reach the decision the facts-file path reaches. This is
//! where the original bug (Podman machine behind the Docker API) is pinned for good.

use openshell_engine::{connect_to, DriverKind};
use openshell_runtime::facts::Endpoint;
use openshell_runtime::{Facts, HostOs, Registry, RouteContext};
use openshell_sandbox::DriverOptions;
use openshell_sandbox::HostFacts;
use openshell_tests::decide_direct as decide;
use openshell_tests::fixtures;
use openshell_tests::replay::ReplayEngine;

/// The replay engine serving `doc`, and the Docker driver connected to it with `opts`.
async fn docker_over(
    doc: &serde_json::Value,
    opts: DriverOptions,
) -> (ReplayEngine, openshell_sandbox::SandboxDriver) {
    let engine = ReplayEngine::start(doc)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let endpoint = Endpoint::Unix {
        path: engine.socket().display().to_string(),
    };
    let driver = connect_to(DriverKind::Docker, endpoint, opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (engine, driver)
}

fn summary(facts: &Facts) -> String {
    let d = decide(&Registry::builtin(), facts, &RouteContext::default());
    let host = d
        .route
        .as_ref()
        .map(|r| r.openshell_host.to_string())
        .unwrap_or_else(|_| "(refused)".into());
    let bind = d
        .route
        .as_ref()
        .ok()
        .and_then(|r| r.bind)
        .map_or("-".to_string(), |b| b.to_string());
    format!("{} {host} {bind}", d.runtime_id().unwrap_or("-"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_over_replayed_captures_decides_like_the_facts_file() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for mut f in fixtures() {
        // The driver creates the sandbox network when the engine has none; give the facts
        // file the same network, so both paths decide on the same facts.
        if f.doc.get("network").is_none() {
            f.doc["network"] = openshell_tests::replay::created_network();
        }
        let Ok(file_facts) = Facts::from_value(&f.doc) else {
            continue;
        };
        // Remote and named-pipe endpoints cannot be replayed on a Unix socket, nor can a
        // Windows path behind unix:// (early Hyper-V Podman machines), whose path is evidence.
        if matches!(
            &file_facts.endpoint,
            Some(Endpoint::Tcp { .. } | Endpoint::Ssh { .. } | Endpoint::Npipe { .. })
        ) || matches!(&file_facts.endpoint, Some(Endpoint::Unix { path }) if !path.starts_with('/'))
        {
            continue;
        }
        let engine = ReplayEngine::start(&f.doc)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let host = HostFacts {
            os: file_facts
                .host_os
                .clone()
                .unwrap_or(HostOs::Other("unknown".into())),
            ipv4: file_facts.host_ipv4,
        };
        let opts = DriverOptions {
            host: Some(host),
            ..DriverOptions::default()
        };
        let endpoint = Endpoint::Unix {
            path: engine.socket().display().to_string(),
        };
        let driver = match connect_to(DriverKind::Docker, endpoint, opts).await {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{}: connect: {e}", f.name));
                continue;
            }
        };
        let live = match driver.gather_facts().await {
            Ok(g) => g.facts,
            Err(e) => {
                failures.push(format!("{}: gather: {e}", f.name));
                continue;
            }
        };
        let (want, got) = (summary(&file_facts), summary(&live));
        if want != got {
            failures.push(format!(
                "{}: facts file says {want:?}, driver says {got:?}",
                f.name
            ));
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} captures replayed");
    assert!(
        failures.is_empty(),
        "{} of {checked} replays differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The original report: Podman (libkrun) on macOS behind the Docker API, identified by its ping
/// headers alone, must not be taken for native Docker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_bug_podman_machine_through_the_docker_driver() {
    let doc = serde_json::json!({
        "host_os": "macos",
        "ping": {"Api-Version": "1.41", "Libpod-Api-Version": "5.8.2", "Server": "Libpod/5.8.2 (linux)"},
        "info": {"Name": "localhost.localdomain", "OperatingSystem": "fedora", "OSType": "linux", "ServerVersion": "5.8.2"},
        "network": {"Name": "openshell", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1"}]}}
    });
    let opts = DriverOptions {
        host: Some(HostFacts {
            os: HostOs::Macos,
            ipv4: None,
        }),
        ..DriverOptions::default()
    };
    let (_engine, driver) = docker_over(&doc, opts).await;
    let g = driver
        .gather_facts()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary(&g.facts), "podman-machine host-gateway 127.0.0.1");
}

/// Discovery's `/_ping` serves the driver: a connect through discovery asks it once. dockerd,
/// named by its `Server` header, is not asked libpod's `/info`; an engine whose `/_ping` names
/// nothing (as replayed captures of Podman) is, and Podman through its compatible API is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ping_per_connect_and_libpod_info_unless_dockerd_says_so() {
    let network = openshell_tests::replay::created_network();
    let info = serde_json::json!({"Name": "n", "OSType": "linux", "ServerVersion": "20.10.24"});
    let dockerd = serde_json::json!({"host_os": "linux", "info": info, "network": network,
        "ping": {"Api-Version": "1.41", "Server": "Docker/20.10.24+dfsg1 (linux)"}});
    let unnamed = serde_json::json!({"host_os": "linux", "info": info, "network": network,
        "ping": {"Api-Version": "1.41"}});
    let podman = serde_json::json!({"host_os": "linux", "info": info, "network": network,
        "ping": {"Api-Version": "1.41", "Libpod-Api-Version": "4.3.1", "Server": "Libpod/4.3.1 (linux)"}});
    for (doc, libpod_asked) in [(dockerd, false), (unnamed, true), (podman, true)] {
        let engine = ReplayEngine::start(&doc)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let opts = openshell_engine::ConnectOptions {
            driver: Some(DriverKind::Docker),
            endpoint: Some(format!("unix://{}", engine.socket().display())),
            driver_options: DriverOptions {
                host: Some(HostFacts {
                    os: HostOs::Linux,
                    ipv4: None,
                }),
                ..DriverOptions::default()
            },
            ..openshell_engine::ConnectOptions::default()
        };
        let connected = openshell_engine::connect(&opts)
            .await
            .unwrap_or_else(|e| panic!("{doc}: {e}"));
        let ping = &connected.gathered.document["ping"];
        assert_eq!(ping["api-version"], "1.41", "{ping}");
        assert_eq!(ping.get("server"), doc["ping"].get("Server"), "{ping}");
        let requests = engine.requests();
        let count = |path: &str| requests.iter().filter(|(_, p)| p == path).count();
        assert_eq!(count("/_ping"), 1, "{requests:?}");
        assert_eq!(count("/libpod/info") == 1, libpod_asked, "{requests:?}");
    }
}

/// A same-named network with another driver is refused, not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_named_network_of_another_driver_is_refused() {
    let doc = serde_json::json!({
        "host_os": "linux",
        "ping": {"Api-Version": "1.41", "Server": "Docker/27.3.1 (linux)"},
        "info": {"Name": "box", "ServerVersion": "27.3.1"},
        "network": {"Name": "openshell", "Driver": "macvlan", "IPAM": {"Config": [{"Gateway": "10.1.0.1"}]}}
    });
    let (_engine, driver) = docker_over(&doc, DriverOptions::default()).await;
    let err = driver
        .gather_facts()
        .await
        .err()
        .unwrap_or_else(|| panic!("macvlan network accepted"));
    assert!(
        matches!(err, openshell_sandbox::EngineError::NetworkConflict { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("macvlan"), "{err}");
}

/// An engine socket that accepts but never answers: a clear timeout naming the call, bounded
/// by the driver's timeout, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_engine_times_out_with_a_clear_error() {
    let dir = std::env::temp_dir().join(openshell_tests::live::unique("openshell-silent"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.join("docker.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap_or_else(|e| panic!("{e}"));
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let opts = DriverOptions {
        timeout: std::time::Duration::from_millis(500),
        ..DriverOptions::default()
    };
    let started = std::time::Instant::now();
    let endpoint = Endpoint::Unix {
        path: socket.display().to_string(),
    };
    let err = connect_to(DriverKind::Docker, endpoint, opts)
        .await
        .err()
        .unwrap_or_else(|| panic!("a silent engine was accepted"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("did not answer within"), "{err}");
    hold.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Podman's compatible API reports proxy settings unmasked (Docker masks them): the document
/// the driver gathers, which `--dump-facts` writes, carries no credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gathered_documents_carry_no_credentials() {
    let doc = serde_json::json!({
        "host_os": "linux",
        "ping": {"Api-Version": "1.41", "Libpod-Api-Version": "4.3.1", "Server": "Libpod/4.3.1 (linux)"},
        "info": {
            "Name": "box", "ServerVersion": "4.3.1", "OperatingSystem": "debian",
            "HttpProxy": "http://user:s3cret@proxy.corp:3128",
            "HttpsProxy": "user:s3cret@proxy.corp:3128",
            "NoProxy": "localhost",
            "RegistryConfig": {"Mirrors": ["https://user:s3cret@mirror.corp/"]}
        },
        "libpod_info": {"host": {"hostname": "box", "os": "linux"}, "registries": {"mirror": "https://s3cret@m/"}},
        "network": {"Name": "openshell", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1"}]}}
    });
    let (_engine, driver) = docker_over(&doc, DriverOptions::default()).await;
    let g = driver
        .gather_facts()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = g.document.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    assert_eq!(
        g.document["info"]["HttpProxy"],
        "http://xxxxx@proxy.corp:3128"
    );
    assert_eq!(g.document["info"]["HttpsProxy"], "xxxxx@proxy.corp:3128");
    assert_eq!(g.document["libpod_info"]["host"]["hostname"], "box");
}

/// The sandbox network is created without DNS through the Docker driver too (issue 21): on an
/// engine whose `/_ping` names libpod, with libpod's create and `dns_enabled: false`, since
/// Podman's compatible create turns DNS on for every bridge (rootless Podman 5 without a user
/// session then started no container on it); on Docker, with Docker's create (no switch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_driver_creates_networks_without_dns_on_podman() {
    let podman = serde_json::json!({
        "host_os": "linux",
        "endpoint": "unix:///run/user/1000/podman/podman.sock",
        "ping": {"Api-Version": "1.41", "Libpod-Api-Version": "5.4.2", "Server": "Libpod/5.4.2 (linux)"},
        "info": {"Name": "box", "ServerVersion": "5.4.2"}
    });
    let docker = serde_json::json!({
        "host_os": "linux",
        "ping": {"Api-Version": "1.45"},
        "info": {"Name": "box", "ServerVersion": "26.1.5"}
    });
    for (doc, path) in [
        (podman, "/libpod/networks/create"),
        (docker, "/networks/create"),
    ] {
        let (engine, driver) = docker_over(&doc, DriverOptions::default()).await;
        // Facts gathering owns the sandbox network: it creates it when missing.
        let _ = driver.gather_facts().await;
        // A scratch network first, whose subnet the engine picked (removed at once), then the
        // sandbox network on that subnet (issue 22: dockerd grants fixed addresses only there).
        let creates = engine.network_creates();
        assert_eq!(creates.len(), 2, "{creates:?}");
        let name = |body: &serde_json::Value| {
            body.get("name")
                .or_else(|| body.get("Name"))
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            name(&creates[0].1).starts_with("openshell-subnet-"),
            "{creates:?}"
        );
        assert_eq!(name(&creates[1].1), "openshell", "{creates:?}");
        for (made, body) in &creates {
            assert_eq!(made, path, "{body}");
            if path.starts_with("/libpod/") {
                assert_eq!(body["dns_enabled"], false, "{body}");
                assert_eq!(body["driver"], "bridge", "{body}");
                assert_eq!(body["labels"]["io.openshell.managed"], "true", "{body}");
            }
        }
    }
}
