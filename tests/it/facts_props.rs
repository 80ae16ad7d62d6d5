//! Property tests over the facts parser and the policy: no input makes them panic, and no
//! address becomes a route it cannot serve.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use openshell_runtime::addr::{self, AddressRole};
use openshell_runtime::{decide, Exposure, Facts, HostTarget, Registry, RouteContext};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON value, a few levels deep, with strings that include controls and odd Unicode.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "host-gateway",
            "192.168.65.254",
            "fd00::1",
            "10.89.0.1/24",
            "Libpod/5.8.2 (linux)",
            "Docker Desktop",
            "lima-x",
            "name=rootless",
            ""
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,12}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keys the parser looks at, so that generated documents hit the interesting paths.
fn known_keys() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "host_os",
        "endpoint",
        "host_ipv4",
        "ping",
        "version",
        "info",
        "network",
        "libpod_info",
        "Name",
        "OperatingSystem",
        "KernelVersion",
        "ServerVersion",
        "Labels",
        "SecurityOptions",
        "Rootless",
        "Components",
        "Platform",
        "IPAM",
        "Config",
        "Gateway",
        "subnets",
        "gateway",
        "host",
        "security",
        "rootless",
        "rootlessNetworkCmd",
        "Libpod-Api-Version",
        "Server",
    ])
    .prop_map(str::to_string)
}

/// JSON objects shaped like facts documents, with random types under known keys.
fn facts_like() -> impl Strategy<Value = Value> {
    let node = any_json().prop_recursive(2, 64, 8, |inner| {
        prop::collection::vec((known_keys(), inner), 0..8)
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
    });
    (
        prop::collection::vec((known_keys(), node), 0..8),
        any_json(),
    )
        .prop_map(|(kv, info)| {
            let mut m: Map<String, Value> = kv.into_iter().collect();
            m.entry("info").or_insert(info);
            Value::Object(m)
        })
}

/// Any address, with the special ranges (and their IPv4-mapped forms) well represented.
fn any_ip() -> impl Strategy<Value = IpAddr> {
    let special_v4 = prop_oneof![
        Just(Ipv4Addr::UNSPECIFIED),
        Just(Ipv4Addr::BROADCAST),
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(0, b, c, d)),
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(127, b, c, d)),
        (224u8..=255, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d)),
        any::<[u8; 2]>().prop_map(|[c, d]| Ipv4Addr::new(169, 254, c, d)),
        any::<u32>().prop_map(Ipv4Addr::from),
    ];
    let v4 = prop_oneof![
        special_v4.clone().prop_map(IpAddr::V4),
        special_v4.prop_map(|v| IpAddr::V6(v.to_ipv6_mapped())),
    ];
    let v6 = prop_oneof![
        Just(Ipv6Addr::UNSPECIFIED),
        Just(Ipv6Addr::LOCALHOST),
        any::<u32>().prop_map(|v| Ipv6Addr::from(u128::from(v))),
        any::<u128>().prop_map(|v| Ipv6Addr::from((0xff00u128 << 112) | (v >> 8))),
        any::<u64>().prop_map(|v| Ipv6Addr::from((0xfe80u128 << 112) | u128::from(v))),
        any::<u128>().prop_map(Ipv6Addr::from),
    ]
    .prop_map(IpAddr::V6);
    prop_oneof![v4, v6]
}

const ROLES: [AddressRole; 5] = [
    AddressRole::ContainerTarget,
    AddressRole::Bind,
    AddressRole::OperatorBind,
    AddressRole::BridgeGateway,
    AddressRole::HostPrimary,
];

