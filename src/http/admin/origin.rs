//! Whether a POST to the status page comes from the page itself (design §5). Browsers send
//! `Origin` on every form POST and a cross-site page can set neither it nor `Host`, so a POST is
//! accepted when its `Origin` is `server.public_url`'s origin, or names the very host and port the
//! request was sent to. The second rule keeps `server.admin_port`, an SSH tunnel and an empty
//! `server.public_url` working; a missing or `null` Origin is refused.

use url::Url;

/// `server.public_url`'s origin (`scheme://host[:port]`, default port left out), or `None` when it
/// is empty or not an http(s) URL.
pub fn own_origin(public_url: &str) -> Option<String> {
    let url = Url::parse(public_url).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}

/// True when a POST carrying `origin` (its `Origin` header) and sent to `host` (its `Host`
/// header) may act on the page: see the module docs.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, own: Option<&str>) -> bool {
    let Some(origin) = origin.and_then(parse_origin) else {
        return false;
    };
    let origin = origin.origin().ascii_serialization();
    if own.is_some_and(|own| own.eq_ignore_ascii_case(&origin)) {
        return true;
    }
    host.is_some_and(|host| host_origin(&origin, host).is_some_and(|h| h == origin))
}

/// An `Origin` header as a URL: `scheme://host[:port]` and nothing else (`null` and anything with
/// a path, credentials, query or fragment is not one).
fn parse_origin(origin: &str) -> Option<Url> {
    let url = Url::parse(origin).ok()?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    bare.then_some(url)
}

/// The origin a request to `host` would have under `origin`'s scheme (so `Host: a:80` equals
/// `http://a`), or `None` when `host` is not a bare `host[:port]`.
fn host_origin(origin: &str, host: &str) -> Option<String> {
    if host.is_empty() || host.contains(['/', '@', '?', '#', '\\', ' ']) {
        return None;
    }
    let scheme = origin.split_once("://")?.0;
    let url = Url::parse(&format!("{scheme}://{host}")).ok()?;
    Some(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_gives_the_own_origin() {
        assert_eq!(
            own_origin("https://bridge.example.com").as_deref(),
            Some("https://bridge.example.com")
        );
        assert_eq!(
            own_origin("https://Bridge.example.com:443/base").as_deref(),
            Some("https://bridge.example.com")
        );
        assert_eq!(
            own_origin("http://10.0.0.5:8080").as_deref(),
            Some("http://10.0.0.5:8080")
        );
        assert_eq!(own_origin(""), None);
        assert_eq!(own_origin("ftp://bridge.example.com"), None);
    }

    #[test]
    fn only_the_own_origin_or_the_requested_host_may_post() {
        let own = Some("https://bridge.example.com");
        // Origin, Host, public_url's origin, allowed, why.
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            bool,
            &'a str,
        );
        let cases: &[Case<'_>] = &[
            (
                Some("https://bridge.example.com"),
                Some("internal:8080"),
                own,
                true,
                "public_url's origin, behind a proxy that rewrites Host",
            ),
            (
                Some("https://BRIDGE.example.com:443"),
                None,
                own,
                true,
                "the same origin spelt with case and the default port",
            ),
            (
                Some("http://127.0.0.1:9091"),
                Some("127.0.0.1:9091"),
                own,
                true,
                "an SSH tunnel to server.admin_port: Origin names the Host",
            ),
            (
                Some("http://localhost:8080"),
                Some("localhost:8080"),
                None,
                true,
                "no public_url: the Host rule alone",
            ),
            (
                Some("http://bridge.example.com"),
                Some("bridge.example.com:80"),
                None,
                true,
                "Host with the scheme's default port",
            ),
            (
                Some("http://bridge.example.com"),
                Some("bridge.example.com"),
                own,
                true,
                "scheme differs from public_url but Origin names the Host",
            ),
            (
                Some("https://evil.example"),
                Some("bridge.example.com"),
                own,
                false,
                "another site",
            ),
            (
                Some("http://127.0.0.1:9092"),
                Some("127.0.0.1:9091"),
                None,
                false,
                "same host, another port",
            ),
            (
                Some("https://bridge.example.com.evil.example"),
                Some("bridge.example.com"),
                own,
                false,
                "a suffix of another domain",
            ),
            (Some("null"), Some("bridge.example.com"), own, false, "null"),
            (None, Some("bridge.example.com"), own, false, "missing"),
            (Some(""), Some("bridge.example.com"), own, false, "empty"),
            (
                Some("https://bridge.example.com/admin"),
                Some("bridge.example.com"),
                own,
                false,
                "an Origin with a path is not an origin",
            ),
            (
                Some("http://evil.example"),
                Some("evil.example/@bridge.example.com"),
                None,
                false,
                "a Host that is not host[:port]",
            ),
            (
                Some("http://bridge.example.com"),
                None,
                None,
                false,
                "no Host and no public_url",
            ),
        ];
        for (origin, host, own, allowed, what) in cases {
            assert_eq!(
                origin_allowed(*origin, *host, *own),
                *allowed,
                "{what}: Origin {origin:?}, Host {host:?}"
            );
        }
    }
}
