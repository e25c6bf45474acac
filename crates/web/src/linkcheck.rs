//! `GET /api/v1/message/{ID}/link-check?follow=true|false`: the HTTP status of
//! each link and image of a message, in Mailpit's `LinkCheckResponse` shape.
//!
//! **This is the one thing that makes sokkel reach outside**, and it does so
//! only on demand: when this endpoint is called (the page calls it only when
//! the user presses its "Check links" button), never on arrival of mail, never
//! on opening a message.
//!
//! The links are the unique `http`/`https` URLs of the message's HTML (`<a
//! href>`, `<img src>`, `background=""`, `<link rel=stylesheet href>`, and CSS
//! `url()` in `<style>` and `style=""`) and of its text part, in the order they
//! first appear, at most [`MAX_LINKS`] (the answer's `LinksCut`, sokkel's own,
//! says how many more there were). Each is asked with `HEAD` (`GET` if HEAD is
//! answered 405 or 501), at most [`CONCURRENCY`] at once, each within
//! [`crate::WebConfig::link_check_timeout`] from the DNS look-up to the status
//! line, with a `User-Agent` naming sokkel; no body is read: the connection
//! closes after the status line and headers. Redirects are followed, at most
//! [`MAX_REDIRECTS`], only with `follow=true`. One check takes at most
//! [`MAX_CHECK_TIME`] (and half the server's idle timeout), counted from the
//! moment the request arrives: waiting for a turn spends the same budget, and
//! links not asked by then say so. At most [`MAX_CHECKS`] checks run at once;
//! more wait their turn (503 if it does not come within the budget).
//!
//! Only the page itself or a client that is not a browser may start a check:
//! it is a GET, so any web page could otherwise make the browser call it (an
//! `<img src>` pointing at it), and make sokkel request every URL of the
//! latest message. A request whose `Sec-Fetch-Site` says it comes from
//! another site, or whose `Origin` is not the server's own (a sandboxed frame
//! sends `Origin: null`), is refused with 403 before anything is read.
//!
//! `Status` is the reason phrase of the status (`OK`, `Not Found`), or, with
//! `StatusCode` 0, what went wrong: `timeout`, `connection refused`, `dns
//! error: ...`, `tls error: ...`. `Errors` counts the links with no answer or
//! a status of 400 and above. Links to private and loopback addresses are
//! checked unless [`crate::WebConfig::link_check_block_private`] is set (then
//! they are answered 451 "Blocked private/reserved address", as Mailpit does):
//! links to a developer's own machine are what a catcher's mail often holds.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use axum::response::Response;
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use sokkel_store::mime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::api::{MessageRef, blocking, json_bytes, json_response, query_map};
use crate::htmlcheck::{Token, Tokens};
use crate::{ApiError, AppState};

/// The most links checked for one message; the rest are counted in `LinksCut`.
pub const MAX_LINKS: usize = 200;

/// The most links of one check asked at once.
pub const CONCURRENCY: usize = 5;

/// The most redirects followed for one link with `follow=true`.
pub const MAX_REDIRECTS: usize = 5;

/// The most link checks running at once in the process (each up to
/// [`CONCURRENCY`] connections); more wait their turn, and are answered 503
/// if it does not come within their own time budget.
pub const MAX_CHECKS: usize = 4;

/// The default of [`crate::WebConfig::link_check_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one check may take, all links together (and at most half the
/// server's idle timeout, which closes a connection whose client has sent
/// nothing, as one waiting for this answer has not): links not asked by then
/// are answered "not checked" rather than the client's connection dropped.
pub const MAX_CHECK_TIME: Duration = Duration::from_secs(60);

/// What a link not asked within [`MAX_CHECK_TIME`] says.
const OUT_OF_TIME: &str = "not checked: the whole check took too long";

/// The most distinct links remembered while counting those past [`MAX_LINKS`].
const MAX_SEEN: usize = 10_000;

static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CHECKS);

