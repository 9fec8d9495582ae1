package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"

	"ntkbus/coordinator/natsbus"
	"ntkbus/protocol"
)

// natsEnv sets the environment deploy/nats/nats.conf reads, with loopback
// addresses for a node of a local cluster.
func natsEnv(t *testing.T, name string, client, route int, routes []int) {
	t.Helper()
	var r []string
	for _, p := range routes {
		r = append(r, fmt.Sprintf("nats-route://route:r-secret@127.0.0.1:%d", p))
	}
	t.Setenv("NATS_NAME", name)
	t.Setenv("NATS_LISTEN", fmt.Sprintf("127.0.0.1:%d", client))
	t.Setenv("NATS_HTTP", "127.0.0.1:0")
	t.Setenv("NATS_CLUSTER_LISTEN", fmt.Sprintf("127.0.0.1:%d", route))
	t.Setenv("NATS_ROUTES", "["+strings.Join(r, ", ")+"]")
	t.Setenv("NTKBUS_ROUTE_PASSWORD", "r-secret")
}

// configDir is a node's configuration in a temporary folder: the
// repository's nats.conf and nats-tls.conf beside the users of n sampler
// credentials that Generate draws there.
func configDir(t *testing.T, n int) (string, *Credentials) {
	t.Helper()
	dir := t.TempDir()
	c, err := Generate(dir, filepath.Join(dir, "secrets"), n, protocol.Subjects{Prefix: protocol.DefaultPrefix}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"nats.conf", "nats-tls.conf"} {
		data, err := os.ReadFile(filepath.Join("nats", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "secrets", f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "secrets"), c
}

// as is the nats.go option of a seed.
func as(t testing.TB, seed string) nats.Option {
	t.Helper()
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return nats.Nkey(pub, kp.Sign)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The NATS config parses, routes to three nodes with the route password,
// keeps the default max payload, has no user with a password and no
// anonymous one, and gives each identity's key exactly the permissions the
// code grants (natsbus.CoordinatorPermissions and SamplerPermissions,
// which the embedded server uses).
func TestNATSConfigParses(t *testing.T) {
	natsEnv(t, "nats-1", 4222, 6222, []int{6222, 6223, 6224})
	dir, c := configDir(t, 3)
	o, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if o.ServerName != "nats-1" || o.Port != 4222 || o.Cluster.Port != 6222 || o.Cluster.Name != "ntkbus" {
		t.Errorf("node: name %q port %d cluster %q:%d", o.ServerName, o.Port, o.Cluster.Name, o.Cluster.Port)
	}
	if len(o.Routes) != 3 {
		t.Errorf("%d routes, want 3", len(o.Routes))
	}
	for _, r := range o.Routes {
		if pw, _ := r.User.Password(); r.User.Username() != "route" || pw != "r-secret" {
			t.Errorf("route %s does not carry the route credentials", r.Redacted())
		}
	}
	if o.Cluster.Username != "route" || o.Cluster.Password != "r-secret" {
		t.Errorf("the route port takes %q/%q: want the route password from the environment", o.Cluster.Username, o.Cluster.Password)
	}
	if o.MaxPayload != 0 {
		t.Errorf("max payload set to %d: ntkbus must work with the default 1 MB", o.MaxPayload)
	}
	if o.NoAuthUser != "" || len(o.Users) != 0 {
		t.Errorf("anonymous clients become %q; users with passwords %v", o.NoAuthUser, o.Users)
	}
	keys := map[string]*server.NkeyUser{}
	for _, u := range o.Nkeys {
		keys[u.Nkey] = u
	}
	subjects := protocol.Subjects{Prefix: protocol.DefaultPrefix}
	check := func(id, seed string, want *server.Permissions) {
		pub, err := publicKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		u := keys[pub]
		if u == nil {
			t.Errorf("%s's key is not a user", id)
			return
		}
		samePermissions(t, id, u.Permissions, want)
		delete(keys, pub)
	}
	check("coordinator", c.Coordinator, natsbus.CoordinatorPermissions(subjects, "coordinator"))
	for id, seed := range c.Samplers {
		check(id, seed, natsbus.SamplerPermissions(subjects, id))
		p := natsbus.SamplerPermissions(subjects, id)
		if slices.Contains(p.Subscribe.Allow, "ntkbus.pull.>") || slices.Contains(p.Subscribe.Allow, "_INBOX.>") {
			t.Errorf("%s may subscribe to %v", id, p.Subscribe.Allow)
		}
	}
	if len(keys) != 0 || len(c.Samplers) != 3 {
		t.Errorf("users beyond the coordinator and 3 samplers: %v", keys)
	}
}

func samePermissions(t *testing.T, who string, got, want *server.Permissions) {
	t.Helper()
	sorted := func(v []string) []string { v = slices.Clone(v); slices.Sort(v); return v }
	if !slices.Equal(sorted(got.Publish.Allow), sorted(want.Publish.Allow)) {
		t.Errorf("%s may publish %v in the config, %v in the code", who, got.Publish.Allow, want.Publish.Allow)
	}
	if !slices.Equal(sorted(got.Subscribe.Allow), sorted(want.Subscribe.Allow)) {
		t.Errorf("%s may subscribe to %v in the config, %v in the code", who, got.Subscribe.Allow, want.Subscribe.Allow)
	}
	if got.Publish.Deny != nil || got.Subscribe.Deny != nil {
		t.Errorf("%s: deny lists %v %v: the allow lists are the whole policy", who, got.Publish.Deny, got.Subscribe.Deny)
	}
	if got.Response == nil || *got.Response != *want.Response {
		t.Errorf("%s answers %+v in the config, %+v in the code", who, got.Response, want.Response)
	}
}

// startNode starts a nats-server from a config file with the environment
// set, logging to log (or nowhere).
func startNode(t *testing.T, file string, log server.Logger) *server.Server {
	t.Helper()
	o, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatal(err)
	}
	o.NoSigs, o.HTTPPort = true, 0
	o.NoLog = log == nil
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	if log != nil {
		srv.SetLogger(log, false, false)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	return srv
}

// violations collects a connection's permission violations.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		v.mu.Lock()
		v.errs = append(v.errs, err.Error())
		v.mu.Unlock()
	}
}

// has waits until a violation naming what is reported.
func (v *violations) has(t *testing.T, what string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		v.mu.Lock()
		for _, e := range v.errs {
			if strings.Contains(e, what) {
				v.mu.Unlock()
				return
			}
		}
		v.mu.Unlock()
	}
	t.Errorf("no permission violation reported for %s", what)
}

