//! The SSRF guard: which endpoint URLs a webhook may be sent to.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

use crate::Error;
use crate::address::{AddressCategory, classify};

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// How long a host name lookup may take.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Which endpoint URLs are acceptable.
///
/// The default policy is the production one: `https` only, and no address
/// outside the public internet (see [`AddressCategory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Allows loopback addresses (`127.0.0.0/8`, `::1`) and plain `http`
    /// URLs, for development and tests only. Every other forbidden range
    /// stays forbidden.
    pub allow_loopback: bool,
}

impl UrlPolicy {
    /// The production policy: `https` to public addresses only.
    pub const STRICT: UrlPolicy = UrlPolicy { allow_loopback: false };

    /// The development policy: also `http`, and loopback addresses.
    pub const DEV: UrlPolicy = UrlPolicy { allow_loopback: true };

    /// Checks the URL's syntax alone, without resolving its host: at most
    /// [`MAX_URL_LEN`] bytes, scheme `https` (or `http` when
    /// `allow_loopback`), a host, no user name or password, not port 0, and,
    /// when the host is an IP address, an address the policy allows.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`], or [`Error::Forbidden`] for an IP-address host.
    pub fn check_syntax(&self, url: &str) -> Result<Url, Error> {
        if url.len() > MAX_URL_LEN {
            return Err(Error::invalid_url("longer than 2048 bytes"));
        }
        let parsed =
            Url::parse(url).map_err(|source| Error::InvalidUrl { reason: "not a valid URL", source: Some(source) })?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_loopback => {}
            "http" => return Err(Error::invalid_url("the scheme must be https")),
            _ => return Err(Error::invalid_url("the scheme must be https or http")),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Error::invalid_url("a user name or password is not allowed"));
        }
        match parsed.host() {
            None => return Err(Error::invalid_url("the URL has no host")),
            Some(Host::Domain("")) => return Err(Error::invalid_url("the URL has no host")),
            Some(Host::Domain(_)) => {}
            Some(Host::Ipv4(ip)) => self.check_ip(ip.into())?,
            Some(Host::Ipv6(ip)) => self.check_ip(ip.into())?,
        }
        if parsed.port() == Some(0) {
            return Err(Error::invalid_url("port 0 is not allowed"));
        }
        Ok(parsed)
    }

    /// The check at endpoint creation and before every attempt:
    /// [`check_syntax`](Self::check_syntax), then the host is resolved
    /// (within [`DNS_TIMEOUT`]) and refused if *any* of its addresses is
    /// forbidden, since a client may connect to any of them.
    ///
    /// Returns the resolved addresses (with the URL's port), which is where
    /// the request must go: resolving again later could give other answers
    /// (DNS rebinding).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`], [`Error::Forbidden`], [`Error::DnsFailed`] or
    /// [`Error::DnsTimeout`].
    pub async fn check(&self, url: &str) -> Result<Vec<SocketAddr>, Error> {
        let parsed = self.check_syntax(url)?;
        self.resolve(&parsed).await
    }

    /// Resolves a URL that passed [`check_syntax`](Self::check_syntax) and
    /// checks every address.
    pub(crate) async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, Error> {
        let port = url.port_or_known_default().ok_or_else(|| Error::invalid_url("the URL has no port"))?;
        let found: Vec<SocketAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
            Some(Host::Domain(host)) => lookup(host, port).await?,
            None => return Err(Error::invalid_url("the URL has no host")),
        };
        let mut addrs = Vec::with_capacity(found.len());
        for addr in found {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        for addr in &addrs {
            self.check_ip(addr.ip())?;
        }
        Ok(addrs)
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), Error> {
        match classify(ip) {
            None => Ok(()),
            Some(AddressCategory::Loopback) if self.allow_loopback => Ok(()),
            Some(category) => Err(Error::Forbidden { category, addr: ip }),
        }
    }
}

