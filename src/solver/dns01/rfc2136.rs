//! RFC 2136 dynamic updates signed with TSIG (RFC 8945), for BIND, Knot, PowerDNS and friends.
//!
//! - Transport: UDP, retried over TCP when an answer comes back truncated; one exchange takes at
//!   most [`DEFAULT_TIMEOUT`](super::DEFAULT_TIMEOUT) unless changed with [`Rfc2136::with_timeout`].
//! - Zone: unless set with [`Rfc2136::with_zone`], the zone to update is found by asking the
//!   configured nameserver itself for the SOA of the record's name (walking up the labels until
//!   it answers with an SOA), so split-horizon setups see the zone the primary serves.
//! - TSIG: `HMACSHA256` and `HMACSHA512` (hickory-proto signs only the SHA-2 HMACs). `HMACMD5`
//!   (cert-manager's default when `tsigAlgorithm` is not set) and `HMACSHA1` are refused with a
//!   clear error. The secret is the base64 text of a BIND key file (`tsig-keygen`). Answers to
//!   a signed update must carry a valid TSIG signature.
//! - Without `tsigKeyName` the updates go unsigned (for servers that allow updates by address).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig, general_purpose};
use futures::future::BoxFuture;
use hickory_proto::op::{Message, ResponseCode, update_message};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm as HickoryTsigAlgorithm;
use hickory_proto::rr::rdata::{CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordSet, RecordType, TSigner};

use super::wire::{self, name_str, parse_name, rcode_name, tsig_error_name};
use super::{DEFAULT_TIMEOUT, Dns01Error, DnsProvider, ServerAddr};
use crate::api::issuer::{Rfc2136Provider, TsigAlgorithm};

/// The TTL of the TXT records we add (cert-manager uses the same).
pub const DEFAULT_TTL: u32 = 60;

/// How far apart our clock and the server's may be (RFC 8945 recommends 300 s).
const TSIG_FUDGE: u16 = 300;

/// A TSIG key: its name as the server knows it, its algorithm, and the decoded secret.
#[derive(Clone)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl TsigKey {
    /// A key from the base64 secret of a BIND key file (as held in the Secret; surrounding
    /// whitespace and missing padding are accepted).
    pub fn from_base64(
        name: &str,
        algorithm: TsigAlgorithm,
        secret_base64: &[u8],
    ) -> Result<Self, Dns01Error> {
        const LENIENT: GeneralPurpose = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let text = std::str::from_utf8(secret_base64)
            .map_err(|_| Dns01Error::Config(format!("TSIG secret of key {name}: not base64 text")))?
            .trim();
        let secret = LENIENT
            .decode(text)
            .or_else(|_| general_purpose::STANDARD.decode(text))
            .map_err(|e| {
                // Not `e` itself: base64's words quote the offending byte of the secret.
                let why = match e {
                    base64::DecodeError::InvalidByte(offset, _) => {
                        format!("a character that is not base64 at offset {offset}")
                    }
                    base64::DecodeError::InvalidLastSymbol(offset, _) => {
                        format!("a bad last character at offset {offset}")
                    }
                    base64::DecodeError::InvalidLength(_) => "a wrong length".to_string(),
                    base64::DecodeError::InvalidPadding => "bad padding".to_string(),
                };
                Dns01Error::Config(format!("TSIG secret of key {name}: bad base64: {why}"))
            })?;
        if secret.is_empty() {
            return Err(Dns01Error::Config(format!(
                "TSIG secret of key {name} is empty"
            )));
        }
        Ok(TsigKey {
            name: name.trim().to_string(),
            algorithm,
            secret,
        })
    }

    fn signer(&self) -> Result<TSigner, Dns01Error> {
        let algorithm = hickory_algorithm(self.algorithm)?;
        let name = parse_name(&self.name)?;
        TSigner::new(self.secret.clone(), algorithm, name, TSIG_FUDGE)
            .map_err(|e| Dns01Error::Config(format!("TSIG key {}: {e}", self.name)))
    }
}

