package natsbus

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"ntkbus/protocol"
)

// The identities of a default deployment (deploy/nats/auth.conf has the same).
const (
	CoordinatorUser = "coordinator"
	SamplerUser     = "sampler"
	// JoinIdentity is the embedded server's credential for samplers in
	// other processes (see Embedded.WriteJoin).
	JoinIdentity = "join"
)

// coordinatorResponses is what a coordinator may answer: each pull and
// chunk request (and discovery ping) once, at once.
var coordinatorResponses = server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}

// samplerResponses is what a sampler may answer: micro discovery's pings,
// once each.
var samplerResponses = server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}

// SamplerPermissions are the least a sampler credential id needs, and all
// it gets. It may publish only on subjects that end in its own id: pulls
// (<prefix>.pull.<run>.<id>), chunk requests (<prefix>.snap.<run>.<id>)
// and its reports (<prefix>.results.<run>.<id>), so the coordinator can
// take a message's sender from its subject. It may subscribe only to
// announcements, to its own inboxes _INBOX_<id>.> (where pulls and chunks
// are answered) and to micro discovery of the sampler service, and answer
// a discovery ping once. It cannot read results, work or anyone else's
// inboxes, nor publish announcements or anything under another id; no
// JetStream subject is open to it.
func SamplerPermissions(s protocol.Subjects, id string) *server.Permissions {
	sub := []string{s.AnnounceAll(), protocol.Inbox(id) + ".>"}
	// Discovery subjects are spelled out: a server matches a '*' of an
	// allow rule against a '>' in a subscription, so "$SRV.*" would let a
	// sampler subscribe to "$SRV.>", every service's requests.
	for _, verb := range []string{"PING", "INFO", "STATS"} {
		sub = append(sub, "$SRV."+verb, "$SRV."+verb+"."+protocol.ServiceName, "$SRV."+verb+"."+protocol.ServiceName+".*")
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{s.PullFrom("*", id), s.SnapshotFrom("*", id), s.ResultsFrom("*", id)}},
		Subscribe: &server.SubjectPermission{Allow: sub},
		Response:  &samplerResponses,
	}
}

// CoordinatorPermissions are a coordinator credential id's: it publishes
// announcements and pings the sampler service, reads pulls, chunk
// requests and results, and answers each pull and chunk request once. It
// may also run samplers in its own process, under its own id (a sampler's
// permissions for id), which it vouches for.
func CoordinatorPermissions(s protocol.Subjects, id string) *server.Permissions {
	svc := protocol.ServiceName
	p := SamplerPermissions(s, id)
	p.Publish.Allow = append(p.Publish.Allow, s.AnnounceAll())
	for _, verb := range []string{"PING", "INFO", "STATS"} {
		p.Publish.Allow = append(p.Publish.Allow, "$SRV."+verb+"."+svc, "$SRV."+verb+"."+svc+".*")
	}
	p.Subscribe.Allow = append(p.Subscribe.Allow, s.Prefix+".pull.>", s.Prefix+".snap.>", s.Prefix+".results.>")
	p.Response = &coordinatorResponses
	return p
}

// Credential is one client's way onto a server: an nkey pair (no
// password crosses the network, and the server holds only the public
// key) and the identity that names its subjects.
type Credential struct {
	Identity string
	Public   string
	seed     []byte
}

// NewCredential draws an nkey pair for identity.
func NewCredential(identity string) (Credential, error) {
	if err := protocol.ValidIdentity(identity); err != nil {
		return Credential{}, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Credential{}, fmt.Errorf("draw an nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return Credential{}, err
	}
	seed, err := kp.Seed()
	if err != nil {
		return Credential{}, err
	}
	return Credential{Identity: identity, Public: pub, seed: seed}, nil
}

// Option is the nats.go option that authenticates as c.
func (c Credential) Option() nats.Option {
	seed := c.seed
	return nats.Nkey(c.Public, func(nonce []byte) ([]byte, error) {
		kp, err := nkeys.FromSeed(seed)
		if err != nil {
			return nil, err
		}
		defer kp.Wipe()
		return kp.Sign(nonce)
	})
}

// WriteSeed writes c's seed to path, readable by its owner only: what
// "sampler --nkey path --identity <c.Identity>" needs.
func (c Credential) WriteSeed(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write the nkey seed: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write the nkey seed: %w", err)
	}
	if _, err := f.Write(append(append([]byte(nil), c.seed...), '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write the nkey seed: %w", err)
	}
	return f.Close()
}

// Embedded is a nats-server running in this process. Every client has its
// own nkey, drawn for this run alone: one for the coordinator and one per
// sampler identity, each with the permissions of a deployment.
type Embedded struct {
	Server      *server.Server
	URL         string
	Coordinator Credential
	// Samplers are the sampler credentials, by identity.
	Samplers map[string]Credential
}

// EmbeddedOptions configure an embedded server.
type EmbeddedOptions struct {
	// Listen is the client address ("127.0.0.1:0": a free loopback port).
	Listen string
	// TLSCert and TLSKey, when given, make clients connect with TLS.
	TLSCert, TLSKey string
	Subjects        protocol.Subjects
	// Samplers are the identities to draw sampler credentials for: one
	// per sampler in this process, and JoinIdentity for others to join.
	Samplers []string
	Log      hclog.Logger
}

// StartEmbedded starts a nats-server in this process with a coordinator
// credential and one credential per sampler identity, each an nkey drawn
// now with the permissions of a deployment: no client gets in without one
// of them, and the server has no password to warn about.
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
	e := &Embedded{Samplers: map[string]Credential{}}
	if e.Coordinator, err = NewCredential(CoordinatorUser); err != nil {
		return nil, err
	}
	users := []*server.NkeyUser{{Nkey: e.Coordinator.Public, Permissions: CoordinatorPermissions(opt.Subjects, CoordinatorUser)}}
	for _, id := range opt.Samplers {
		if _, dup := e.Samplers[id]; dup || id == CoordinatorUser {
			return nil, fmt.Errorf("embedded NATS: sampler identity %q given twice", id)
		}
		c, err := NewCredential(id)
		if err != nil {
			return nil, err
		}
		e.Samplers[id] = c
		users = append(users, &server.NkeyUser{Nkey: c.Public, Permissions: SamplerPermissions(opt.Subjects, id)})
	}
	opts := &server.Options{
		ServerName: "ntkbus-embedded",
		Host:       host,
		Port:       p,
		NoSigs:     true,
		MaxPayload: server.MAX_PAYLOAD_SIZE, // the default 1 MB: snapshots go in chunks
		Nkeys:      users,
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
// either) with credential c.
func (e *Embedded) Connect(c Credential, name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.InProcessServer(e.Server), nats.Name(name), c.Option(), nats.MaxReconnects(-1)}, extra...)
	return nats.Connect(strings.Replace(e.URL, "tls://", "nats://", 1), opts...)
}

// JoinCommand is the command that starts samplers in another process on
// this server with the credential of identity id, whose seed is in seedFile
// (see Credential.WriteSeed): no secret on the command line.
func (e *Embedded) JoinCommand(id, seedFile string) string {
	return fmt.Sprintf("sampler --nats %s --nkey %s --identity %s", e.URL, seedFile, id)
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