async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let found = tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| Error::DnsTimeout { host: host.to_owned() })?
        .map_err(|source| Error::DnsFailed { host: host.to_owned(), source: Some(source) })?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(Error::DnsFailed { host: host.to_owned(), source: None });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(policy: UrlPolicy, url: &str) -> Result<String, (&'static str, String)> {
        policy.check_syntax(url).map(|u| u.to_string()).map_err(|e| (e.code(), e.to_string()))
    }

    #[test]
    fn accepts_ordinary_https_urls() {
        for url in [
            "https://example.com/hooks",
            "https://hooks.example.com:8443/a/b?token=x",
            "https://203.0.113.5/hook",
            "https://[2001:db8::1]:8443/",
            "HTTPS://Example.COM/Hook",
        ] {
            assert!(UrlPolicy::STRICT.check_syntax(url).is_ok(), "{url}");
        }
        // The URL comes back normalised.
        assert_eq!(syntax(UrlPolicy::STRICT, "HTTPS://Example.COM/Hook").unwrap(), "https://example.com/Hook");
    }

    #[test]
    fn rejects_bad_syntax() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        let cases = [
            ("not a url", "invalid webhook URL: not a valid URL"),
            ("/relative/path", "invalid webhook URL: not a valid URL"),
            ("https://", "invalid webhook URL: not a valid URL"),
            ("https://exa mple.com/", "invalid webhook URL: not a valid URL"),
            ("http://example.com/", "invalid webhook URL: the scheme must be https"),
            ("ftp://example.com/", "invalid webhook URL: the scheme must be https or http"),
            ("file:///etc/passwd", "invalid webhook URL: the scheme must be https or http"),
            ("gopher://example.com/", "invalid webhook URL: the scheme must be https or http"),
            ("https://user:pass@example.com/", "invalid webhook URL: a user name or password is not allowed"),
            ("https://user@example.com/", "invalid webhook URL: a user name or password is not allowed"),
            ("https://example.com:0/", "invalid webhook URL: port 0 is not allowed"),
            (long.as_str(), "invalid webhook URL: longer than 2048 bytes"),
        ];
        for (url, message) in cases {
            assert_eq!(syntax(UrlPolicy::STRICT, url), Err(("webhook_url_invalid", message.to_owned())), "{url}");
        }
        let just_fits = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN - "https://example.com/".len()));
        assert!(UrlPolicy::STRICT.check_syntax(&just_fits).is_ok());
    }

    #[test]
    fn http_only_with_allow_loopback() {
        assert!(UrlPolicy::DEV.check_syntax("http://127.0.0.1:8080/hook").is_ok());
        assert!(UrlPolicy::DEV.check_syntax("http://example.com/hook").is_ok());
        assert!(UrlPolicy::DEV.check_syntax("ftp://127.0.0.1/").is_err());
    }

    #[test]
    fn rejects_forbidden_ip_hosts_without_resolving() {
        let cases = [
            ("https://127.0.0.1/", "loopback"),
            ("https://127.1/", "loopback"),
            ("https://2130706433/", "loopback"),
            ("https://0x7f.0.0.1/", "loopback"),
            ("https://[::1]/", "loopback"),
            ("https://[::ffff:127.0.0.1]/", "loopback"),
            ("https://0.0.0.0/", "unspecified address"),
            ("https://[::]/", "unspecified address"),
            ("https://10.0.0.1/", "private network"),
            ("https://172.20.1.1/", "private network"),
            ("https://192.168.1.1/", "private network"),
            ("https://100.64.0.1/", "shared address space (carrier-grade NAT)"),
            ("https://169.254.169.254/latest/meta-data/", "cloud metadata service"),
            ("https://[fd00:ec2::254]/", "cloud metadata service"),
            ("https://169.254.1.1/", "link-local"),
            ("https://[fe80::1]/", "link-local"),
            ("https://[fd12:3456::1]/", "IPv6 unique local"),
            ("https://224.0.0.1/", "multicast"),
            ("https://255.255.255.255/", "broadcast"),
            ("https://[::ffff:10.0.0.1]/", "private network"),
        ];
        for (url, category) in cases {
            let expected = format!("webhook URL points to a forbidden address ({category})");
            assert_eq!(syntax(UrlPolicy::STRICT, url), Err(("webhook_url_forbidden", expected)), "{url}");
        }
        // Loopback is the only range the development policy opens.
        assert!(UrlPolicy::DEV.check_syntax("http://127.0.0.1/").is_ok());
        assert!(UrlPolicy::DEV.check_syntax("http://[::1]:9/").is_ok());
        assert_eq!(UrlPolicy::DEV.check_syntax("http://10.0.0.1/").unwrap_err().code(), "webhook_url_forbidden");
    }

    #[tokio::test]
    async fn check_returns_ip_hosts_with_their_port() {
        // IP hosts need no lookup, so no packet leaves the machine.
        assert_eq!(
            UrlPolicy::STRICT.check("https://203.0.113.5/hook").await.unwrap(),
            ["203.0.113.5:443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            UrlPolicy::DEV.check("http://[::1]:8080/").await.unwrap(),
            ["[::1]:8080".parse::<SocketAddr>().unwrap()]
        );
    }
}
