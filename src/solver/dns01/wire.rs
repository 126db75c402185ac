//! Moving DNS messages encoded by hickory-proto over UDP (TCP when the answer is truncated), and
//! the lookups shared by the RFC 2136 provider and the propagation checker.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use super::{Dns01Error, normalize_name};

/// A parsed, absolute DNS name; errors name the offending input.
pub(crate) fn parse_name(s: &str) -> Result<Name, Dns01Error> {
    let n = normalize_name(s);
    let invalid = |reason: String| Dns01Error::InvalidName {
        name: s.to_string(),
        reason,
    };
    if n.is_empty() {
        return Err(invalid("empty".into()));
    }
    let mut name = Name::from_ascii(&n).map_err(|e| invalid(e.to_string()))?;
    name.set_fqdn(true);
    Ok(name)
}

/// A name as we print and return it: lowercase, no trailing dot.
pub(crate) fn name_str(name: &Name) -> String {
    normalize_name(&name.to_ascii())
}

/// The RCODE as `dig` prints it.
pub(crate) fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::YXDomain => "YXDOMAIN".into(),
        ResponseCode::YXRRSet => "YXRRSET".into(),
        ResponseCode::NXRRSet => "NXRRSET".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        ResponseCode::NotZone => "NOTZONE".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// The TSIG error as BIND's tools print it.
pub(crate) fn tsig_error_name(error: &TsigError) -> String {
    match error {
        TsigError::BadSig => "BADSIG".into(),
        TsigError::BadKey => "BADKEY".into(),
        TsigError::BadTime => "BADTIME".into(),
        TsigError::BadTrunc => "BADTRUNC".into(),
        TsigError::Unknown(code) => format!("error {code}"),
    }
}

/// An answer and its bytes (the bytes are what a TSIG signature covers).
pub(crate) struct Answer {
    pub message: Message,
    pub raw: Vec<u8>,
}

/// The receive buffer of one UDP exchange. Our queries carry no EDNS, so a server may answer in
/// at most 512 bytes (RFC 1035 §4.2.1); the buffer leaves room for servers that send more. A
/// datagram that fills it may have been cut, and is taken as truncated: the answer comes over
/// TCP instead, read into a buffer that grows with what arrives. No exchange allocates 64 KiB up
/// front, whatever a (tenant's) server sends or announces.
pub(crate) const UDP_BUFFER: usize = 4096;

/// What the UDP part got.
enum Udp {
    Answer(Answer),
    /// The answer has the TC bit, or did not fit [`UDP_BUFFER`]: ask again over TCP.
    Truncated,
    /// Nothing usable before the deadline, with the reason the last undecodable packet was
    /// dropped, if any.
    Nothing(Option<String>),
}

/// Sends `request` (an encoded message with ID `id`) to `server` and returns the answer with the
/// same ID. UDP first, resent once half-way through `timeout`; TCP when the UDP answer has the
/// TC bit or does not fit [`UDP_BUFFER`]. The whole exchange takes at most `timeout`.
pub(crate) async fn exchange(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    timeout: Duration,
    op: &str,
) -> Result<Answer, Dns01Error> {
    let deadline = Instant::now() + timeout;
    let io_error = |source: io::Error| Dns01Error::Io {
        server: format!("DNS server {server}"),
        op: op.to_string(),
        source,
    };
    let timed_out = || Dns01Error::Timeout {
        server: format!("DNS server {server}"),
        op: op.to_string(),
        timeout,
    };
    let protocol = |detail: String| Dns01Error::Protocol {
        server: format!("DNS server {server}"),
        op: op.to_string(),
        detail,
    };

    let answer = match udp_exchange(server, request, id, deadline)
        .await
        .map_err(io_error)?
    {
        Udp::Answer(answer) => return Ok(answer),
        Udp::Truncated => match timeout_at(deadline, tcp_exchange(server, request)).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => return Err(io_error(e)),
            Ok(Ok(raw)) => raw,
        },
        Udp::Nothing(Some(detail)) => return Err(protocol(detail)),
        Udp::Nothing(None) => return Err(timed_out()),
    };
    let message = Message::from_vec(&answer).map_err(|e| protocol(e.to_string()))?;
    if message.id != id || message.message_type != MessageType::Response {
        return Err(protocol("the TCP answer does not match the request".into()));
    }
    Ok(Answer {
        message,
        raw: answer,
    })
}