/// The hickory algorithm for a spec value, or [`Dns01Error::UnsupportedAlgorithm`].
pub fn hickory_algorithm(algorithm: TsigAlgorithm) -> Result<HickoryTsigAlgorithm, Dns01Error> {
    match algorithm {
        TsigAlgorithm::HMACSHA256 => Ok(HickoryTsigAlgorithm::HmacSha256),
        TsigAlgorithm::HMACSHA512 => Ok(HickoryTsigAlgorithm::HmacSha512),
        TsigAlgorithm::HMACMD5 | TsigAlgorithm::HMACSHA1 => Err(Dns01Error::UnsupportedAlgorithm {
            algorithm: format!("{algorithm:?}"),
        }),
    }
}

/// An RFC 2136 provider bound to one primary nameserver (and optionally one TSIG key).
#[derive(Clone)]
pub struct Rfc2136 {
    server: ServerAddr,
    signer: Option<TSigner>,
    zone: Option<Name>,
    timeout: Duration,
    ttl: u32,
}

impl std::fmt::Debug for Rfc2136 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136")
            .field("server", &self.server.to_string())
            .field(
                "key",
                &self.signer.as_ref().map(|s| name_str(s.signer_name())),
            )
            .field("zone", &self.zone.as_ref().map(name_str))
            .finish()
    }
}

impl Rfc2136 {
    /// A provider for `nameserver` (`host`, `host:port`, `[v6]:port`; port 53 by default),
    /// signing with `tsig` when given. Checks the address and key now; sends nothing.
    pub fn new(nameserver: &str, tsig: Option<TsigKey>) -> Result<Self, Dns01Error> {
        let server = ServerAddr::parse(nameserver, 53)?;
        let signer = tsig.as_ref().map(TsigKey::signer).transpose()?;
        Ok(Rfc2136 {
            server,
            signer,
            zone: None,
            timeout: DEFAULT_TIMEOUT,
            ttl: DEFAULT_TTL,
        })
    }

    /// A provider from an Issuer's `dns01.rfc2136` and the bytes of the key the
    /// `tsigSecretSecretRef` points at (the base64 secret). `tsigAlgorithm` defaults to
    /// `HMACMD5` as in cert-manager, which is refused: see the module docs.
    pub fn from_spec(
        spec: &Rfc2136Provider,
        tsig_secret: Option<&[u8]>,
    ) -> Result<Self, Dns01Error> {
        let key = match (&spec.tsig_key_name, tsig_secret) {
            (None, _) => None,
            (Some(name), Some(secret)) => Some(TsigKey::from_base64(
                name,
                spec.tsig_algorithm.unwrap_or_default(),
                secret,
            )?),
            (Some(name), None) => {
                return Err(Dns01Error::Config(format!(
                    "tsigKeyName {name} is set but no TSIG secret was given (tsigSecretSecretRef)"
                )));
            }
        };
        Rfc2136::new(&spec.nameserver, key)
    }

    /// Always update this zone instead of looking the zone up by SOA.
    pub fn with_zone(mut self, zone: &str) -> Result<Self, Dns01Error> {
        self.zone = Some(parse_name(zone)?);
        Ok(self)
    }

    /// The time one exchange with the server may take (default 2 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The TTL of records added (default 60 s).
    pub fn with_ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// The nameserver updates go to.
    pub fn nameserver(&self) -> &ServerAddr {
        &self.server
    }

    /// The zone an update of `name` goes to: the configured one, or the one the nameserver
    /// reports by SOA.
    pub async fn zone_for(&self, name: &str) -> Result<String, Dns01Error> {
        let name = parse_name(name)?;
        Ok(name_str(&self.zone_name(&name).await?))
    }

