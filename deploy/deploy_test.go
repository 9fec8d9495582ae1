package deploy

import (
	"errors"
	"fmt"
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
	"go.yaml.in/yaml/v3"
)

// natsEnv sets the environment deploy/nats/nats.conf reads, with loopback
// addresses for a node of a local cluster.
func natsEnv(t *testing.T, name string, client, route int, routes []int) {
	t.Helper()
	var r []string
	for _, p := range routes {
		r = append(r, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	t.Setenv("NATS_NAME", name)
	t.Setenv("NATS_LISTEN", fmt.Sprintf("127.0.0.1:%d", client))
	t.Setenv("NATS_HTTP", "127.0.0.1:0")
	t.Setenv("NATS_CLUSTER_LISTEN", fmt.Sprintf("127.0.0.1:%d", route))
	t.Setenv("NATS_ROUTES", "["+strings.Join(r, ", ")+"]")
	t.Setenv("NTKBUS_COORDINATOR_PASSWORD", "c-secret")
	t.Setenv("NTKBUS_SAMPLER_PASSWORD", "s-secret")
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

// The NATS config parses, routes to three nodes, keeps the default max
// payload, and gives the users the permissions the README claims.
func TestNATSConfigParses(t *testing.T) {
	natsEnv(t, "nats-1", 4222, 6222, []int{6222, 6223, 6224})
	o, err := server.ProcessConfigFile("nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if o.ServerName != "nats-1" || o.Port != 4222 || o.Cluster.Port != 6222 || o.Cluster.Name != "ntkbus" {
		t.Errorf("node: name %q port %d cluster %q:%d", o.ServerName, o.Port, o.Cluster.Name, o.Cluster.Port)
	}
	if len(o.Routes) != 3 {
		t.Errorf("%d routes, want 3", len(o.Routes))
	}
	if o.MaxPayload != 0 {
		t.Errorf("max payload set to %d: ntkbus must work with the default 1 MB", o.MaxPayload)
	}
	users := map[string]*server.User{}
	for _, u := range o.Users {
		users[u.Username] = u
	}
	s, c := users["sampler"], users["coordinator"]
	if s == nil || c == nil || len(users) != 2 {
		t.Fatalf("users %v, want coordinator and sampler", users)
	}
	if s.Password != "s-secret" || c.Password != "c-secret" {
		t.Error("passwords do not come from the environment")
	}
	p := s.Permissions
	if !slices.Equal(p.Publish.Allow, []string{"ntkbus.snap.>"}) {
		t.Errorf("sampler may publish %v, want only snapshot-chunk requests", p.Publish.Allow)
	}
	if !slices.Equal(p.Subscribe.Allow, []string{"ntkbus.work", "ntkbus.work.*", "ntkbus.announce.>", "_INBOX.>", "$SRV.>"}) {
		t.Errorf("sampler may subscribe to %v", p.Subscribe.Allow)
	}
	if p.Response == nil {
		t.Error("sampler cannot answer requests (allow_responses)")
	}
	if !slices.Contains(c.Permissions.Publish.Allow, "ntkbus.>") || !slices.Contains(c.Permissions.Subscribe.Allow, "ntkbus.>") {
		t.Errorf("coordinator permissions %+v", c.Permissions)
	}
}

// Live: with the deploy config, a sampler can take work and answer it, but
// cannot publish a work request, a snapshot announcement or read results;
// the coordinator can do all of that.
func TestSamplerPermissionsOnARealServer(t *testing.T) {
	port, rport := freePort(t), freePort(t)
	natsEnv(t, "perm", port, rport, []int{rport})
	o, err := server.ProcessConfigFile("nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	o.NoLog, o.NoSigs, o.HTTPPort = true, true, 0
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	url := srv.ClientURL()

	var mu sync.Mutex
	var violations []string
	sampler, err := nats.Connect(url, nats.UserInfo("sampler", "s-secret"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				mu.Lock()
				violations = append(violations, err.Error())
				mu.Unlock()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close()
	coord, err := nats.Connect(url, nats.UserInfo("coordinator", "c-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	if _, err := nats.Connect(url, nats.UserInfo("sampler", "wrong")); err == nil {
		t.Error("a wrong password was accepted")
	}

	// What the coordinator sees on its subjects.
	seen := make(chan string, 16)
	for _, subj := range []string{"ntkbus.work", "ntkbus.work.inst1", "ntkbus.announce.run1", "ntkbus.results.run1.x"} {
		subj := subj
		if _, err := coord.Subscribe(subj, func(m *nats.Msg) { seen <- subj }); err != nil {
			t.Fatal(err)
		}
	}
	coord.Flush()

	// The sampler tries to publish work (to the queue and to one instance),
	// an announcement and a result, and to read results.
	for _, subj := range []string{"ntkbus.work", "ntkbus.work.inst1", "ntkbus.announce.run1", "ntkbus.results.run1.x"} {
		sampler.Publish(subj, []byte("forged"))
	}
	sampler.Subscribe("ntkbus.results.>", func(*nats.Msg) {})
	sampler.Flush()
	time.Sleep(200 * time.Millisecond)
	select {
	case s := <-seen:
		t.Errorf("a sampler's publish to %s got through", s)
	default:
	}
	mu.Lock()
	n := len(violations)
	mu.Unlock()
	if n < 5 {
		t.Errorf("%d permission violations reported, want 5 (4 publishes and 1 subscription): %v", n, violations)
	}

	// But it can take work from the queue and answer it, and ask for a snapshot chunk.
	if _, err := sampler.QueueSubscribe("ntkbus.work", "ntkbus-samplers", func(m *nats.Msg) { m.Respond([]byte("result")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := coord.Subscribe("ntkbus.snap.run1", func(m *nats.Msg) { m.Respond([]byte("chunk")) }); err != nil {
		t.Fatal(err)
	}
	sampler.Flush()
	coord.Flush()
	if _, err := sampler.Subscribe("ntkbus.work.inst2", func(m *nats.Msg) { m.Respond([]byte("direct result")) }); err != nil {
		t.Fatal(err)
	}
	sampler.Flush()
	if m, err := coord.Request("ntkbus.work", []byte("work"), 2*time.Second); err != nil || string(m.Data) != "result" {
		t.Errorf("coordinator → sampler work request: %v", err)
	}
	if m, err := coord.Request("ntkbus.work.inst2", []byte("work"), 2*time.Second); err != nil || string(m.Data) != "direct result" {
		t.Errorf("coordinator → one sampler instance's work request: %v", err)
	}
	if m, err := sampler.Request("ntkbus.snap.run1", []byte("chunk 0"), 2*time.Second); err != nil || string(m.Data) != "chunk" {
		t.Errorf("sampler → coordinator chunk request: %v", err)
	}
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

// docker-compose.yml: a 3-node cluster routed to itself, one coordinator
// that leaves the work to external samplers, and 16 samplers.
func TestComposeFile(t *testing.T) {
	doc := readYAML(t, "../docker-compose.yml")[0]
	svcs, _ := doc["services"].(map[string]any)
	for _, s := range []string{"nats-1", "nats-2", "nats-3", "coordinator", "sampler"} {
		if svcs[s] == nil {
			t.Errorf("service %s missing", s)
		}
	}
	for _, s := range []string{"nats-1", "nats-2", "nats-3"} {
		env, _ := get(svcs[s], "environment").(map[string]any)
		if env["NATS_NAME"] != s {
			t.Errorf("%s: NATS_NAME %v", s, env["NATS_NAME"])
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
	}
	if r := get(svcs["sampler"], "deploy", "replicas"); r != 16 {
		t.Errorf("sampler replicas = %v, want 16", r)
	}
	cmd := fmt.Sprint(get(svcs["coordinator"], "command"))
	for _, want := range []string{"train", "--samplers=0", "--nats=nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("coordinator command %s lacks %s", cmd, want)
		}
	}
	if u := get(svcs["sampler"], "environment", "NTKBUS_NATS_USER"); u != "sampler" {
		t.Errorf("samplers connect as %v, want the restricted sampler user", u)
	}
}

// deploy/k8s via kustomize: every listed resource exists and parses, NATS
// runs 3 clustered pods, the samplers 16.
func TestKubernetesManifests(t *testing.T) {
	k := readYAML(t, "kustomization.yaml")[0]
	kinds := map[string]map[string]any{}
	for _, r := range k["resources"].([]any) {
		for _, d := range readYAML(t, r.(string)) {
			kinds[fmt.Sprint(d["kind"], "/", get(d, "metadata", "name"))] = d
		}
	}
	for _, files := range get(k, "configMapGenerator").([]any) {
		for _, f := range get(files, "files").([]any) {
			_, src, _ := strings.Cut(f.(string), "=")
			if _, err := os.Stat(src); err != nil {
				t.Errorf("config map source %s: %v", src, err)
			}
		}
	}
	if r := get(kinds["StatefulSet/nats"], "spec", "replicas"); r != 3 {
		t.Errorf("NATS replicas = %v, want 3", r)
	}
	if r := get(kinds["Deployment/sampler"], "spec", "replicas"); r != 16 {
		t.Errorf("sampler replicas = %v, want 16", r)
	}
	if kinds["Job/coordinator"] == nil || kinds["Service/nats"] == nil || kinds["Secret/ntkbus-nats"] == nil {
		t.Errorf("missing resources: have %v", keys(kinds))
	}
	env := fmt.Sprint(get(kinds["StatefulSet/nats"], "spec", "template", "spec", "containers"))
	for _, want := range []string{"nats-0.nats:6222", "nats-1.nats:6222", "nats-2.nats:6222"} {
		if !strings.Contains(env, want) {
			t.Errorf("NATS pods do not route to %s", want)
		}
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