// Live, with the deploy config: everything a sampler credential must not
// do is refused by the server (each refusal is reported to the client),
// and what it needs works: pulling work and asking for snapshot chunks
// under its own name with the answers on its own inbox, and publishing
// results under its own name. No client gets in without a key of the
// cluster.
func TestSamplerDenialsOnARealServer(t *testing.T) {
	port, rport := freePort(t), freePort(t)
	natsEnv(t, "perm", port, rport, []int{rport})
	dir, c := configDir(t, 2)
	url := startNode(t, filepath.Join(dir, "nats.conf"), nil).ClientURL()

	var v violations
	sampler, err := nats.Connect(url, as(t, c.Samplers["sampler-1"]), nats.ErrorHandler(v.handler))
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close()
	coord, err := nats.Connect(url, as(t, c.Coordinator))
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	stranger, _ := drawSeed()
	for name, opt := range map[string]nats.Option{
		"a key the cluster does not know": as(t, stranger),
		"no credentials":                  nats.Name("anonymous"),
		"the route user":                  nats.UserInfo("route", "r-secret"),
		"a password user":                 nats.UserInfo("sampler", "s-secret"),
	} {
		if nc, err := nats.Connect(url, opt); err == nil {
			nc.Close()
			t.Errorf("%s was accepted", name)
		}
	}

	// What the coordinator sees on the subjects a rogue sampler targets.
	seen := make(chan string, 16)
	for _, subj := range []string{"ntkbus.announce.run1", "ntkbus.results.run1.x", "ntkbus.pull.run1.x", "_INBOX_coordinator.x"} {
		subj := subj
		if _, err := coord.Subscribe(subj, func(m *nats.Msg) { seen <- subj }); err != nil {
			t.Fatal(err)
		}
	}
	coord.Flush()
	// Publishing an announcement, a result, a pull or a chunk request in
	// another credential's name, to the coordinator's inbox, or on
	// JetStream's API.
	for _, subj := range []string{"ntkbus.announce.run1", "ntkbus.results.run1.x", "ntkbus.pull.run1.x", "ntkbus.results.run1.sampler-2", "ntkbus.pull.run1.sampler-2",
		"ntkbus.snap.run1.coordinator", "_INBOX_coordinator.x", "_INBOX_sampler-2.x", "$JS.API.STREAM.LIST", "$JS.API.CONSUMER.MSG.NEXT.S.C", "$JS.ACK.S.C.1.1.1.1.0"} {
		sampler.Publish(subj, []byte("forged"))
		v.has(t, fmt.Sprintf("Publish to %q", subj))
	}
	// Reading pulls, results, chunk requests, every subject, the
	// coordinator's or another credential's inboxes, other services,
	// JetStream acknowledgements.
	for _, subj := range []string{"ntkbus.pull.>", "ntkbus.>", ">", "ntkbus.results.>", "ntkbus.snap.>", "_INBOX.>", "_INBOX_coordinator.>", "_INBOX_sampler-2.>", "$SRV.>", "$JS.ACK.>", "$JS.API.>"} {
		sampler.Subscribe(subj, func(*nats.Msg) {})
		v.has(t, fmt.Sprintf("Subscription to %q", subj))
	}
	sampler.Flush()
	select {
	case s := <-seen:
		t.Errorf("a sampler's publish to %s got through", s)
	default:
	}

	// What it needs works: a pull answered on its inbox, a result under its
	// own name, chunks.
	if _, err := coord.Subscribe("ntkbus.pull.run1.*", func(m *nats.Msg) { m.Respond([]byte("work")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := coord.Subscribe("ntkbus.snap.run1.*", func(m *nats.Msg) { m.Respond([]byte("chunk")) }); err != nil {
		t.Fatal(err)
	}
	results := make(chan *nats.Msg, 4)
	if _, err := coord.ChanSubscribe("ntkbus.results.run1.*", results); err != nil {
		t.Fatal(err)
	}
	inbox := make(chan *nats.Msg, 2)
	if _, err := sampler.ChanSubscribe("_INBOX_sampler-1.me.*", inbox); err != nil {
		t.Fatal(err)
	}
	sampler.Flush()
	coord.Flush()
	for i, want := range []string{"work", "chunk"} {
		subj := []string{"ntkbus.pull.run1.sampler-1", "ntkbus.snap.run1.sampler-1"}[i]
		sampler.PublishRequest(subj, fmt.Sprintf("_INBOX_sampler-1.me.%d", i), []byte("?"))
		select {
		case m := <-inbox:
			if string(m.Data) != want {
				t.Errorf("answer %q, want %q", m.Data, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s on the sampler's inbox", want)
		}
	}
	sampler.Publish("ntkbus.results.run1.sampler-1", []byte("result"))
	select {
	case m := <-results:
		if string(m.Data) != "result" || m.Subject != "ntkbus.results.run1.sampler-1" {
			t.Errorf("result %q on %s", m.Data, m.Subject)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no result from the sampler")
	}
}

// captureLog keeps a server's error and warning lines.
type captureLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *captureLog) add(format string, v ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, v...))
	l.mu.Unlock()
}
func (l *captureLog) Noticef(format string, v ...any) {}
func (l *captureLog) Warnf(format string, v ...any)   { l.add(format, v...) }
func (l *captureLog) Fatalf(format string, v ...any)  { l.add(format, v...) }
func (l *captureLog) Errorf(format string, v ...any)  { l.add(format, v...) }
func (l *captureLog) Debugf(format string, v ...any)  {}
func (l *captureLog) Tracef(format string, v ...any)  {}

func (l *captureLog) has(what string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, what) {
			return true
		}
	}
	return false
}

// The route port takes only servers with the route password: a rogue
// server without it is refused (and so never sees a message of the
// cluster), one with it joins.
func TestRoutesNeedCredentials(t *testing.T) {
	port, rport := freePort(t), freePort(t)
	natsEnv(t, "nats-a", port, rport, []int{rport})
	dir, _ := configDir(t, 1)
	var log captureLog
	a := startNode(t, filepath.Join(dir, "nats.conf"), &log)

	rogue, err := server.NewServer(&server.Options{ServerName: "rogue", Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "ntkbus", Host: "127.0.0.1", Port: -1},
		Routes:  server.RoutesFromStr(fmt.Sprintf("nats-route://127.0.0.1:%d", rport))})
	if err != nil {
		t.Fatal(err)
	}
	go rogue.Start()
	defer rogue.Shutdown()
	for end := time.Now().Add(10 * time.Second); !log.has("authentication error") && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if !log.has("authentication error") {
		t.Fatalf("the route port did not refuse a server without the route password:\n%s", strings.Join(log.lines, "\n"))
	}
	if a.NumRoutes() != 0 || rogue.NumRoutes() != 0 {
		t.Errorf("the rogue server routed in: %d, %d routes", a.NumRoutes(), rogue.NumRoutes())
	}

	natsEnv(t, "nats-b", freePort(t), freePort(t), []int{rport})
	b := startNode(t, filepath.Join(dir, "nats.conf"), nil)
	for end := time.Now().Add(10 * time.Second); (a.NumRoutes() == 0 || b.NumRoutes() == 0) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if a.NumRoutes() == 0 {
		t.Error("a server with the route password did not join")
	}
}