    /// Adds the TXT value `value` at `name`, keeping other values (RFC 2136 §2.5.1).
    pub async fn add_txt(&self, name: &str, value: &str) -> Result<(), Dns01Error> {
        let owner = parse_name(name)?;
        let rdata = txt_rdata(value);
        self.update(
            &owner,
            format!("add TXT {value:?} at {}", name_str(&owner)),
            |zone| {
                update_message::append(
                    self.rrset(&owner, RecordType::TXT, rdata),
                    zone,
                    false,
                    false,
                )
            },
        )
        .await
    }

    /// Deletes the TXT value `value` at `name`, and only it (RFC 2136 §2.5.4). Deleting a value
    /// that is not there succeeds.
    pub async fn delete_txt(&self, name: &str, value: &str) -> Result<(), Dns01Error> {
        let owner = parse_name(name)?;
        let rdata = txt_rdata(value);
        self.update(
            &owner,
            format!("delete TXT {value:?} at {}", name_str(&owner)),
            |zone| {
                update_message::delete_by_rdata(
                    self.rrset(&owner, RecordType::TXT, rdata),
                    zone,
                    false,
                )
            },
        )
        .await
    }

    /// Sets a CNAME at `name` pointing at `target` (for delegating `_acme-challenge` names, and
    /// for tests). The server refuses it when `name` has other records.
    pub async fn add_cname(&self, name: &str, target: &str) -> Result<(), Dns01Error> {
        let owner = parse_name(name)?;
        let rdata = RData::CNAME(CNAME(parse_name(target)?));
        self.update(
            &owner,
            format!("add CNAME {} -> {}", name_str(&owner), normalize(target)),
            |zone| {
                update_message::append(
                    self.rrset(&owner, RecordType::CNAME, rdata),
                    zone,
                    false,
                    false,
                )
            },
        )
        .await
    }

    /// Deletes the CNAME at `name`, if any (RFC 2136 §2.5.2).
    pub async fn delete_cname(&self, name: &str) -> Result<(), Dns01Error> {
        let owner = parse_name(name)?;
        self.update(
            &owner,
            format!("delete CNAME at {}", name_str(&owner)),
            |zone| {
                update_message::delete_rrset(
                    Record::update0(owner.clone(), 0, RecordType::CNAME),
                    zone,
                    false,
                )
            },
        )
        .await
    }

    fn rrset(&self, owner: &Name, rtype: RecordType, rdata: RData) -> RecordSet {
        let mut rrset = RecordSet::with_ttl(owner.clone(), rtype, self.ttl);
        rrset.add_rdata(rdata);
        rrset
    }

    async fn zone_name(&self, name: &Name) -> Result<Name, Dns01Error> {
        if let Some(zone) = &self.zone {
            return Ok(zone.clone());
        }
        let servers = self.server.resolve().await?;
        Ok(wire::find_zone(&servers, name, false, self.timeout)
            .await?
            .zone)
    }