/// Whether a datagram's header says it answers request `id` (the ID, and QR set).
fn answers_request(datagram: &[u8], id: u16) -> bool {
    datagram.len() >= 3
        && u16::from_be_bytes([datagram[0], datagram[1]]) == id
        && datagram[2] & 0x80 != 0
}

/// The UDP part.
async fn udp_exchange(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    deadline: Instant,
) -> io::Result<Udp> {
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(request).await?;
    let resend_at = Instant::now() + (deadline - Instant::now()) / 2;
    let mut resent = false;
    let mut undecodable = None;
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let wait_until = if resent { deadline } else { resend_at };
        match timeout_at(wait_until, socket.recv(&mut buf)).await {
            Err(_) if resent => return Ok(Udp::Nothing(undecodable)),
            Err(_) => {
                socket.send(request).await?;
                resent = true;
            }
            Ok(Err(e)) => return Err(e),
            // Filled: perhaps cut by the kernel to the buffer's size.
            Ok(Ok(n)) if n >= buf.len() && answers_request(&buf[..n], id) => {
                return Ok(Udp::Truncated);
            }
            Ok(Ok(n)) => match Message::from_vec(&buf[..n]) {
                Ok(message)
                    if message.id == id && message.message_type == MessageType::Response =>
                {
                    if message.truncation {
                        return Ok(Udp::Truncated);
                    }
                    return Ok(Udp::Answer(Answer {
                        message,
                        raw: buf[..n].to_vec(),
                    }));
                }
                // Someone else's answer (a late one to an earlier request): keep waiting.
                Ok(_) => {}
                Err(e) => undecodable = Some(format!("undecodable answer: {e}")),
            },
        }
    }
}

/// DNS over TCP: a two-byte length, then the message, each way (RFC 1035 §4.2.2).
async fn tcp_exchange(server: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(request.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "request too long for TCP"))?;
    let stream = TcpStream::connect(server).await?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    write_all(&stream, &framed).await?;
    let mut len = [0u8; 2];
    read_exact(&stream, &mut len).await?;
    read_announced(&stream, usize::from(u16::from_be_bytes(len))).await
}