/// Mailpit's `LinkCheckResponse`, and sokkel's `LinksCut`.
#[derive(Debug, Serialize)]
struct LinkCheckJson {
    #[serde(rename = "Errors")]
    errors: usize,
    #[serde(rename = "Links")]
    links: Vec<LinkJson>,
    /// Distinct links past [`MAX_LINKS`], not checked (counted up to 10,000).
    #[serde(rename = "LinksCut")]
    links_cut: usize,
}

#[derive(Debug, Serialize)]
struct LinkJson {
    #[serde(rename = "URL")]
    url: String,
    #[serde(rename = "StatusCode")]
    status_code: u16,
    #[serde(rename = "Status")]
    status: String,
}

/// `GET /api/v1/message/{ID}/link-check`.
pub(crate) async fn link_check(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    // The whole check, waiting included, ends before the server's idle
    // timeout would close the connection of the client waiting for it.
    let deadline =
        tokio::time::Instant::now() + MAX_CHECK_TIME.min(state.config().idle_timeout / 2);
    if !crate::guard::own_page_or_no_browser(&headers) {
        return Err(ApiError::Forbidden(
            "link check requested by another site refused: sokkel checks links only when \
             its own page or a client that is not a browser asks"
                .to_string(),
        ));
    }
    let query = query_map(query)?;
    let follow = match query.get("follow").map(|value| value.trim()) {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`follow` takes true or false, not {other:?}"
            )));
        }
    };
    let reference = MessageRef::parse(&id)?;
    let busy = || {
        ApiError::Unavailable(format!(
            "{MAX_CHECKS} link checks are running and none ended within this check's time; \
             try again later"
        ))
    };
    // A turn among the MAX_CHECKS, waited for within the check's budget.
    let _check = match tokio::time::timeout_at(deadline, CHECKS.acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => return Err(ApiError::ShuttingDown),
        Err(_) => return Err(busy()),
    };
    let parsing = tokio::time::timeout_at(deadline, state.parse_permit())
        .await
        .map_err(|_| busy())??;
    let found = blocking(&state, move |store| {
        let id = reference.resolve(store)?;
        let raw = store
            .raw(id)?
            .ok_or_else(|| ApiError::NotFound(format!("message {id} not found")))?;
        let parsed = mime::parse(&raw);
        let mut links = Links::default();
        if let Some(html) = &parsed.html {
            links.read_html(html);
        }
        if let Some(text) = &parsed.text {
            links.read_text(text);
        }
        Ok(links)
    })
    .await?;
    drop(parsing);
    let checker = Arc::new(Checker {
        deadline,
        timeout: state.config().link_check_timeout,
        block_private: state.config().link_check_block_private,
        user_agent: format!("sokkel/{} (link check)", state.config().version),
        follow,
    });
    // Unordered, so that one slow link holds one of the CONCURRENCY places
    // and not, with the finished links queued behind it, all of them; the
    // answer is put back in the links' order after.
    let mut links: Vec<(usize, LinkJson)> =
        futures_util::stream::iter(found.links.into_iter().enumerate())
            .map(|(index, url)| {
                let checker = Arc::clone(&checker);
                async move { (index, checker.check(url).await) }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    links.sort_unstable_by_key(|(index, _)| *index);
    let links: Vec<LinkJson> = links.into_iter().map(|(_, link)| link).collect();
    let answer = LinkCheckJson {
        errors: links
            .iter()
            .filter(|link| link.status_code == 0 || link.status_code >= 400)
            .count(),
        links,
        links_cut: found.cut,
    };
    json_response(&state, json_bytes(&answer)?)
}

// ---- finding the links ---------------------------------------------------------

/// The distinct links of a message, in order, at most [`MAX_LINKS`].
#[derive(Debug, Default)]
struct Links {
    links: Vec<String>,
    seen: HashSet<String>,
    cut: usize,
}

impl Links {
    fn add(&mut self, link: &str) {
        let link = link.trim();
        if !is_http(link) || self.seen.len() >= MAX_SEEN || self.seen.contains(link) {
            return;
        }
        self.seen.insert(link.to_string());
        if self.links.len() < MAX_LINKS {
            self.links.push(link.to_string());
        } else {
            self.cut += 1;
        }
    }

    fn read_html(&mut self, html: &str) {
        let mut tokens = Tokens::new(html);
        while let Some(token) = tokens.next_token() {
            match token {
                Token::Start(tag) => {
                    let rel_stylesheet = tag.attributes.iter().any(|attribute| {
                        attribute.name == "rel"
                            && attribute
                                .value
                                .split_ascii_whitespace()
                                .any(|rel| rel.eq_ignore_ascii_case("stylesheet"))
                    });
                    for attribute in &tag.attributes {
                        let wanted = match (tag.name.as_str(), attribute.name.as_str()) {
                            ("a" | "area", "href") | ("img", "src") | (_, "background") => true,
                            ("link", "href") => rel_stylesheet,
                            (_, "style") => {
                                self.read_css(attribute.value);
                                false
                            }
                            _ => false,
                        };
                        if wanted {
                            self.add(&decode_entities(attribute.value));
                        }
                    }
                }
                Token::Style { css, .. } => self.read_css(css),
            }
        }
    }

    /// `url(...)` in CSS, quoted or not.
    fn read_css(&mut self, css: &str) {
        let mut rest = css;
        while let Some(at) = find_ascii_case(rest, "url(") {
            let inner = rest[at + 4..].trim_start();
            let (url, after) = match inner.as_bytes().first() {
                Some(&quote @ (b'"' | b'\'')) => {
                    let end = inner[1..]
                        .find(quote as char)
                        .map_or(inner.len(), |end| end + 1);
                    (&inner[1..end], &inner[(end + 1).min(inner.len())..])
                }
                _ => {
                    let end = inner.find(')').unwrap_or(inner.len());
                    (&inner[..end], &inner[end..])
                }
            };
            self.add(&decode_entities(url));
            rest = after;
        }
    }

    /// URLs in plain text: from `http://` or `https://` to a space, a quote or
    /// an angle bracket, without trailing punctuation.
    fn read_text(&mut self, text: &str) {
        let mut rest = text;
        while let Some(at) = find_ascii_case(rest, "http") {
            let candidate = &rest[at..];
            if !is_http(candidate) || is_word_before(rest, at) {
                rest = &rest[at + 4..];
                continue;
            }
            let end = candidate
                .find(|ch: char| ch.is_whitespace() || matches!(ch, '<' | '>' | '"' | '`'))
                .unwrap_or(candidate.len());
            let link =
                candidate[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '\'']);
            self.add(link);
            rest = &candidate[end..];
        }
    }
}