    /// Builds the update for the zone of `owner`, signs it, sends it and judges the answer.
    async fn update(
        &self,
        owner: &Name,
        op: String,
        build: impl FnOnce(Name) -> Message,
    ) -> Result<(), Dns01Error> {
        let zone = self.zone_name(owner).await?;
        if !zone.zone_of(owner) {
            return Err(Dns01Error::Config(format!(
                "{} is not in zone {}",
                name_str(owner),
                name_str(&zone)
            )));
        }
        let servers = self.server.resolve().await?;
        let mut message = build(zone.clone());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let protocol = |detail: String| Dns01Error::Protocol {
            server: format!("DNS server {}", self.server),
            op: op.clone(),
            detail,
        };
        let mut verifier = match &self.signer {
            Some(signer) => message
                .finalize(signer, now)
                .map_err(|e| protocol(format!("cannot sign the update: {e}")))?,
            None => None,
        };
        let request = message
            .to_vec()
            .map_err(|e| protocol(format!("cannot encode the update: {e}")))?;

        let mut last = None;
        for server in servers {
            match wire::exchange(server, &request, message.id, self.timeout, &op).await {
                Ok(answer) => {
                    let rejected = |rcode: String| Dns01Error::UpdateRejected {
                        server: server.to_string(),
                        zone: name_str(&zone),
                        op: op.clone(),
                        rcode,
                        tsig_error: answer
                            .message
                            .signature()
                            .and_then(|sig| sig.data.error.as_ref())
                            .map(tsig_error_name),
                    };
                    if answer.message.response_code != ResponseCode::NoError {
                        return Err(rejected(rcode_name(answer.message.response_code)));
                    }
                    if let Some(verifier) = verifier.as_mut() {
                        verifier
                            .verify(&answer.raw)
                            .map_err(|e| Dns01Error::Protocol {
                                server: format!("DNS server {server}"),
                                op: op.clone(),
                                detail: format!("the answer's TSIG signature does not verify: {e}"),
                            })?;
                    }
                    tracing::debug!(server = %server, zone = %name_str(&zone), "{op}: done");
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| protocol("the nameserver has no address".into())))
    }
}

impl DnsProvider for Rfc2136 {
    fn present<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>> {
        Box::pin(self.add_txt(fqdn, value))
    }

