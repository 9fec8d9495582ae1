// Package natsconn turns command-line flags and environment variables into
// a NATS connection that reconnects forever with backoff: the one way the
// ntkbus binaries connect to a cluster.
package natsconn

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"ntkbus/protocol"
)

// Flags are the connection settings. Every flag has an environment
// variable, which sets its default:
//
//	--nats        NTKBUS_NATS_URL       server URLs, comma-separated
//	--user        NTKBUS_NATS_USER      user name (with --password)
//	--password    NTKBUS_NATS_PASSWORD
//	--creds       NTKBUS_NATS_CREDS     a .creds file (JWT and nkey seed)
//	--nkey        NTKBUS_NATS_NKEY      an nkey seed file
//	              NTKBUS_NATS_NKEY_SEED an nkey seed itself (containers; no flag, so
//	                                    that no secret is on a command line)
//	--tls-ca      NTKBUS_NATS_TLS_CA    CA certificate to trust
//	--tls-cert    NTKBUS_NATS_TLS_CERT  client certificate (with --tls-key)
//	--tls-key     NTKBUS_NATS_TLS_KEY
//	--prefix      NTKBUS_PREFIX         subject prefix (default ntkbus)
//	--identity    NTKBUS_IDENTITY       the credential's name in subjects (default: --user)
type Flags struct {
	URL, User, Password, Creds, NKey, TLSCA, TLSCert, TLSKey, Prefix, IdentityName string
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// Register adds the flags to fs, with defaultURL when NTKBUS_NATS_URL is unset.
func (f *Flags) Register(fs *flag.FlagSet, defaultURL, urlHelp string) {
	fs.StringVar(&f.URL, "nats", env("NTKBUS_NATS_URL", defaultURL), urlHelp+" (env NTKBUS_NATS_URL)")
	fs.StringVar(&f.User, "user", env("NTKBUS_NATS_USER", ""), "NATS user (env NTKBUS_NATS_USER)")
	fs.StringVar(&f.Password, "password", env("NTKBUS_NATS_PASSWORD", ""), "NATS password (env NTKBUS_NATS_PASSWORD)")
	fs.StringVar(&f.Creds, "creds", env("NTKBUS_NATS_CREDS", ""), "NATS credentials file (env NTKBUS_NATS_CREDS)")
	fs.StringVar(&f.NKey, "nkey", env("NTKBUS_NATS_NKEY", ""), "NATS nkey seed file (env NTKBUS_NATS_NKEY)")
	fs.StringVar(&f.TLSCA, "tls-ca", env("NTKBUS_NATS_TLS_CA", ""), "CA certificate for TLS (env NTKBUS_NATS_TLS_CA)")
	fs.StringVar(&f.TLSCert, "tls-cert", env("NTKBUS_NATS_TLS_CERT", ""), "client certificate for TLS (env NTKBUS_NATS_TLS_CERT)")
	fs.StringVar(&f.TLSKey, "tls-key", env("NTKBUS_NATS_TLS_KEY", ""), "client key for TLS (env NTKBUS_NATS_TLS_KEY)")
	fs.StringVar(&f.Prefix, "prefix", env("NTKBUS_PREFIX", protocol.DefaultPrefix), "subject prefix (env NTKBUS_PREFIX)")
	fs.StringVar(&f.IdentityName, "identity", env("NTKBUS_IDENTITY", ""), "the credential's name in subjects: samplers ask for snapshot chunks on <prefix>.snap.<run>.<identity> and get them on _INBOX_<identity>.> (default: the --user name, else sampler; env NTKBUS_IDENTITY)")
}

// Identity is the name that scopes this credential's subjects (chunk
// requests and inboxes): --identity, else the --user name, else def. A
// server's permissions must grant the same name (deploy/secrets/users.conf).
func (f *Flags) Identity(def string) (string, error) {
	id := f.IdentityName
	if id == "" {
		id = f.User
	}
	if id == "" {
		id = def
	}
	if err := protocol.ValidIdentity(id); err != nil {
		return "", fmt.Errorf("--identity (or --user) %q cannot name subjects: %w", id, err)
	}
	return id, nil
}

// ValidateURL checks --nats: one or more comma-separated server URLs, each
// nats://, tls://, ws:// or wss:// with a host (and an optional port), or
// host:port. nats.go would take "nats//host:4222" for the host "nats" and
// retry it forever.
func (f *Flags) ValidateURL() error {
	if strings.TrimSpace(f.URL) == "" {
		return errors.New("--nats: no server URL")
	}
	for _, raw := range strings.Split(f.URL, ",") {
		orig := strings.TrimSpace(raw)
		bad := func(why string) error {
			return fmt.Errorf("--nats %q: %s (want nats://host:port, comma-separated)", orig, why)
		}
		u := orig
		if !strings.Contains(u, "://") {
			host, port, err := net.SplitHostPort(u)
			if err != nil || host == "" || strings.ContainsAny(host, "/\\ ") {
				return bad("not a URL")
			}
			u = "nats://" + net.JoinHostPort(host, port)
		}
		p, err := url.Parse(u)
		if err != nil {
			return bad("not a URL")
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return bad(fmt.Sprintf("scheme %q", p.Scheme))
		}
		if p.Hostname() == "" || strings.ContainsAny(p.Hostname(), "/\\ ") {
			return bad("no host")
		}
		if p.Path != "" && p.Path != "/" || p.RawQuery != "" || p.Fragment != "" {
			return bad("a path after the host")
		}
		if port := p.Port(); port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return bad(fmt.Sprintf("port %q", port))
			}
		}
	}
	return nil
}