fn is_word_before(text: &str, at: usize) -> bool {
    text[..at]
        .chars()
        .next_back()
        .is_some_and(|ch| ch.is_alphanumeric())
}

fn is_http(link: &str) -> bool {
    let starts = |prefix: &str| {
        link.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    };
    (starts("http://") && link.len() > 7) || (starts("https://") && link.len() > 8)
}

fn find_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    let needle = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

/// Character references in an attribute value: numeric ones (`&#61;`,
/// `&#x3D;`, with or without the `;`) and the named ones that appear in URLs
/// (`&amp;` above all); any other `&` stays as written, as a browser leaves
/// an unknown name.
fn decode_entities(value: &str) -> std::borrow::Cow<'_, str> {
    const NAMED: [(&str, char); 9] = [
        ("amp", '&'),
        ("quot", '"'),
        ("apos", '\''),
        ("lt", '<'),
        ("gt", '>'),
        ("equals", '='),
        ("quest", '?'),
        ("sol", '/'),
        ("num", '#'),
    ];
    if !value.contains('&') {
        return value.into();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let decoded = if let Some(number) = after.strip_prefix('#') {
            let (digits, radix, skip) = match number.strip_prefix(['x', 'X']) {
                Some(hex) => (hex, 16, 2),
                None => (number, 10, 1),
            };
            let len = digits
                .bytes()
                .take_while(|&b| char::from(b).is_digit(radix))
                .count();
            (len > 0 && len <= 8)
                .then(|| u32::from_str_radix(&digits[..len], radix).ok())
                .flatten()
                .map(|code| {
                    let ch = char::from_u32(code)
                        .filter(|&ch| ch != '\0')
                        .unwrap_or('\u{fffd}');
                    let semicolon = usize::from(digits[len..].starts_with(';'));
                    (ch, skip + len + semicolon)
                })
        } else {
            NAMED.iter().find_map(|(name, ch)| {
                after
                    .strip_prefix(name)
                    .and_then(|tail| tail.strip_prefix(';'))
                    .map(|_| (*ch, name.len() + 1))
            })
        };
        match decoded {
            Some((ch, used)) => {
                out.push(ch);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.into()
}

// ---- asking --------------------------------------------------------------------

/// How each link is asked.
#[derive(Debug)]
struct Checker {
    /// When the whole check ends, whatever is left.
    deadline: tokio::time::Instant,
    timeout: Duration,
    block_private: bool,
    user_agent: String,
    follow: bool,
}

/// Why a link has no status; the text is what `Status` says.
#[derive(Debug)]
struct Failure(String);

/// The system's CAs for https links, loaded on the first https link.
static TLS: OnceLock<Result<tokio_rustls::TlsConnector, String>> = OnceLock::new();

/// [`TLS`], loaded the first time on the blocking pool: reading the system's
/// CA files is file I/O that must not hold a runtime worker.
async fn tls_connector() -> Result<&'static tokio_rustls::TlsConnector, Failure> {
    let loaded = match TLS.get() {
        Some(loaded) => loaded,
        None => tokio::task::spawn_blocking(|| {
            TLS.get_or_init(|| {
                crate::webhook::tls_connector().map_err(|_| {
                    "tls error: no trusted CA certificates found (install ca-certificates, \
                         or set SSL_CERT_FILE)"
                        .to_string()
                })
            })
        })
        .await
        .map_err(|_| Failure("tls error: loading the CA certificates failed".to_string()))?,
    };
    loaded.as_ref().map_err(|error| Failure(error.clone()))
}

impl Checker {
    async fn check(&self, url: String) -> LinkJson {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return LinkJson {
                url,
                status_code: 0,
                status: OUT_OF_TIME.to_string(),
            };
        }
        let until = self.deadline.min(now + self.timeout);
        let outcome = tokio::time::timeout_at(until, self.follow_chain(&url)).await;
        let (status_code, status) = match outcome {
            Ok(Ok(status)) => (
                status.as_u16(),
                status
                    .canonical_reason()
                    .map_or_else(|| status.as_u16().to_string(), str::to_string),
            ),
            Ok(Err(Failure(why))) if why == BLOCKED => (451, why),
            Ok(Err(Failure(why))) => (0, why),
            Err(_) => (0, "timeout".to_string()),
        };
        LinkJson {
            url,
            status_code,
            status,
        }
    }

    /// The status of `url`, after the redirects if `follow`.
    async fn follow_chain(&self, url: &str) -> Result<StatusCode, Failure> {
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let (status, location) = self.ask(&current).await?;
            let next = location.filter(|_| self.follow && status.is_redirection());
            match next.and_then(|location| resolve(&current, &location)) {
                Some(next) if is_http(&next) => current = next,
                _ => return Ok(status),
            }
        }
        Err(Failure(format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// One link, HEAD then (if refused) GET: its status and `Location`.
    async fn ask(&self, url: &str) -> Result<(StatusCode, Option<String>), Failure> {
        let target = Target::parse(url)?;
        let answer = self.request(&target, Method::HEAD).await?;
        if matches!(
            answer.0,
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
        ) {
            return self.request(&target, Method::GET).await;
        }
        Ok(answer)
    }

    async fn request(
        &self,
        target: &Target,
        method: Method,
    ) -> Result<(StatusCode, Option<String>), Failure> {
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|error| Failure(format!("dns error: {error}")))?
                .collect();
        if addresses.is_empty() {
            return Err(Failure(format!(
                "dns error: no address for {}",
                target.host
            )));
        }
        if self.block_private && addresses.iter().any(|address| is_private(address.ip())) {
            return Err(Failure(BLOCKED.to_string()));
        }
        // Up to MAX_ADDRESSES addresses, one after another, each within its
        // share of the link's timeout, so that one address that swallows the
        // SYN does not leave the others no time.
        let tried = addresses.len().min(MAX_ADDRESSES);
        let per_address = self.timeout / u32::try_from(tried).unwrap_or(1);
        let mut last_error = None;
        let mut tcp = None;
        for address in addresses.iter().take(tried) {
            match tokio::time::timeout(per_address, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    tcp = Some(stream);
                    break;
                }
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => {
                    last_error = Some(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("{address} did not answer"),
                    ));
                }
            }
        }
        let tcp = tcp.ok_or_else(|| {
            Failure(match last_error {
                Some(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                    "connection refused".to_string()
                }
                Some(error) => format!("connection failed: {error}"),
                None => "connection failed".to_string(),
            })
        })?;
        let _ = tcp.set_nodelay(true);
        let request = Request::builder()
            .method(method)
            .uri(target.path_and_query.as_str())
            .header(header::HOST, target.authority.as_str())
            .header(header::USER_AGENT, self.user_agent.as_str())
            .header(header::ACCEPT, "*/*")
            .header(header::CONNECTION, "close")
            .body(Body::empty())
            .map_err(|error| Failure(format!("invalid URL: {error}")))?;
        if !target.https {
            return exchange(tcp, request).await;
        }
        let connector = tls_connector().await?;
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|error| Failure(format!("tls error: {error}")))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|error| Failure(format!("tls error: {error}")))?;
        exchange(tls, request).await
    }
}

