// Command cm-webhook-solver is a cert-manager DNS-01 webhook solver for the local test
// environment: an aggregated API server, built on cert-manager's own webhook server library,
// whose one solver (`rfc2136`) writes the challenge TXT records into BIND with TSIG-signed
// RFC 2136 dynamic updates.
//
// The API group comes from $GROUP_NAME. The solver config (the `config` of the Issuer's webhook
// solver) is
//
//	{"nameserver": "127.0.0.1:5353", "tsigKeyName": "ferrocert-test.",
//	 "tsigAlgorithm": "hmac-sha256", "tsigSecret": "<base64>"}
//
// Built by tests/env/build.sh; not part of the product.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
	restclient "k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/pkg/acme/webhook/apis/acme/v1alpha1"
	"github.com/cert-manager/cert-manager/pkg/acme/webhook/cmd"
)

const (
	solverName = "rfc2136"
	// TTL of the TXT records written.
	recordTTL = 5
	// Bound on every DNS exchange (dial, write and read together).
	dnsTimeout = 5 * time.Second
)

func main() {
	groupName := os.Getenv("GROUP_NAME")
	if groupName == "" {
		fmt.Fprintln(os.Stderr, "cm-webhook-solver: GROUP_NAME must be set to the API group the solver is served under (e.g. acme.ferrocert.test)")
		os.Exit(2)
	}
	cmd.RunWebhookServer(groupName, &rfc2136Solver{})
}

// solverConfig is the solver's `config` JSON.
type solverConfig struct {
	Nameserver    string `json:"nameserver"`
	TSIGKeyName   string `json:"tsigKeyName"`
	TSIGAlgorithm string `json:"tsigAlgorithm"`
	TSIGSecret    string `json:"tsigSecret"`
}

// algorithms maps the accepted spellings (lower case, without '-' and the final '.') to
// miekg/dns's algorithm names: "hmac-sha256", "hmac-sha256." and "HMACSHA256" are all one.
var algorithms = map[string]string{
	"hmacsha1":   dns.HmacSHA1,
	"hmacsha224": dns.HmacSHA224,
	"hmacsha256": dns.HmacSHA256,
	"hmacsha384": dns.HmacSHA384,
	"hmacsha512": dns.HmacSHA512,
}

// loadConfig decodes and checks the request's config. The returned config has the nameserver
// as host:port, the key name fully qualified and the algorithm in miekg/dns's form.
func loadConfig(ch *v1alpha1.ChallengeRequest) (solverConfig, error) {
	var cfg solverConfig
	if ch.Config == nil || len(ch.Config.Raw) == 0 {
		return cfg, errors.New("rfc2136 solver: no config: nameserver, tsigKeyName, tsigAlgorithm and tsigSecret are required")
	}
	dec := json.NewDecoder(strings.NewReader(string(ch.Config.Raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("rfc2136 solver: invalid config: %w", err)
	}
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"nameserver", cfg.Nameserver},
		{"tsigKeyName", cfg.TSIGKeyName},
		{"tsigAlgorithm", cfg.TSIGAlgorithm},
		{"tsigSecret", cfg.TSIGSecret},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return cfg, fmt.Errorf("rfc2136 solver: invalid config: missing %s", strings.Join(missing, ", "))
	}

	host, port, err := net.SplitHostPort(cfg.Nameserver)
	if err != nil {
		// A bare host (or IPv6 address) means the standard port.
		host, port = strings.Trim(cfg.Nameserver, "[]"), "53"
	}
	if host == "" || port == "" {
		return cfg, fmt.Errorf("rfc2136 solver: invalid config: nameserver %q is not host:port", cfg.Nameserver)
	}
	cfg.Nameserver = net.JoinHostPort(host, port)

	norm := strings.TrimSuffix(strings.ReplaceAll(strings.ToLower(cfg.TSIGAlgorithm), "-", ""), ".")
	alg, ok := algorithms[norm]
	if !ok {
		return cfg, fmt.Errorf("rfc2136 solver: invalid config: tsigAlgorithm %q is not one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512", cfg.TSIGAlgorithm)
	}
	cfg.TSIGAlgorithm = alg

	if _, err := base64.StdEncoding.DecodeString(cfg.TSIGSecret); err != nil {
		return cfg, fmt.Errorf("rfc2136 solver: invalid config: tsigSecret is not base64: %w", err)
	}
	// miekg/dns looks secrets up by canonical name: lower case and fully qualified.
	cfg.TSIGKeyName = dns.CanonicalName(cfg.TSIGKeyName)
	return cfg, nil
}

