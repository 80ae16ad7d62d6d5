//! Property tests over the facts parser and the policy: no input makes them panic.

use openshell_runtime::{decide, Facts, Registry, RouteContext};
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

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