const BLOCKED: &str = "Blocked private/reserved address";

/// The most resolved addresses of one host tried, one after another.
const MAX_ADDRESSES: usize = 4;

/// Whether `ip` is not a public unicast address: loopback, private, shared
/// (CGNAT), link-local, "this network", benchmarking, broadcast, unique-local,
/// or an IPv6 address that carries an IPv4 one (mapped, compatible, NAT64,
/// 6to4) which is itself not public.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_broadcast()
                // 0.0.0.0/8: "this network"; connecting to it reaches this host.
                || a == 0
                // 100.64.0.0/10: shared address space (CGNAT).
                || a == 100 && (b & 0xc0) == 64
                // 198.18.0.0/15: benchmarking.
                || a == 198 && (b & 0xfe) == 18
        }
        IpAddr::V6(ip) => {
            let segments = ip.segments();
            let embedded = |high: u16, low: u16| {
                std::net::Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
            };
            ip.is_loopback()
                || ip.is_unspecified()
                || (segments[0] & 0xfe00) == 0xfc00
                || (segments[0] & 0xffc0) == 0xfe80
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
                // ::a.b.c.d, IPv4-compatible (deprecated, still routed by some stacks).
                || segments[..6] == [0; 6] && is_private(IpAddr::V4(embedded(segments[6], segments[7])))
                // 64:ff9b::/96, NAT64: the IPv4 address in the last 32 bits.
                || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                    && is_private(IpAddr::V4(embedded(segments[6], segments[7])))
                // 2002::/16, 6to4: the IPv4 address in bits 16..48.
                || segments[0] == 0x2002 && is_private(IpAddr::V4(embedded(segments[1], segments[2])))
        }
    }
}

