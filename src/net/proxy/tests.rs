use super::*;

fn cfg(vars: &[(&str, &str)]) -> NetConfig {
    NetConfig {
        proxy_env: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn proxy_of(cfg: &NetConfig, scheme: Scheme, host: &str) -> Option<String> {
    match route(cfg, scheme, host, 443).unwrap() {
        Route::Proxy(p) => Some(p.to_string()),
        _ => None,
    }
}

#[test]
fn parses_proxy_urls_like_curl() {
    let p = ProxyUrl::parse("http://proxy.corp:3128").unwrap();
    assert_eq!(
        (p.host.as_str(), p.port, p.has_credentials()),
        ("proxy.corp", 3128, false)
    );
    assert_eq!(ProxyUrl::parse("proxy.corp").unwrap().port, 1080);
    assert_eq!(
        ProxyUrl::parse("HTTP://Proxy.Corp:8080/")
            .unwrap()
            .to_string(),
        "http://proxy.corp:8080"
    );
    assert_eq!(
        ProxyUrl::parse("http://[::1]:3128").unwrap().to_string(),
        "http://[::1]:3128"
    );
    assert_eq!(ProxyUrl::parse("http://[fd00::1]").unwrap().port, 1080);
    assert_eq!(ProxyUrl::parse("10.0.0.4:3128").unwrap().host, "10.0.0.4");
}

#[test]
fn credentials_are_decoded_and_masked() {
    let p = ProxyUrl::parse("http://svc%40corp:p%40ss%3Aw0rd@proxy:3128").unwrap();
    assert_eq!(p.to_string(), "http://svc@corp:***@proxy:3128");
    assert_eq!(format!("{p:?}"), "ProxyUrl(http://svc@corp:***@proxy:3128)");
    let expected = base64::engine::general_purpose::STANDARD.encode("svc@corp:p@ss:w0rd");
    assert_eq!(p.authorization().unwrap(), format!("Basic {expected}"));
    // A password with an '@' left unescaped: the last '@' ends the user info, like curl.
    let p = ProxyUrl::parse("http://u:a@b@proxy:3128").unwrap();
    assert_eq!(
        (p.host.as_str(), p.to_string().as_str()),
        ("proxy", "http://u:***@proxy:3128")
    );
    // A user without a password is a token: the secret itself, masked whole, in every spelling.
    for raw in [
        "http://Tok3nSecret@proxy:3128",
        "http://Tok3nSecret:@proxy:3128",
        "Tok3nSecret@proxy:3128",
    ] {
        let p = ProxyUrl::parse(raw).unwrap();
        assert_eq!(p.to_string(), "http://***@proxy:3128", "{raw}");
        assert_eq!(mask(raw), "http://***@proxy:3128", "{raw}");
        assert!(
            !crate::address::masked(raw).contains("Tok3nSecret"),
            "{raw}"
        );
    }
    // A user name's control characters never reach a terminal.
    let p = ProxyUrl::parse("http://u%1b%5b2J:pw@proxy:1").unwrap();
    assert!(!p.to_string().contains('\x1b'), "{p}");
    assert!(
        ProxyUrl::parse("http://u@proxy:1")
            .unwrap()
            .authorization()
            .is_some()
    );
    assert!(
        ProxyUrl::parse("http://proxy:1")
            .unwrap()
            .authorization()
            .is_none()
    );
}

#[test]
fn debug_of_the_settings_masks_passwords() {
    let c = NetConfig {
        proxy: Some("http://u:hunter2@p:1".into()),
        ..cfg(&[
            ("HTTPS_PROXY", "http://v:hunter2@q:2"),
            ("ALL_PROXY", "x:y@@"),
            ("NO_PROXY", "a.example,10.0.0.0/8"),
        ])
    };
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("http://u:***@p:1") && shown.contains("a.example,10.0.0.0/8"),
        "{shown}"
    );
}

#[test]
fn bad_proxy_urls_are_explained_without_echoing_them() {
    for (raw, want) in [
        ("https://u:hunter2@proxy:443", "https:// proxies"),
        (
            "socks5://u:hunter2@proxy:1080",
            "socks5:// proxies are not supported",
        ),
        ("ftp://u:hunter2@proxy", "unsupported proxy scheme"),
        ("http://u:hunter2@proxy:99999", "port"),
        ("http://u:hunter2@proxy:0", "port"),
        ("http://u:hunter2@:3128", "host"),
        ("http://u:hunter2@pro xy:3128", "host"),
        ("http://u:hunter2%zz@proxy:3128", "%-escape"),
        ("http://u:hunter2@[::1:3128", "unclosed"),
        ("http://u:hunter2@[proxy]:3128", "IPv6"),
    ] {
        let e = ProxyUrl::parse(raw).unwrap_err();
        assert!(e.contains(want), "{raw}: {e}");
        assert!(
            !e.contains("hunter2"),
            "{raw}: the error repeats the password: {e}"
        );
    }
}

#[test]
fn picks_the_variable_curl_picks() {
    let both: &[(&str, &str)] = &[
        ("https_proxy", "http://lower:1"),
        ("HTTPS_PROXY", "http://upper:1"),
        ("ALL_PROXY", "http://all:1"),
    ];
    let upper_http: &[(&str, &str)] = &[("HTTP_PROXY", "http://upper:1")];
    let http: &[(&str, &str)] = &[("http_proxy", "http://h:1"), ("HTTPS_PROXY", "http://s:1")];
    let ws: &[(&str, &str)] = &[
        ("ws_proxy", "http://w:1"),
        ("WSS_PROXY", "http://ws2:1"),
        ("https_proxy", "http://s:1"),
    ];
    let empty: &[(&str, &str)] = &[("https_proxy", " "), ("all_proxy", "http://all:1")];
    // (variables, scheme, the proxy curl uses)
    let cases = [
        (both, Scheme::Https, Some("http://lower:1")),
        (both, Scheme::Wss, Some("http://lower:1")),
        // http reads only the lower-case http_proxy, then all_proxy
        (both, Scheme::Http, Some("http://all:1")),
        (upper_http, Scheme::Http, None),
        (upper_http, Scheme::Ws, None),
        (http, Scheme::Http, Some("http://h:1")),
        (http, Scheme::Ws, Some("http://h:1")),
        (http, Scheme::Https, Some("http://s:1")),
        (ws, Scheme::Ws, Some("http://w:1")),
        (ws, Scheme::Wss, Some("http://ws2:1")),
        (empty, Scheme::Https, Some("http://all:1")),
        (&[], Scheme::Https, None),
    ];
    for (vars, scheme, want) in cases {
        let got = proxy_of(&cfg(vars), scheme, "x");
        assert_eq!(got.as_deref(), want, "{vars:?} {}", scheme.as_str());
    }
}

#[test]
fn no_proxy_lower_case_wins_and_applies_to_the_flag() {
    let c = cfg(&[
        ("https_proxy", "http://p:1"),
        ("no_proxy", "a.example"),
        ("NO_PROXY", "b.example"),
    ]);
    assert_eq!(
        route(&c, Scheme::Https, "a.example", 443).unwrap(),
        Route::Bypassed
    );
    assert!(matches!(
        route(&c, Scheme::Https, "b.example", 443).unwrap(),
        Route::Proxy(_)
    ));
    let c = cfg(&[("NO_PROXY", "b.example")]);
    let c = NetConfig {
        proxy: Some("http://flag:3128".into()),
        ..c
    };
    assert_eq!(
        route(&c, Scheme::Https, "b.example", 443).unwrap(),
        Route::Bypassed
    );
    assert_eq!(
        proxy_of(&c, Scheme::Http, "c.example").as_deref(),
        Some("http://flag:3128")
    );
    let off = NetConfig {
        no_proxy: true,
        ..cfg(&[("https_proxy", "http://p:1")])
    };
    assert_eq!(route(&off, Scheme::Https, "x", 443).unwrap(), Route::Direct);
}

#[test]
fn validation_names_the_variable_not_the_value() {
    let c = cfg(&[("HTTPS_PROXY", "socks5://u:hunter2@p:1")]);
    let e = validate(&c).unwrap_err();
    assert_eq!(e.variable, Some("HTTPS_PROXY"));
    let e = e.to_string();
    assert!(
        e.starts_with("environment variable HTTPS_PROXY: socks5"),
        "{e}"
    );
    assert!(!e.contains("hunter2"));
    // shadowed by the lower-case variable: curl would never read it
    let c = cfg(&[
        ("https_proxy", "http://ok:1"),
        ("HTTPS_PROXY", "garbage:port"),
        ("HTTP_PROXY", "garbage:x"),
    ]);
    assert!(validate(&c).is_ok());
    let c = NetConfig {
        proxy: Some("https://u:hunter2@p".into()),
        ..Default::default()
    };
    let e = validate(&c).unwrap_err();
    assert_eq!(e.variable, None);
    assert!(e.to_string().starts_with("--proxy: https://"));
    let c = NetConfig {
        no_proxy: true,
        ..cfg(&[("all_proxy", "socks5://p")])
    };
    assert!(validate(&c).is_ok());
}
