package natsbus

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"ntkbus/protocol"
)

// The users of an ntkbus deployment (deploy/nats/nats.conf has the same).
const (
	CoordinatorUser = "coordinator"
	SamplerUser     = "sampler"
)

// responses is what a credential may answer: each request it received,
// twice (a sampler acknowledges a work request, then sends the result),
// within two hours (the longest a batch's deadline runs is one).
var responses = server.ResponsePermission{MaxMsgs: 2, Expires: 2 * time.Hour}

// SamplerPermissions are the least a sampler credential id needs, and all
// it gets: it may subscribe to the work subject only as a member of the
// samplers' queue group (so it receives only the work the server gives
// it, never another instance's), to announcements, to its own inboxes
// _INBOX_<id>.> and to micro discovery of the sampler service; it may
// publish only chunk requests that name it, and answer what it received.
// It cannot read results or anyone else's replies, nor publish work,
// announcements or results of its own accord.
func SamplerPermissions(s protocol.Subjects, id string) *server.Permissions {
	sub := []string{s.Work() + " " + s.QueueGroup(), s.AnnounceAll(), protocol.Inbox(id) + ".>"}
	// Discovery subjects are spelled out: a server matches a '*' of an
	// allow rule against a '>' in a subscription, so "$SRV.*" would let a
	// sampler subscribe to "$SRV.>", every service's requests.
	for _, verb := range []string{"PING", "INFO", "STATS"} {
		sub = append(sub, "$SRV."+verb, "$SRV."+verb+"."+protocol.ServiceName, "$SRV."+verb+"."+protocol.ServiceName+".*")
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{s.SnapshotFrom("*", id)}},
		Subscribe: &server.SubjectPermission{Allow: sub},
		Response:  &responses,
	}
}

// CoordinatorPermissions are a coordinator credential id's: it publishes
// work and announcements, pings the sampler service, reads results and
// chunk requests and its own inboxes (_INBOX.>), and answers chunk
// requests; it may also run samplers in its own process (a sampler's
// permissions under its own id).
func CoordinatorPermissions(s protocol.Subjects, id string) *server.Permissions {
	svc := protocol.ServiceName
	p := SamplerPermissions(s, id)
	p.Publish.Allow = append(p.Publish.Allow, s.Work(), s.AnnounceAll())
	for _, verb := range []string{"PING", "INFO", "STATS"} {
		p.Publish.Allow = append(p.Publish.Allow, "$SRV."+verb+"."+svc, "$SRV."+verb+"."+svc+".*")
	}
	p.Subscribe.Allow = append(p.Subscribe.Allow, s.Prefix+".results.>", s.Prefix+".snap.>", "_INBOX.>")
	return p
}

// Credentials are a user name and password.
type Credentials struct{ User, Password string }

// Embedded is a nats-server running in this process, with users whose
// passwords are drawn for this run alone.
type Embedded struct {
	Server      *server.Server
	URL         string
	Coordinator Credentials
	Sampler     Credentials
}

// EmbeddedOptions configure an embedded server.
type EmbeddedOptions struct {
	// Listen is the client address ("127.0.0.1:0": a free loopback port).
	Listen string
	// TLSCert and TLSKey, when given, make clients connect with TLS.
	TLSCert, TLSKey string
	Subjects        protocol.Subjects
	Log             hclog.Logger
}

// password draws 128 random bits.
func password() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw a password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// StartEmbedded starts a nats-server in this process with two users, a
// coordinator and a sampler, each with a password drawn now and the
// permissions of a deployment: no client gets in without one of them.
// Samplers in other processes join with the returned URL and the sampler
// credentials (JoinCommand); those in this process can connect in process.
func StartEmbedded(opt EmbeddedOptions) (*Embedded, error) {
	if opt.Subjects.Prefix == "" {
		opt.Subjects.Prefix = protocol.DefaultPrefix
	}
	host, port, err := net.SplitHostPort(opt.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS listen address %q: %w", opt.Listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS port %q: %w", port, err)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	e := &Embedded{Coordinator: Credentials{User: CoordinatorUser}, Sampler: Credentials{User: SamplerUser}}
	if e.Coordinator.Password, err = password(); err != nil {
		return nil, err
	}
	if e.Sampler.Password, err = password(); err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "ntkbus-embedded",
		Host:       host,
		Port:       p,
		NoSigs:     true,
		MaxPayload: server.MAX_PAYLOAD_SIZE, // the default 1 MB: snapshots go in chunks
		Users: []*server.User{
			{Username: e.Coordinator.User, Password: e.Coordinator.Password, Permissions: CoordinatorPermissions(opt.Subjects, e.Coordinator.User)},
			{Username: e.Sampler.User, Password: e.Sampler.Password, Permissions: SamplerPermissions(opt.Subjects, e.Sampler.User)},
		},
	}
	if (opt.TLSCert == "") != (opt.TLSKey == "") {
		return nil, fmt.Errorf("embedded NATS TLS needs both a certificate and a key")
	}
	if opt.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: opt.TLSCert, KeyFile: opt.TLSKey})
		if err != nil {
			return nil, fmt.Errorf("embedded NATS TLS: %w", err)
		}
		opts.TLSConfig, opts.TLS = tc, true
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	log := opt.Log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s.SetLoggerV2(serverLogger{log.Named("nats-server")}, log.IsDebug(), log.IsTrace(), false)
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS on %s did not start within 10 s", opt.Listen)
	}
	e.Server, e.URL = s, s.ClientURL()
	return e, nil
}

// Connect opens a connection in this process (no sockets, so no TLS
// either) with the given credentials.
func (e *Embedded) Connect(c Credentials, name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.InProcessServer(e.Server), nats.Name(name), nats.UserInfo(c.User, c.Password), nats.MaxReconnects(-1)}, extra...)
	return nats.Connect(strings.Replace(e.URL, "tls://", "nats://", 1), opts...)
}

// JoinCommand is the command that starts samplers in another process on
// this server: the sampler credentials go in the environment, not on the
// command line where other users could read them.
func (e *Embedded) JoinCommand() string {
	return fmt.Sprintf("NTKBUS_NATS_USER=%s NTKBUS_NATS_PASSWORD=%s sampler --nats %s", e.Sampler.User, e.Sampler.Password, e.URL)
}

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.Server.Shutdown()
	e.Server.WaitForShutdown()
}

// IsLoopback reports whether a listen address is on the loopback
// interface only ("localhost", 127.0.0.0/8, ::1).
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverLogger sends nats-server's log through hclog.
type serverLogger struct{ l hclog.Logger }

func (s serverLogger) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Tracef(format string, v ...any)  { s.l.Trace(fmt.Sprintf(format, v...)) }