/// One HTTP/1.1 request on `io`: the status and `Location` of the answer. The
/// body is never read; dropping the connection here closes it.
async fn exchange<S>(io: S, request: Request<Body>) -> Result<(StatusCode, Option<String>), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http_error = |error: hyper::Error| Failure(format!("http error: {error}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(http_error)?;
    let response = sender.send_request(request);
    tokio::pin!(connection, response);
    let answer = tokio::select! {
        answer = &mut response => answer,
        ended = &mut connection => {
            ended.map_err(http_error)?;
            response.await
        }
    }
    .map_err(http_error)?;
    let location = answer
        .headers()
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    Ok((answer.status(), location))
}

/// Where a link points.
#[derive(Debug)]
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// The `Host` header.
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, Failure> {
        let invalid = || Failure("invalid URL".to_string());
        // The fragment is never sent.
        let url = url.split('#').next().unwrap_or_default();
        let uri: Uri = url.parse().map_err(|_| invalid())?;
        let https = match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
            _ => return Err(invalid()),
        };
        let authority = uri.authority().ok_or_else(invalid)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid());
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        // Credentials in a link are not sent on.
        let host_port = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, host_port)| host_port);
        Ok(Target {
            https,
            host: host.to_string(),
            port,
            authority: host_port.to_string(),
            path_and_query: uri
                .path_and_query()
                .map_or("/".to_string(), |target| target.as_str().to_string()),
        })
    }
}