// rfc2136Solver implements github.com/cert-manager/cert-manager/pkg/acme/webhook.Solver.
type rfc2136Solver struct {
	// Kept for completeness: the solver reads no Kubernetes object.
	kubeConfig *restclient.Config
}

func (s *rfc2136Solver) Name() string { return solverName }

// Present adds the TXT record ResolvedFQDN = Key. Adding an RR that is already there is a
// no-op in DNS, so presenting twice is harmless.
func (s *rfc2136Solver) Present(ch *v1alpha1.ChallengeRequest) error {
	return s.update(ch, true)
}

// CleanUp deletes exactly the RR ResolvedFQDN TXT Key, leaving the name's other TXT values.
func (s *rfc2136Solver) CleanUp(ch *v1alpha1.ChallengeRequest) error {
	return s.update(ch, false)
}

// Initialize only keeps the client config: it must not need a cluster.
func (s *rfc2136Solver) Initialize(kubeClientConfig *restclient.Config, _ <-chan struct{}) error {
	s.kubeConfig = kubeClientConfig
	return nil
}

func (s *rfc2136Solver) update(ch *v1alpha1.ChallengeRequest, add bool) error {
	action, prep := "remove", "from"
	if add {
		action, prep = "add", "to"
	}
	cfg, err := loadConfig(ch)
	if err != nil {
		return err
	}
	if ch.ResolvedFQDN == "" || ch.ResolvedZone == "" {
		return fmt.Errorf("rfc2136 solver: the request has no resolvedFQDN or resolvedZone (dnsName %q)", ch.DNSName)
	}
	fqdn, zone := dns.Fqdn(ch.ResolvedFQDN), dns.Fqdn(ch.ResolvedZone)

	rr := &dns.TXT{
		Hdr: dns.RR_Header{Name: fqdn, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: recordTTL},
		Txt: []string{ch.Key},
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	if add {
		m.Insert([]dns.RR{rr})
	} else {
		m.Remove([]dns.RR{rr}) // class NONE: deletes this RR only (RFC 2136 section 2.5.4)
	}
	m.SetTsig(cfg.TSIGKeyName, cfg.TSIGAlgorithm, 300, time.Now().Unix())

	c := &dns.Client{
		Net:        "udp",
		Timeout:    dnsTimeout,
		TsigSecret: map[string]string{cfg.TSIGKeyName: cfg.TSIGSecret},
	}
	what := fmt.Sprintf("%s TXT %q %s %s in zone %s at %s (key %s)", action, ch.Key, prep, fqdn, zone, cfg.Nameserver, cfg.TSIGKeyName)
	reply, _, err := c.Exchange(m, cfg.Nameserver)
	// A refused update comes back with an error rcode; when the server could not check our
	// signature (wrong secret or key name) its reply carries an unsigned TSIG with the TSIG
	// error, which miekg/dns also reports as a bad signature: say what the server said first.
	if reply != nil && reply.Rcode != dns.RcodeSuccess {
		msg := rcodeText(reply.Rcode)
		if t := reply.IsTsig(); t != nil && t.Error != 0 {
			msg += ", TSIG error " + rcodeText(int(t.Error))
		}
		return fmt.Errorf("rfc2136 solver: DNS update refused: %s: server replied %s", what, msg)
	}
	if err != nil {
		return fmt.Errorf("rfc2136 solver: DNS update failed: %s: %w", what, err)
	}
	if reply == nil {
		return fmt.Errorf("rfc2136 solver: DNS update failed: %s: no reply", what)
	}
	klog.InfoS("DNS update done", "action", action, "fqdn", fqdn, "zone", zone, "nameserver", cfg.Nameserver, "uid", ch.UID)
	return nil
}

func rcodeText(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", rcode)
}