    fn clean_up<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>> {
        Box::pin(self.delete_txt(fqdn, value))
    }
}

fn normalize(name: &str) -> String {
    super::normalize_name(name)
}

/// TXT data for a value: one character-string, or several of at most 255 bytes for a longer
/// value (challenge values are 43 characters).
fn txt_rdata(value: &str) -> RData {
    let chunks: Vec<&[u8]> = if value.is_empty() {
        vec![b"".as_slice()]
    } else {
        value.as_bytes().chunks(255).collect()
    };
    RData::TXT(TXT::from_bytes(chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "xkbDPqfLctqyI9Yr3BbvB7MuQvKnmXj7GyvoML2UAVs=";

    #[test]
    fn algorithms() {
        assert_eq!(
            hickory_algorithm(TsigAlgorithm::HMACSHA256).unwrap(),
            HickoryTsigAlgorithm::HmacSha256
        );
        assert_eq!(
            hickory_algorithm(TsigAlgorithm::HMACSHA512).unwrap(),
            HickoryTsigAlgorithm::HmacSha512
        );
        for alg in [TsigAlgorithm::HMACMD5, TsigAlgorithm::HMACSHA1] {
            let err = hickory_algorithm(alg).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("{alg:?} is not supported")),
                "{err}"
            );
        }
    }

    #[test]
    fn secrets() {
        let key = TsigKey::from_base64(
            "k",
            TsigAlgorithm::HMACSHA256,
            format!(" {SECRET}\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(key.secret.len(), 32);
        let unpadded = SECRET.trim_end_matches('=');
        assert_eq!(
            TsigKey::from_base64("k", TsigAlgorithm::HMACSHA256, unpadded.as_bytes())
                .unwrap()
                .secret,
            key.secret
        );
        assert!(!format!("{key:?}").contains(SECRET));
        // A secret with one wrong character: the error names where, not the character.
        let err = TsigKey::from_base64("k", TsigAlgorithm::HMACSHA256, b"c2VjcmV0#mFzZTY0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("offset 8"), "{err}");
        assert!(!err.contains('#') && !err.contains("35"), "{err}");
        for bad in ["", "not base64!", "\u{e9}"] {
            let err =
                TsigKey::from_base64("k", TsigAlgorithm::HMACSHA256, bad.as_bytes()).unwrap_err();
            assert!(matches!(err, Dns01Error::Config(_)), "{bad}: {err}");
        }
    }

    fn spec(alg: Option<TsigAlgorithm>) -> Rfc2136Provider {
        Rfc2136Provider {
            nameserver: "[::1]:5353".into(),
            tsig_key_name: Some("ferrocert-test".into()),
            tsig_algorithm: alg,
            tsig_secret_secret_ref: None,
        }
    }

    #[test]
    fn from_spec() {
        let p = Rfc2136::from_spec(
            &spec(Some(TsigAlgorithm::HMACSHA512)),
            Some(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(p.nameserver().to_string(), "[::1]:5353");
        // The CRD's default algorithm is cert-manager's HMACMD5, which we cannot sign with.
        let err = Rfc2136::from_spec(&spec(None), Some(SECRET.as_bytes())).unwrap_err();
        assert!(
            matches!(err, Dns01Error::UnsupportedAlgorithm { .. }),
            "{err}"
        );
        let err = Rfc2136::from_spec(&spec(Some(TsigAlgorithm::HMACSHA256)), None).unwrap_err();
        assert!(err.to_string().contains("tsigSecretSecretRef"), "{err}");
        let unsigned = Rfc2136Provider {
            nameserver: "127.0.0.1".into(),
            ..Default::default()
        };
        let p = Rfc2136::from_spec(&unsigned, None).unwrap();
        assert_eq!(p.nameserver().port, 53);
        assert!(p.signer.is_none());
        let err = Rfc2136::new("127.0.0.1:x", None).unwrap_err();
        assert!(matches!(err, Dns01Error::Config(_)));
    }

    #[test]
    fn txt_data_is_split_at_255_bytes() {
        let RData::TXT(txt) = txt_rdata("abc") else {
            unreachable!()
        };
        assert_eq!(txt.txt_data.len(), 1);
        let long = "x".repeat(300);
        let RData::TXT(txt) = txt_rdata(&long) else {
            unreachable!()
        };
        assert_eq!(
            txt.txt_data.iter().map(|s| s.len()).collect::<Vec<_>>(),
            [255, 45]
        );
    }

    /// The update is a signed RFC 2136 message: zone section with the zone's SOA, the TXT in
    /// the update section with the zone's class (add) or NONE (delete), and a TSIG record.
    #[test]
    fn update_messages() {
        let p = Rfc2136::new(
            "127.0.0.1",
            Some(TsigKey::from_base64("k", TsigAlgorithm::HMACSHA256, SECRET.as_bytes()).unwrap()),
        )
        .unwrap();
        let owner = parse_name("_acme-challenge.a.example.test").unwrap();
        let zone = parse_name("example.test").unwrap();
        let mut add = update_message::append(
            p.rrset(&owner, RecordType::TXT, txt_rdata("v1")),
            zone.clone(),
            false,
            false,
        );
        add.finalize(p.signer.as_ref().unwrap(), 1_700_000_000)
            .unwrap();
        let decoded = Message::from_vec(&add.to_vec().unwrap()).unwrap();
        assert_eq!(decoded.op_code, hickory_proto::op::OpCode::Update);
        assert_eq!(decoded.queries[0].name(), &zone);
        assert_eq!(decoded.queries[0].query_type(), RecordType::SOA);
        // In an UPDATE the "authority" section is the update section.
        let update = &decoded.authorities[0];
        assert_eq!(update.name, owner);
        assert_eq!(update.dns_class, hickory_proto::rr::DNSClass::IN);
        assert_eq!(update.ttl, DEFAULT_TTL);
        let sig = decoded.signature().expect("signed");
        assert_eq!(name_str(&sig.name), "k");
        assert_eq!(sig.data.algorithm, HickoryTsigAlgorithm::HmacSha256);

        let del = update_message::delete_by_rdata(
            p.rrset(&owner, RecordType::TXT, txt_rdata("v1")),
            zone,
            false,
        );
        let decoded = Message::from_vec(&del.to_vec().unwrap()).unwrap();
        assert_eq!(
            decoded.authorities[0].dns_class,
            hickory_proto::rr::DNSClass::NONE
        );
        assert_eq!(decoded.authorities[0].ttl, 0);
    }
}