/// `location` (absolute, scheme-relative, absolute-path, query-only or
/// relative) against `base`, as RFC 3986 section 5.2.2 says, with the dot
/// segments removed (5.2.4). A fragment is dropped: it is never sent.
fn resolve(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    let location = location.split('#').next().unwrap_or_default();
    if is_http(location) {
        return Some(location.to_string());
    }
    let scheme_end = base.find("://")? + 3;
    let base = base.split('#').next().unwrap_or_default();
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{}{rest}", &base[..scheme_end]));
    }
    let origin_end = base[scheme_end..]
        .find(['/', '?'])
        .map_or(base.len(), |end| scheme_end + end);
    let origin = &base[..origin_end];
    let (base_path, base_query) = match base[origin_end..].split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (&base[origin_end..], None),
    };
    let (path, query) = match location.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (location, None),
    };
    let path = if path.is_empty() {
        // "" or "?x=1": the base's path, with the base's query unless one is given.
        let query = query.or(base_query);
        return Some(match query {
            Some(query) => format!("{origin}{}?{query}", or_slash(base_path)),
            None => format!("{origin}{}", or_slash(base_path)),
        });
    } else if path.starts_with('/') {
        remove_dot_segments(path)
    } else {
        // Merge: the base's directory, then the reference.
        let directory = base_path
            .rfind('/')
            .map_or("/", |slash| &base_path[..=slash]);
        remove_dot_segments(&format!("{directory}{path}"))
    };
    Some(match query {
        Some(query) => format!("{origin}{path}?{query}"),
        None => format!("{origin}{path}"),
    })
}