// nats-tls.conf: clients must speak TLS (a plain connection is refused),
// and with the CA and a key of the cluster they get in.
func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	writeCerts(t, dir)
	port, rport := freePort(t), freePort(t)
	natsEnv(t, "tls", port, rport, []int{rport})
	t.Setenv("NATS_TLS_CERT", filepath.Join(dir, "node.pem"))
	t.Setenv("NATS_TLS_KEY", filepath.Join(dir, "node-key.pem"))
	t.Setenv("NATS_TLS_CA", filepath.Join(dir, "ca.pem"))
	conf, c := configDir(t, 1)
	srv := startNode(t, filepath.Join(conf, "nats-tls.conf"), nil)
	url := fmt.Sprintf("tls://127.0.0.1:%d", port)
	nc, err := nats.Connect(url, nats.RootCAs(filepath.Join(dir, "ca.pem")), as(t, c.Samplers["sampler-1"]))
	if err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	nc.Close()
	if nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), as(t, c.Samplers["sampler-1"])); err == nil {
		nc.Close()
		t.Error("a plain-text client was accepted")
	}
	if o := srv.ClientURL(); !strings.HasPrefix(o, "tls://") {
		t.Errorf("client URL %s", o)
	}
}

// writeCerts writes a CA and a certificate for 127.0.0.1 signed by it.
func writeCerts(t *testing.T, dir string) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, kind string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey, nodeKey := key(), key()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ntkbus test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	node := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	nodeDER, err := x509.CreateCertificate(rand.Reader, node, ca, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("node.pem", "CERTIFICATE", nodeDER)
	write("node-key.pem", "EC PRIVATE KEY", keyDER)
}

