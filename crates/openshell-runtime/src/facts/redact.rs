//! Hiding credentials before anything is shown or written: endpoints and proxies carry them as
//! URL user information (`tcp://user:password@host`, `http://user:password@proxy:3128`).
//!
//! The rule is simple so it cannot be talked around: in a URL, everything between `://` and the
//! last `@` of the address becomes `xxxxx` (Docker's own mask), so `tcp://user:pw@host:2375`
//! is shown as `tcp://xxxxx@host:2375`. The user part goes too: it is often a token on its own.
//! Proxy settings are also written without a scheme (`user:pw@proxy:3128`); under a key naming
//! a proxy those are hidden the same way. [`Endpoint`](super::Endpoint) keeps no user
//! information at all, so its `Display` needs none of this.

use std::borrow::Cow;

use serde_json::Value;

/// What hidden user information is shown as.
pub const MASK: &str = "xxxxx";

/// Where a URL's address ends: a list separator or white space.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '<' | '>')
}

/// `token` with everything before its last `@` replaced by [`MASK`]. A token that starts with
/// `/` is a path (`unix:///run/user@1000/docker.sock`), which has no user information.
fn mask_before_at(token: &str, out: &mut String) {
    match token.rfind('@').filter(|_| !token.starts_with('/')) {
        Some(at) => {
            out.push_str(MASK);
            out.push_str(&token[at..]);
        }
        None => out.push_str(token),
    }
}

/// One endpoint string with its user information hidden: everything between `://` (or the
/// start) and the last `@`, whatever it holds, since a password may contain anything.
pub(super) fn redact_endpoint(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let mut out = raw[..start].to_string();
    mask_before_at(&raw[start..], &mut out);
    out
}

/// `text` with the user information of every URL in it hidden.
pub fn redact_userinfo(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (before, after) = rest.split_at(i + 3);
        out.push_str(before);
        let end = after.find(ends_token).unwrap_or(after.len());
        mask_before_at(&after[..end], &mut out);
        rest = &after[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `text` with the user information of every URL in it hidden, and of every `user@host` item
/// without a scheme too: proxy settings are written both ways (`NoProxy` and some `HttpProxy`
/// values are lists), and a mistyped endpoint may lack its scheme.
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(ends_token).unwrap_or(rest.len());
        let token = &rest[..end];
        match token.find("://") {
            Some(i) => {
                out.push_str(&token[..i + 3]);
                mask_before_at(&token[i + 3..], &mut out);
            }
            None => mask_before_at(token, &mut out),
        }
        let sep = rest[end..].chars().next().map_or(0, char::len_utf8);
        out.push_str(&rest[end..end + sep]);
        rest = &rest[end + sep..];
    }
    Cow::Owned(out)
}

/// Hides credentials everywhere in a facts document (what `--dump-facts` writes): URL user
/// information in every string, and proxy credentials under every key that names a proxy
/// (`HttpProxy`, `HttpsProxy`, `NoProxy`, any case). Nothing else changes, so the document
/// still replays to the same decision.
pub fn redact_document(doc: &mut Value) {
    redact_value(doc, false);
}

fn redact_value(v: &mut Value, proxy: bool) {
    match v {
        Value::String(s) => {
            let hidden = if proxy {
                redact_credentials(s)
            } else {
                redact_userinfo(s)
            };
            if let Cow::Owned(h) = hidden {
                *s = h;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact_value(i, proxy)),
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let names_proxy = k.to_ascii_lowercase().contains("proxy");
                redact_value(item, proxy || names_proxy);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hides_url_user_information() {
        for (raw, shown) in [
            ("tcp://user:pw@host:2375", "tcp://xxxxx@host:2375"),
            ("https://token@host", "https://xxxxx@host"),
            ("tcp://u:p/w@host:1/path", "tcp://xxxxx@host:1/path"),
            (
                "a tcp://u:pw@h, ssh://me@h2/x",
                "a tcp://xxxxx@h, ssh://xxxxx@h2/x",
            ),
            ("tcp://host:2375", "tcp://host:2375"),
            ("no url user@host", "no url user@host"),
            (
                "unix:///run/user@1000/d.sock",
                "unix:///run/user@1000/d.sock",
            ),
        ] {
            assert_eq!(redact_userinfo(raw), shown, "{raw}");
        }
        assert_eq!(redact_credentials("u:pw@host:2375"), "xxxxx@host:2375");
        assert_eq!(redact_endpoint("tcp://u:my pw@h:1"), "tcp://xxxxx@h:1");
        assert_eq!(redact_endpoint("u:pw@h:1"), "xxxxx@h:1");
        assert_eq!(
            redact_credentials("/run/user@1000/d.sock"),
            "/run/user@1000/d.sock"
        );
    }

    #[test]
    fn a_dumped_document_keeps_no_credentials() {
        let mut doc = json!({
            "endpoint": "unix:///var/run/docker.sock",
            "info": {
                "HttpProxy": "http://user:s3cret@proxy.corp:3128",
                "HttpsProxy": "user:s3cret@proxy.corp:3128",
                "NoProxy": "localhost,tok:s3cret@odd,10.0.0.0/8",
                "Labels": ["maintainer=ops@example.org"],
                "RegistryConfig": {"Mirrors": ["https://u:s3cret@mirror.corp/"]},
                "Name": "host"
            },
            "libpod_info": {"host": {"http_proxy": "http://s3cret@p:1"}}
        });
        redact_document(&mut doc);
        let text = doc.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(doc["info"]["HttpProxy"], "http://xxxxx@proxy.corp:3128");
        assert_eq!(doc["info"]["HttpsProxy"], "xxxxx@proxy.corp:3128");
        assert_eq!(doc["info"]["NoProxy"], "localhost,xxxxx@odd,10.0.0.0/8");
        assert_eq!(
            doc["info"]["RegistryConfig"]["Mirrors"][0],
            "https://xxxxx@mirror.corp/"
        );
        // What the policy reads is untouched: an e-mail address in a label is no URL.
        assert_eq!(doc["info"]["Labels"][0], "maintainer=ops@example.org");
        assert_eq!(doc["endpoint"], "unix:///var/run/docker.sock");
    }
}