/// Reads `len` bytes into a buffer that grows with what arrives: a server that announces 64 KiB
/// and sends nothing costs nothing.
async fn read_announced(stream: &TcpStream, len: usize) -> io::Result<Vec<u8>> {
    let mut answer = Vec::with_capacity(len.min(UDP_BUFFER));
    let mut chunk = [0u8; 2048];
    while answer.len() < len {
        let want = (len - answer.len()).min(chunk.len());
        stream.readable().await?;
        match stream.try_read(&mut chunk[..want]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(answer)
}

async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        stream.writable().await?;
        match stream.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn read_exact(stream: &TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        stream.readable().await?;
        match stream.try_read(&mut buf[filled..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One query to one server. Any RCODE comes back as an answer; the caller judges it.
pub(crate) async fn query(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    recursion_desired: bool,
    timeout: Duration,
) -> Result<Message, Dns01Error> {
    let mut request = Message::query();
    request.metadata.recursion_desired = recursion_desired;
    request.add_query(Query::query(name.clone(), rtype));
    let op = format!("{rtype} query for {}", name_str(name));
    let bytes = request.to_vec().map_err(|e| Dns01Error::Protocol {
        server: format!("DNS server {server}"),
        op: op.clone(),
        detail: format!("cannot encode the query: {e}"),
    })?;
    Ok(exchange(server, &bytes, request.id, timeout, &op)
        .await?
        .message)
}

/// Asks the servers in order until one gives a usable answer (NOERROR or NXDOMAIN); returns
/// the last error when none does.
pub(crate) async fn query_any(
    servers: &[SocketAddr],
    name: &Name,
    rtype: RecordType,
    recursion_desired: bool,
    timeout: Duration,
) -> Result<(SocketAddr, Message), Dns01Error> {
    let mut last = None;
    for &server in servers {
        match query(server, name, rtype, recursion_desired, timeout).await {
            Ok(answer)
                if matches!(
                    answer.response_code,
                    ResponseCode::NoError | ResponseCode::NXDomain
                ) =>
            {
                return Ok((server, answer));
            }
            Ok(answer) => {
                last = Some(Dns01Error::QueryFailed {
                    server: server.to_string(),
                    name: name_str(name),
                    rtype: rtype.to_string(),
                    rcode: rcode_name(answer.response_code),
                })
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Dns01Error::Config("no DNS server to ask".into())))
}

/// The zone a name belongs to, as one server (or the first of several that answers) sees it.
#[derive(Clone, Debug)]
pub(crate) struct ZoneSoa {
    pub zone: Name,
    pub soa: SOA,
    /// The TTL the SOA record came with.
    pub ttl: u32,
}

/// Finds the zone of `name` by asking for its SOA: an SOA answer for the name itself, or the SOA
/// of the enclosing zone in the authority section of a NODATA/NXDOMAIN answer. When a server has
/// nothing to say (REFUSED, no SOA) the walk goes on with the parent name.
pub(crate) async fn find_zone(
    servers: &[SocketAddr],
    name: &Name,
    recursion_desired: bool,
    timeout: Duration,
) -> Result<ZoneSoa, Dns01Error> {
    let servers_str = servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut candidate = name.clone();
    let mut last_problem = String::from("no SOA record in any answer");
    while !candidate.is_root() {
        match query_any(
            servers,
            &candidate,
            RecordType::SOA,
            recursion_desired,
            timeout,
        )
        .await
        {
            Ok((server, answer)) => {
                let from_answer = answer
                    .answers
                    .iter()
                    .filter(|r| r.name == candidate)
                    .chain(answer.authorities.iter().filter(|r| r.name.zone_of(name)));
                for record in from_answer {
                    if let RData::SOA(soa) = &record.data {
                        return Ok(ZoneSoa {
                            zone: record.name.to_lowercase(),
                            soa: soa.clone(),
                            ttl: record.ttl,
                        });
                    }
                }
                // A referral: the name sits in a child zone this server does not serve.
                if !answer.authoritative
                    && let Some(cut) = answer
                        .authorities
                        .iter()
                        .find(|r| r.record_type() == RecordType::NS && r.name.zone_of(name))
                {
                    return Err(Dns01Error::ZoneNotFound {
                        name: name_str(name),
                        server: server.to_string(),
                        detail: format!(
                            "the name is delegated to zone {}, which this server does not serve",
                            name_str(&cut.name)
                        ),
                    });
                }
            }
            // The servers cannot be reached: asking about the parent will not help.
            Err(e @ (Dns01Error::Io { .. } | Dns01Error::Timeout { .. })) => return Err(e),
            Err(e) => last_problem = e.to_string(),
        }
        candidate = candidate.base_name();
    }
    Err(Dns01Error::ZoneNotFound {
        name: name_str(name),
        server: servers_str,
        detail: last_problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = parse_name("_acme-challenge.Example.TEST.").unwrap();
        assert!(n.is_fqdn());
        assert_eq!(name_str(&n), "_acme-challenge.example.test");
        assert_eq!(parse_name("a.b").unwrap(), parse_name("A.B.").unwrap());
        assert!(matches!(
            parse_name(" . "),
            Err(Dns01Error::InvalidName { .. })
        ));
        let long = "a".repeat(64);
        assert!(parse_name(&format!("{long}.test")).is_err());
    }

    #[test]
    fn rcode_names() {
        assert_eq!(rcode_name(ResponseCode::Refused), "REFUSED");
        assert_eq!(rcode_name(ResponseCode::NotAuth), "NOTAUTH");
        assert_eq!(rcode_name(<ResponseCode as From<u16>>::from(12)), "RCODE12");
    }

    /// A server that answers every query with a truncated UDP answer, and fully over TCP: the
    /// exchange must retry over TCP and return the TCP answer.
    #[tokio::test]
    async fn falls_back_to_tcp_on_truncation() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let reply = |request: &[u8], truncated: bool| {
            let request = Message::from_vec(request).unwrap();
            let mut answer = Message::response(request.id, request.op_code);
            answer.add_queries(request.queries.clone());
            answer.metadata.truncation = truncated;
            if !truncated {
                answer.add_answer(hickory_proto::rr::Record::from_rdata(
                    request.queries[0].name().clone(),
                    5,
                    RData::TXT(hickory_proto::rr::rdata::TXT::new(vec!["over-tcp".into()])),
                ));
            }
            answer.to_vec().unwrap()
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
                udp.send_to(&reply(&buf[..n], true), peer).await.unwrap();
            }
        });
        tokio::spawn(async move {
            let (stream, _) = tcp.accept().await.unwrap();
            let mut len = [0u8; 2];
            read_exact(&stream, &mut len).await.unwrap();
            let mut request = vec![0u8; usize::from(u16::from_be_bytes(len))];
            read_exact(&stream, &mut request).await.unwrap();
            let answer = reply(&request, false);
            let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&answer);
            write_all(&stream, &framed).await.unwrap();
        });
        let server: SocketAddr = ([127, 0, 0, 1], port).into();
        let name = parse_name("t.example.test").unwrap();
        let answer = query(
            server,
            &name,
            RecordType::TXT,
            false,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert!(!answer.truncation);
        assert_eq!(answer.answers.len(), 1, "{answer:?}");
    }

    /// A server whose UDP answer (no TC bit) is larger than [`UDP_BUFFER`]: 1,500 TXT
    /// records, about 32 KB. The datagram is cut to the buffer, so the exchange asks again over
    /// TCP and returns the whole TCP answer, read as it arrives.
    #[tokio::test]
    async fn an_oversized_udp_answer_is_asked_again_over_tcp() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let reply = |request: &[u8], marker: &str| {
            let request = Message::from_vec(request).unwrap();
            let mut answer = Message::response(request.id, request.op_code);
            answer.add_queries(request.queries.clone());
            for i in 0..1_500 {
                answer.add_answer(hickory_proto::rr::Record::from_rdata(
                    request.queries[0].name().clone(),
                    5,
                    RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![format!(
                        "{marker}{i:05}"
                    )])),
                ));
            }
            answer.to_vec().unwrap()
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
                let big = reply(&buf[..n], "udp");
                assert!(
                    big.len() > UDP_BUFFER && big.len() < 65_000,
                    "{}",
                    big.len()
                );
                udp.send_to(&big, peer).await.unwrap();
            }
        });
        tokio::spawn(async move {
            let (stream, _) = tcp.accept().await.unwrap();
            let mut len = [0u8; 2];
            read_exact(&stream, &mut len).await.unwrap();
            let mut request = vec![0u8; usize::from(u16::from_be_bytes(len))];
            read_exact(&stream, &mut request).await.unwrap();
            let answer = reply(&request, "tcp");
            let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&answer);
            write_all(&stream, &framed).await.unwrap();
        });
        let server: SocketAddr = ([127, 0, 0, 1], port).into();
        let name = parse_name("t.example.test").unwrap();
        let answer = query(
            server,
            &name,
            RecordType::TXT,
            false,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!(answer.answers.len(), 1_500);
        let first = match &answer.answers[0].data {
            RData::TXT(txt) => String::from_utf8_lossy(&txt.txt_data[0]).into_owned(),
            other => panic!("{other:?}"),
        };
        assert!(first.starts_with("tcp"), "{first}");
    }

    /// A TCP server that announces a 65,535-byte answer, sends ten bytes and hangs up: an error
    /// (not a hang, not a 64 KiB buffer filled with zeros).
    #[tokio::test]
    async fn a_tcp_answer_shorter_than_announced_is_an_error() {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = tcp.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = tcp.accept().await.unwrap();
            let mut request = [0u8; 4];
            read_exact(&stream, &mut request).await.unwrap();
            let mut framed = 65_535u16.to_be_bytes().to_vec();
            framed.extend_from_slice(&[0u8; 10]);
            write_all(&stream, &framed).await.unwrap();
        });
        let err = tokio::time::timeout(Duration::from_secs(5), tcp_exchange(server, b"\0\0"))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }

    #[test]
    fn udp_headers_are_matched_to_the_request() {
        assert!(answers_request(&[0x12, 0x34, 0x80, 0], 0x1234));
        assert!(!answers_request(&[0x12, 0x34, 0x00, 0], 0x1234), "a query");
        assert!(!answers_request(&[0x12, 0x35, 0x80, 0], 0x1234));
        assert!(!answers_request(&[0x12], 0x1234));
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        // Bound but never answering.
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = udp.local_addr().unwrap();
        let name = parse_name("t.example.test").unwrap();
        let started = std::time::Instant::now();
        let err = query(
            server,
            &name,
            RecordType::TXT,
            false,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Dns01Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(err.to_string().contains(&server.to_string()), "{err}");
        drop(udp);
    }
}
