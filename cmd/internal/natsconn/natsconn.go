// Package natsconn turns command-line flags and environment variables into
// a NATS connection that reconnects forever with backoff: the one way the
// ntkbus binaries connect to a cluster.
package natsconn

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

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
//	--tls-ca      NTKBUS_NATS_TLS_CA    CA certificate to trust
//	--tls-cert    NTKBUS_NATS_TLS_CERT  client certificate (with --tls-key)
//	--tls-key     NTKBUS_NATS_TLS_KEY
//	--prefix      NTKBUS_PREFIX         subject prefix (default ntkbus)
type Flags struct {
	URL, User, Password, Creds, NKey, TLSCA, TLSCert, TLSKey, Prefix string
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

// Connect connects to f.URL. With no server up yet it returns a connection
// that keeps trying.
func (f *Flags) Connect(name string, log hclog.Logger, extra ...nats.Option) (*nats.Conn, error) {
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