// Subjects are the flags' subjects.
func (f *Flags) Subjects() (protocol.Subjects, error) { return protocol.NewSubjects(f.Prefix) }

// Options are the nats.go options for a connection named name: credentials,
// TLS, and reconnection forever with exponential backoff (capped at 5 s,
// with jitter), also when no server is up yet at start.
func (f *Flags) Options(name string, log hclog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := 100 * time.Millisecond << min(attempts, 6)
			d = min(d, 5*time.Second)
			return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected to NATS", "url", nc.ConnectedUrl()) }),
		// With RetryOnFailedConnect, a connection that was not up at start
		// reports its first success here.
		nats.ConnectHandler(func(nc *nats.Conn) { log.Info("connected to NATS", "url", nc.ConnectedUrl()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("NATS error", "subject", subject, "error", err)
		}),
	}
	if f.User != "" || f.Password != "" {
		opts = append(opts, nats.UserInfo(f.User, f.Password))
	}
	if f.Creds != "" {
		opts = append(opts, nats.UserCredentials(f.Creds))
	}
	if f.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(f.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey seed %s: %w", f.NKey, err)
		}
		opts = append(opts, o)
	}
	if seed := strings.TrimSpace(os.Getenv("NTKBUS_NATS_NKEY_SEED")); seed != "" {
		if f.NKey != "" {
			return nil, fmt.Errorf("both --nkey and NTKBUS_NATS_NKEY_SEED: give one")
		}
		o, err := seedOption([]byte(seed))
		if err != nil {
			return nil, fmt.Errorf("NTKBUS_NATS_NKEY_SEED: %w", err)
		}
		opts = append(opts, o)
	}
	if f.TLSCA != "" {
		opts = append(opts, nats.RootCAs(f.TLSCA))
	}
	if (f.TLSCert == "") != (f.TLSKey == "") {
		return nil, fmt.Errorf("TLS needs both --tls-cert and --tls-key")
	}
	if f.TLSCert != "" {
		opts = append(opts, nats.ClientCert(f.TLSCert, f.TLSKey))
	}
	return opts, nil
}

// seedOption authenticates with a user nkey seed.
func seedOption(seed []byte) (nats.Option, error) {
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, errors.New("not an nkey seed")
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, errors.New("not a user nkey seed")
	}
	return nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }), nil
}

// Connect connects to f.URL. With no server up yet it returns a connection
// that keeps trying.
func (f *Flags) Connect(name string, log hclog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	if err := f.ValidateURL(); err != nil {
		return nil, err
	}
	opts, err := f.Options(name, log)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(f.URL, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", f.URL, err)
	}
	return nc, nil
}