fn or_slash(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

/// RFC 3986 section 5.2.4 on an absolute path: `.` segments go, `..` takes
/// the one before it with it, never above the root.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (at, segment) in segments.iter().enumerate() {
        let last = at + 1 == segments.len();
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                // "/a/b/.." is "/a/": the directory stays a directory.
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_from_html_css_and_text_unique_and_in_order() {
        let mut links = Links::default();
        links.read_html(
            "<a href=\"https://a.example/x?b=1&amp;c=2\">a</a>\n<img src='http://i.example/p.png'>\
             <td background=https://bg.example/t.gif><a href=\"#top\">top</a><a href=\"mailto:x@y\">m</a>\
             <style>.x{background:url( \"https://css.example/1.png\" )}</style>\
             <p style=\"background-image:url(https://css.example/2.png)\"><a href=\"https://a.example/x?b=1&amp;c=2\">again</a>\
             <link rel=\"stylesheet\" href=\"https://css.example/s.css\"><link rel=icon href=\"https://no.example/\">",
        );
        links.read_text(
            "See https://t.example/page. Or (https://t.example/b), <http://t.example/c>\nnothttp://no.example",
        );
        assert_eq!(
            links.links,
            [
                "https://a.example/x?b=1&c=2",
                "http://i.example/p.png",
                "https://bg.example/t.gif",
                "https://css.example/1.png",
                "https://css.example/2.png",
                "https://css.example/s.css",
                "https://t.example/page",
                "https://t.example/b",
                "http://t.example/c",
            ]
        );
    }

    #[test]
    fn links_past_the_cap_are_counted() {
        let mut links = Links::default();
        let text: String = (0..MAX_LINKS + 7)
            .map(|n| format!("http://h.example/{n} http://h.example/0\n"))
            .collect();
        links.read_text(&text);
        assert_eq!(links.links.len(), MAX_LINKS);
        assert_eq!(links.cut, 7);
    }

    #[test]
    fn redirects_resolve() {
        let base = "http://h.example:8080/a/b?q=1";
        assert_eq!(resolve(base, "/c").unwrap(), "http://h.example:8080/c");
        assert_eq!(resolve(base, "c").unwrap(), "http://h.example:8080/a/c");
        assert_eq!(
            resolve(base, "//o.example/d").unwrap(),
            "http://o.example/d"
        );
        assert_eq!(
            resolve(base, "https://x.example/").unwrap(),
            "https://x.example/"
        );
        assert_eq!(
            resolve("http://h.example", "c").unwrap(),
            "http://h.example/c"
        );
        // RFC 3986 5.2.2: a query-only reference keeps the base's path.
        assert_eq!(
            resolve(base, "?x=1").unwrap(),
            "http://h.example:8080/a/b?x=1"
        );
        assert_eq!(resolve(base, "").unwrap(), base);
        assert_eq!(
            resolve("http://h.example", "?x").unwrap(),
            "http://h.example/?x"
        );
        // Dot segments, never above the root.
        assert_eq!(resolve(base, "../a").unwrap(), "http://h.example:8080/a");
        assert_eq!(
            resolve(base, "./c?d").unwrap(),
            "http://h.example:8080/a/c?d"
        );
        assert_eq!(
            resolve(base, "../../../x").unwrap(),
            "http://h.example:8080/x"
        );
        assert_eq!(
            resolve(base, "/p/./q/../r").unwrap(),
            "http://h.example:8080/p/r"
        );
        assert_eq!(resolve(base, "..").unwrap(), "http://h.example:8080/");
        assert_eq!(
            resolve(base, "c#frag").unwrap(),
            "http://h.example:8080/a/c"
        );
    }

    #[test]
    fn numeric_and_named_references_in_links_are_decoded() {
        assert_eq!(
            decode_entities("http://h.example/?a&#61;1&#x3D;2&#X3d;3&amp;b=&#38;&#x26"),
            "http://h.example/?a=1=2=3&b=&&"
        );
        assert_eq!(
            decode_entities("&#104;ttp&colon;x&quest;&sol;"),
            "http&colon;x?/"
        );
        assert_eq!(
            decode_entities("a&b&#;&#x;&#0;&#99999999999;"),
            "a&b&#;&#x;\u{fffd}&#99999999999;"
        );
        let mut links = Links::default();
        links.read_html("<a href=\"&#104;&#x74;tp://h.example/p?q&#61;1\">x</a>");
        assert_eq!(links.links, ["http://h.example/p?q=1"]);
    }

    #[test]
    fn private_and_reserved_ranges() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "198.18.0.1",
            "198.19.255.255",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:192.168.1.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "100.128.0.1",
            "100.63.255.255",
            "198.20.0.1",
            "198.17.255.255",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
            "::ffff:93.184.216.34",
        ] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn targets_parse_without_credentials_or_fragment() {
        let target = Target::parse("https://u:p@h.example/a?b#frag").unwrap();
        assert!(target.https);
        assert_eq!((target.host.as_str(), target.port), ("h.example", 443));
        assert_eq!(target.authority, "h.example");
        assert_eq!(target.path_and_query, "/a?b");
        let target = Target::parse("http://[::1]:81").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("::1", 81));
        assert_eq!(target.path_and_query, "/");
        assert!(Target::parse("http://exa mple/").is_err());
        assert!(is_private("127.0.0.1".parse().unwrap()));
        assert!(is_private("10.1.2.3".parse().unwrap()));
        assert!(is_private("::ffff:192.168.1.1".parse().unwrap()));
        assert!(!is_private("93.184.216.34".parse().unwrap()));
    }
}