/// Whether `ip` (canonical) is an address no route can use as a destination or a bind.
fn never_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast() || v4.octets()[0] >= 240,
        IpAddr::V6(v6) => v6.is_multicast() || v6.to_ipv4_mapped().is_some(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// What `check` accepts is canonical and fit: never multicast, broadcast or reserved, and
    /// unspecified only as the operator's own bind. The mapped form gets the same answer as
    /// the address it stands for.
    #[test]
    fn checked_addresses_are_canonical_and_fit(ip in any_ip()) {
        for role in ROLES {
            let got = addr::check(ip, role);
            prop_assert_eq!(
                got.is_ok(),
                addr::check(addr::canonical(ip), role).is_ok(),
                "{} as {:?}", ip, role
            );
            if let Ok(c) = got {
                prop_assert_eq!(c, addr::canonical(ip));
                prop_assert!(!never_routable(c), "{} as {:?} gave {}", ip, role, c);
                prop_assert!(
                    !c.is_unspecified() || role == AddressRole::OperatorBind,
                    "{} as {:?}", ip, role
                );
                if role == AddressRole::ContainerTarget || role == AddressRole::BridgeGateway {
                    prop_assert!(!c.is_loopback(), "{} as {:?}", ip, role);
                }
            }
        }
    }

    /// Architecture invariant: no input yields a bind wider than the route needs without an
    /// explicit operator wildcard, and no route sends sandboxes to an address that cannot lead
    /// to this host; whatever the engine reports and the operator sets.
    #[test]
    fn no_input_yields_a_wildcard_or_impossible_route(
        gateway in any_ip(),
        host in any_ip(),
        target in proptest::option::of(any_ip()),
        bind in proptest::option::of(any_ip()),
        rootless in any::<bool>(),
    ) {
        let mut doc = json!({
            "host_os": "linux",
            "endpoint": "unix:///var/run/docker.sock",
            "host_ipv4": host.to_string(),
            "ping": {"Server": "Docker/27.3.1 (linux)"},
            "info": {"ServerVersion": "27.3.1", "SecurityOptions": if rootless { json!(["name=rootless"]) } else { json!([]) }},
            "network": {"Driver": "bridge", "IPAM": {"Config": [{"Gateway": gateway.to_string()}]}},
            "overrides": {}
        });
        if let Some(t) = target {
            doc["overrides"]["host_gateway_ip"] = json!(t.to_string());
        }
        if let Some(b) = bind {
            doc["overrides"]["bind"] = json!(b.to_string());
        }
        let Ok(facts) = Facts::from_value(&doc) else {
            return Ok(());
        };
        let Ok(route) = decide(&Registry::builtin(), &facts, &RouteContext::default()).route else {
            return Ok(());
        };
        let operator_wildcard = bind.is_some_and(|b| addr::canonical(b).is_unspecified());
        if let Some(b) = route.bind {
            prop_assert!(!never_routable(b), "bind {}", b);
            prop_assert_eq!(b.is_unspecified(), operator_wildcard, "bind {}", b);
            prop_assert_eq!(route.exposure == Exposure::Wildcard, operator_wildcard);
        }
        if let HostTarget::Ip(t) = route.openshell_host {
            prop_assert!(!never_routable(t) && !t.is_unspecified() && !t.is_loopback(), "target {}", t);
        }
    }

    #[test]
    fn parser_and_policy_never_panic_on_any_json(doc in any_json()) {
        if let Ok(facts) = Facts::from_value(&doc) {
            let _ = decide(&Registry::builtin(), &facts, &RouteContext::default());
        }
    }

    #[test]
    fn facts_shaped_documents_decide_or_refuse_cleanly(doc in facts_like()) {
        match Facts::from_value(&doc) {
            Ok(facts) => {
                let d = decide(&Registry::builtin(), &facts, &RouteContext::default());
                // A refusal always says why; a route always renders valid extra hosts.
                match d.route {
                    // A relay route has no address until the relay runs: its extra hosts
                    // refuse, naming the fix, rather than reach an engine.
                    Ok(route) if route.openshell_host == HostTarget::Relay => {
                        for e in route.extra_hosts() {
                            let text = e.to_string();
                            let err = openshell_runtime::ExtraHost::parse(&text).err();
                            prop_assert!(err.is_some_and(|e| e.to_string().contains("Relay::route")), "{}", text);
                        }
                    }
                    Ok(route) => {
                        for e in route.extra_hosts() {
                            let text = e.to_string();
                            prop_assert!(openshell_runtime::ExtraHost::parse(&text).is_ok(), "{}", text);
                        }
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
                for ev in d.detection.winner.iter().flat_map(|w| &w.evidence) {
                    prop_assert!(!ev.value.chars().any(char::is_control), "{:?}", ev);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn text_that_is_not_json_is_refused(text in ".{0,200}") {
        let _ = Facts::from_json(&text);
    }
}