func readYAML(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

func get(m any, path ...string) any {
	for _, k := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

// docker-compose.yml: a 3-node cluster routed to itself, reading the
// generated users, with the monitoring port on loopback; one coordinator
// that leaves the work to external samplers. deploy/secrets/compose.yml:
// 16 samplers, each its own service, key and identity, and the
// coordinator's key.
func TestComposeFile(t *testing.T) {
	doc := readYAML(t, "../docker-compose.yml")[0]
	svcs, _ := doc["services"].(map[string]any)
	for _, s := range []string{"nats-1", "nats-2", "nats-3", "coordinator"} {
		if svcs[s] == nil {
			t.Errorf("service %s missing", s)
		}
	}
	if svcs["sampler"] != nil {
		t.Error("a sampler service shares one credential among its replicas")
	}
	for _, s := range []string{"nats-1", "nats-2", "nats-3"} {
		env, _ := get(svcs[s], "environment").(map[string]any)
		if env["NATS_NAME"] != s {
			t.Errorf("%s: NATS_NAME %v", s, env["NATS_NAME"])
		}
		if h := fmt.Sprint(env["NATS_HTTP"]); !strings.HasPrefix(h, "127.0.0.1:") {
			t.Errorf("%s: the monitoring port (no authentication) listens on %s", s, h)
		}
		routes, _ := env["NATS_ROUTES"].(string)
		for _, peer := range []string{"nats-1:6222", "nats-2:6222", "nats-3:6222"} {
			if !strings.Contains(routes, peer) {
				t.Errorf("%s does not route to %s (%q)", s, peer, routes)
			}
		}
		if get(svcs[s], "build", "target") != "nats" {
			t.Errorf("%s is not built from the Dockerfile's nats stage", s)
		}
		if v := fmt.Sprint(get(svcs[s], "volumes")); !strings.Contains(v, "./deploy/secrets/users.conf:/etc/nats/users.conf:ro") {
			t.Errorf("%s does not read the generated users: %s", s, v)
		}
	}
	cmd := fmt.Sprint(get(svcs["coordinator"], "command"))
	for _, want := range []string{"train", "--samplers=0", "--nats=nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("coordinator command %s lacks %s", cmd, want)
		}
	}
	// No secret has a default: compose refuses to start without them.
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if v := "NTKBUS_ROUTE_PASSWORD"; strings.Contains(string(data), "${"+v+":-") || !strings.Contains(string(data), "${"+v+":?") {
		t.Errorf("%s is not required (${%s:?...})", v, v)
	}
	if strings.Contains(string(data), "PASSWORD: ") && !strings.Contains(string(data), "NTKBUS_ROUTE_PASSWORD: ${") || strings.Contains(string(data), "SEED:") {
		t.Error("docker-compose.yml holds a credential")
	}
	if routes := fmt.Sprint(get(svcs["nats-1"], "environment", "NATS_ROUTES")); strings.Count(routes, "route:${NTKBUS_ROUTE_PASSWORD") != 3 {
		t.Errorf("the routes do not carry the route password: %s", routes)
	}
	// Ports are published on the host's loopback only; routes and
	// monitoring not at all.
	for s := range svcs {
		ports, _ := get(svcs[s], "ports").([]any)
		for _, p := range ports {
			p := fmt.Sprint(p)
			if !strings.HasPrefix(p, "127.0.0.1:") && !strings.HasPrefix(p, "${NTKBUS_PUBLISH_ADDR:-127.0.0.1}:") {
				t.Errorf("%s publishes %s beyond the host's loopback", s, p)
			}
			if strings.HasSuffix(p, ":6222") || strings.HasSuffix(p, ":8222") {
				t.Errorf("%s publishes %s", s, p)
			}
		}
	}

	// The generated part: one service per sampler, each its own key.
	root := t.TempDir()
	c, err := Generate(root, filepath.Join(root, "deploy", "secrets"), 16, protocol.Subjects{Prefix: protocol.DefaultPrefix}, false)
	if err != nil {
		t.Fatal(err)
	}
	gen := readYAML(t, filepath.Join(root, "deploy", "secrets", "compose.yml"))[0]
	gsvcs, _ := gen["services"].(map[string]any)
	if get(gsvcs["coordinator"], "environment", "NTKBUS_NATS_NKEY_SEED") != c.Coordinator {
		t.Error("the coordinator does not get its key")
	}
	seeds := map[any]bool{}
	for i := 1; i <= 16; i++ {
		id := SamplerID(i)
		svc := gsvcs[id]
		seed := get(svc, "environment", "NTKBUS_NATS_NKEY_SEED")
		if seed != c.Samplers[id] || seeds[seed] {
			t.Errorf("%s: seed %v", id, seed)
		}
		seeds[seed] = true
		if cmd := fmt.Sprint(get(svc, "command")); !strings.Contains(cmd, "--identity="+id+" ") || !strings.Contains(cmd, "--nats=nats://nats-1:4222") {
			t.Errorf("%s: command %s", id, cmd)
		}
	}
	if len(gsvcs) != 17 {
		t.Errorf("%d services, want the coordinator and 16 samplers", len(gsvcs))
	}
	env, err := os.ReadFile(filepath.Join(root, ".env"))
	if err != nil || !strings.Contains(string(env), "COMPOSE_FILE=docker-compose.yml:deploy/secrets/compose.yml") || !strings.Contains(string(env), "NTKBUS_ROUTE_PASSWORD="+c.Route) {
		t.Errorf(".env: %s (%v)", env, err)
	}
}

// deploy/k8s via kustomize: every listed resource exists (the generated
// one once deploy/secrets.sh ran) and parses, NATS runs 3 clustered pods
// with the monitoring port on loopback, and 16 samplers each read their
// own key only.
func TestKubernetesManifests(t *testing.T) {
	root := t.TempDir()
	c, err := Generate(root, filepath.Join(root, "secrets"), 16, protocol.Subjects{Prefix: protocol.DefaultPrefix}, false)
	if err != nil {
		t.Fatal(err)
	}
	k := readYAML(t, "kustomization.yaml")[0]
	kinds := map[string]map[string]any{}
	generated := map[string]bool{}
	for _, r := range k["resources"].([]any) {
		path := r.(string)
		if strings.HasPrefix(path, "secrets/") {
			path = filepath.Join(root, path)
		}
		for _, d := range readYAML(t, path) {
			name := fmt.Sprint(d["kind"], "/", get(d, "metadata", "name"))
			kinds[name] = d
			generated[name] = strings.HasPrefix(r.(string), "secrets/")
		}
	}
	for _, files := range get(k, "configMapGenerator").([]any) {
		for _, f := range get(files, "files").([]any) {
			_, src, _ := strings.Cut(f.(string), "=")
			if strings.HasPrefix(src, "secrets/") {
				src = filepath.Join(root, src)
			}
			if _, err := os.Stat(src); err != nil {
				t.Errorf("config map source %s: %v", src, err)
			}
		}
	}
	if r := get(kinds["StatefulSet/nats"], "spec", "replicas"); r != 3 {
		t.Errorf("NATS replicas = %v, want 3", r)
	}
	for i := 1; i <= 16; i++ {
		id := SamplerID(i)
		d := kinds["Deployment/"+id]
		if r := get(d, "spec", "replicas"); r != 1 {
			t.Errorf("%s replicas = %v, want 1", id, r)
		}
		containers := fmt.Sprint(get(d, "spec", "template", "spec", "containers"))
		if !strings.Contains(containers, "--identity="+id+" ") || !strings.Contains(containers, "key:seed name:"+id+"]") || strings.Count(containers, "secretKeyRef") != 1 {
			t.Errorf("%s reads %s", id, containers)
		}
		if get(kinds["Secret/"+id], "stringData", "seed") != c.Samplers[id] || !generated["Secret/"+id] {
			t.Errorf("Secret/%s does not hold its key", id)
		}
		if get(d, "spec", "template", "metadata", "labels", "app") != "sampler" {
			t.Errorf("%s is not labelled for the network policy", id)
		}
	}
	if kinds["Job/coordinator"] == nil || kinds["Service/nats"] == nil || kinds["NetworkPolicy/nats"] == nil {
		t.Errorf("missing resources: have %v", keys(kinds))
	}
	if !strings.Contains(fmt.Sprint(get(kinds["Job/coordinator"], "spec", "template", "spec", "containers")), "key:coordinator-seed") {
		t.Error("the coordinator does not read its key")
	}
	env := fmt.Sprint(get(kinds["StatefulSet/nats"], "spec", "template", "spec", "containers"))
	for _, want := range []string{"route:$(NTKBUS_ROUTE_PASSWORD)@nats-0.nats:6222", "route:$(NTKBUS_ROUTE_PASSWORD)@nats-1.nats:6222", "route:$(NTKBUS_ROUTE_PASSWORD)@nats-2.nats:6222", "value:127.0.0.1:8222"} {
		if !strings.Contains(env, want) {
			t.Errorf("NATS pods lack %s", want)
		}
	}
	// Secrets come only from the generated file, which git ignores.
	for k := range kinds {
		if strings.HasPrefix(k, "Secret/") && !generated[k] {
			t.Errorf("%s is a committed manifest: its credentials would be defaults that work", k)
		}
	}
	ignore, err := os.ReadFile("../.gitignore")
	if err != nil || !strings.Contains(string(ignore), "/deploy/secrets/") || !strings.Contains(string(ignore), "/.env") {
		t.Errorf(".gitignore does not keep the generated secrets out of git (%v)", err)
	}
	// The monitoring port (no authentication) is not in the service; the
	// network policy admits clients from the samplers and the coordinator
	// and routes from the NATS pods only.
	if ports := fmt.Sprint(get(kinds["Service/nats"], "spec", "ports")); strings.Contains(ports, "8222") {
		t.Errorf("the service exposes the monitoring port: %s", ports)
	}
	np := fmt.Sprint(get(kinds["NetworkPolicy/nats"], "spec", "ingress"))
	for _, want := range []string{"4222", "6222", "sampler", "coordinator"} {
		if !strings.Contains(np, want) {
			t.Errorf("network policy %s lacks %s", np, want)
		}
	}
	if strings.Contains(np, "8222") {
		t.Errorf("network policy admits the monitoring port: %s", np)
	}
}

// Generate keeps the keys that exist (adding samplers keeps the others'),
// drops those of samplers removed, draws them all again with force, and
// leaves every secret file readable by its owner only, also one that was
// world-readable.
func TestGenerateCredentials(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "secrets")
	subjects := protocol.Subjects{Prefix: protocol.DefaultPrefix}
	a, err := Generate(root, dir, 2, subjects, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"sampler-1.nk", "route.password"} {
		os.Chmod(filepath.Join(dir, f), 0o644)
	}
	os.Chmod(filepath.Join(root, ".env"), 0o644)
	b, err := Generate(root, dir, 3, subjects, false)
	if err != nil {
		t.Fatal(err)
	}
	if b.Samplers["sampler-1"] != a.Samplers["sampler-1"] || b.Samplers["sampler-2"] != a.Samplers["sampler-2"] || b.Coordinator != a.Coordinator || b.Route != a.Route || b.Samplers["sampler-3"] == "" {
		t.Error("adding a sampler changed the others' keys")
	}
	checkModes := func(when string) {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		files = append(files, filepath.Join(root, ".env"))
		for _, f := range files {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			want := os.FileMode(0o600)
			if filepath.Base(f) == "users.conf" {
				want = 0o644 // public keys, read by the servers' own user
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: %s has mode %v, want %v", when, f, fi.Mode().Perm(), want)
			}
		}
		if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: folder mode %v", when, fi.Mode().Perm())
		}
	}
	checkModes("kept")
	os.Chmod(filepath.Join(dir, "sampler-2.nk"), 0o644)
	c, err := Generate(root, dir, 1, subjects, true)
	if err != nil {
		t.Fatal(err)
	}
	checkModes("forced")
	if c.Samplers["sampler-1"] == a.Samplers["sampler-1"] || c.Route == a.Route || c.Coordinator == a.Coordinator {
		t.Error("--force kept a key")
	}
	if _, err := os.Stat(filepath.Join(dir, "sampler-2.nk")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the key of a removed sampler is still there (%v)", err)
	}
	users, _ := os.ReadFile(filepath.Join(dir, "users.conf"))
	if strings.Count(string(users), "nkey: ") != 2 || strings.Contains(string(users), c.Samplers["sampler-1"]) {
		t.Errorf("users.conf:\n%s", users)
	}
	if _, err := Generate(root, dir, 0, subjects, false); err == nil {
		t.Error("0 samplers accepted")
	}
}

func keys(m map[string]map[string]any) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

// The Dockerfile builds the OpenBLAS binaries in a multi-stage build with a
// small runtime stage, and nats-server from the pinned module.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, want := range []string{"AS build", "AS runtime", "AS nats", "-tags openblas", "libopenblas-dev", "libopenblas0", "github.com/nats-io/nats-server/v2", "COPY --from=build"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join("..", "cmd", "sampler")); err != nil {
		t.Errorf("the Dockerfile builds ./cmd/sampler: %v", err)
	}
}
