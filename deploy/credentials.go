package deploy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"ntkbus/coordinator/natsbus"
	"ntkbus/protocol"
)

// Credentials are a cluster's identities: one nkey for the coordinator and
// one per sampler (sampler-1 … sampler-N), and the route password.
type Credentials struct {
	Subjects    protocol.Subjects
	Route       string            // the route password
	Coordinator string            // its seed
	Samplers    map[string]string // seed by identity
}

// SamplerID is the identity of sampler i (from 1).
func SamplerID(i int) string { return "sampler-" + strconv.Itoa(i) }

// Generate makes (or updates) the credentials of a cluster with n samplers
// in dir: each identity's nkey seed in <identity>.nk and the route password
// in route.password, readable by their owner only; the seeds that exist
// are kept unless force, so adding samplers keeps the others' keys, and
// the seeds of samplers beyond n are removed. It then writes, from them,
// the server's users (users.conf), the docker compose services
// (compose.yml) and the Kubernetes objects (k8s.yaml) of the cluster, and
// root/.env for docker compose. Every secret file's mode is set to 0600,
// also of a file that existed with another.
func Generate(root, dir string, n int, subjects protocol.Subjects, force bool) (*Credentials, error) {
	if n < 1 || n > 4096 {
		return nil, fmt.Errorf("%d samplers: want 1 to 4096", n)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	c := &Credentials{Subjects: subjects, Samplers: map[string]string{}}
	var err error
	if c.Route, err = keep(filepath.Join(dir, "route.password"), force, drawPassword); err != nil {
		return nil, err
	}
	if c.Coordinator, err = keep(filepath.Join(dir, natsbus.CoordinatorUser+".nk"), force, drawSeed); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		id := SamplerID(i)
		if c.Samplers[id], err = keep(filepath.Join(dir, id+".nk"), force, drawSeed); err != nil {
			return nil, err
		}
	}
	// Samplers beyond n leave the cluster: their keys go.
	old, _ := filepath.Glob(filepath.Join(dir, "sampler-*.nk"))
	for _, f := range old {
		if _, ok := c.Samplers[strings.TrimSuffix(filepath.Base(f), ".nk")]; !ok {
			if err := os.Remove(f); err != nil {
				return nil, err
			}
		}
	}
	users, err := c.UsersConf()
	if err != nil {
		return nil, err
	}
	for name, data := range map[string]string{"compose.yml": c.Compose(), "k8s.yaml": c.Kubernetes()} {
		if err := writeSecret(filepath.Join(dir, name), data); err != nil {
			return nil, err
		}
	}
	// The users hold public keys only, and the servers (another user in a
	// container) must read them.
	if err := os.WriteFile(filepath.Join(dir, "users.conf"), []byte(users), 0o644); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Join(dir, "users.conf"), 0o644); err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(root, filepath.Join(dir, "compose.yml"))
	if err != nil {
		return nil, err
	}
	env := fmt.Sprintf("# deploy/secrets.sh wrote this; git ignores it.\nNTKBUS_ROUTE_PASSWORD=%s\nCOMPOSE_FILE=docker-compose.yml:%s\n", c.Route, filepath.ToSlash(rel))
	if err := writeSecret(filepath.Join(root, ".env"), env); err != nil {
		return nil, err
	}
	return c, nil
}

// keep returns the contents of path, or writes and returns a new value
// when it does not exist (or force).
func keep(path string, force bool, draw func() (string, error)) (string, error) {
	if !force {
		data, err := os.ReadFile(path)
		if err == nil {
			if err := os.Chmod(path, 0o600); err != nil {
				return "", err
			}
			v := strings.TrimSpace(string(data))
			if v == "" {
				return "", fmt.Errorf("%s is empty: remove it, or draw every secret again with --force", path)
			}
			return v, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	v, err := draw()
	if err != nil {
		return "", err
	}
	return v, writeSecret(path, v+"\n")
}

// writeSecret writes data readable by its owner only, whatever mode the
// file had.
func writeSecret(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func drawPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func drawSeed() (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	return string(seed), err
}

// publicKey is the public nkey of a user seed.
func publicKey(seed string) (string, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return "", fmt.Errorf("not an nkey seed: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", err
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", errors.New("not a user nkey seed")
	}
	return pub, nil
}

// ids are the sampler identities in order.
func (c *Credentials) ids() []string {
	ids := make([]string, 0, len(c.Samplers))
	for id := range c.Samplers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.TrimPrefix(ids[i], "sampler-"))
		b, _ := strconv.Atoi(strings.TrimPrefix(ids[j], "sampler-"))
		return a < b
	})
	return ids
}

// UsersConf is the nats-server authorization of the cluster: every
// identity's public key with the permissions natsbus grants it, so the
// deployment and the embedded server cannot disagree.
func (c *Credentials) UsersConf() (string, error) {
	var b strings.Builder
	b.WriteString(`# The users of an ntkbus cluster, written by deploy/secrets.sh from the
# nkeys in this folder: one per identity, each with the permissions of
# natsbus.CoordinatorPermissions or natsbus.SamplerPermissions. A sampler
# may publish only on subjects that end in its own identity (pulls, chunk
# requests, results), read only announcements and its own inboxes, and
# answer a discovery ping: it cannot read or answer another's work, nor
# touch JetStream. The server holds public keys only. Included by
# nats.conf and nats-tls.conf; do not edit: run deploy/secrets.sh again.

authorization {
  users = [
`)
	write := func(id, seed string, p *server.Permissions) error {
		pub, err := publicKey(seed)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		fmt.Fprintf(&b, "    {\n      # %s\n      nkey: %s\n      permissions: {\n", id, pub)
		fmt.Fprintf(&b, "        publish: { allow: %s }\n", quoteList(p.Publish.Allow))
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", quoteList(p.Subscribe.Allow))
		fmt.Fprintf(&b, "        allow_responses: { max: %d, expires: %q }\n      }\n    }\n", p.Response.MaxMsgs, p.Response.Expires.String())
		return nil
	}
	if err := write(natsbus.CoordinatorUser, c.Coordinator, natsbus.CoordinatorPermissions(c.Subjects, natsbus.CoordinatorUser)); err != nil {
		return "", err
	}
	for _, id := range c.ids() {
		if err := write(id, c.Samplers[id], natsbus.SamplerPermissions(c.Subjects, id)); err != nil {
			return "", err
		}
	}
	b.WriteString("  ]\n}\n")
	return b.String(), nil
}

func quoteList(v []string) string {
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// natsURLs are the cluster's client URLs for docker compose and Kubernetes.
const (
	composeURLs = "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"
	k8sURLs     = "nats://nats-0.nats:4222,nats://nats-1.nats:4222,nats://nats-2.nats:4222"
)

// Compose is the docker compose file of the samplers, each its own service
// with its own key, and of the coordinator's key; docker compose merges it
// with docker-compose.yml (COMPOSE_FILE in .env).
func (c *Credentials) Compose() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# The samplers of docker-compose.yml, written by deploy/secrets.sh: one
# service per sampler, each with its own nkey and identity (a sampler can
# publish only under its own), and the coordinator's key. It holds secrets:
# git ignores it. Do not edit: run deploy/secrets.sh --samplers N again.
services:
  coordinator:
    environment:
      NTKBUS_NATS_NKEY_SEED: %q
`, c.Coordinator)
	for _, id := range c.ids() {
		fmt.Fprintf(&b, `  %s:
    build: {context: ., dockerfile: deploy/Dockerfile, target: runtime}
    image: ntkbus
    entrypoint: ["/usr/local/bin/sampler"]
    command: ["--nats=%s", "--identity=%s", "--name=%s", "--replicas=1"]
    environment:
      NTKBUS_NATS_NKEY_SEED: %q
      OPENBLAS_NUM_THREADS: "1"
    depends_on: [nats-1, nats-2, nats-3]
    restart: unless-stopped
    stop_signal: SIGTERM
    stop_grace_period: 60s
`, id, composeURLs, id, id, c.Samplers[id])
	}
	return b.String()
}

// Kubernetes are the cluster's secrets and samplers for kustomize: the
// route password and the coordinator's key (Secret ntkbus-nats), and per
// sampler a Secret with its key and a Deployment that reads only it.
func (c *Credentials) Kubernetes() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# The secrets and samplers of deploy/kustomization.yaml, written by
# deploy/secrets.sh: one Secret and one Deployment per sampler, so that each
# sampler pod holds its own nkey only. It holds secrets: git ignores it. Do
# not edit: run deploy/secrets.sh --samplers N again.
apiVersion: v1
kind: Secret
metadata:
  name: ntkbus-nats
type: Opaque
stringData:
  route-password: %q
  coordinator-seed: %q
`, c.Route, c.Coordinator)
	for _, id := range c.ids() {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Secret
metadata:
  name: %s
type: Opaque
stringData:
  seed: %q
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  labels: {app: sampler}
spec:
  replicas: 1
  selector:
    matchLabels: {app: sampler, identity: %s}
  template:
    metadata:
      labels: {app: sampler, identity: %s}
    spec:
      terminationGracePeriodSeconds: 60
      containers:
        - name: sampler
          image: ntkbus
          command: ["/usr/local/bin/sampler"]
          args: ["--nats=%s", "--identity=%s", "--name=%s", "--replicas=1"]
          env:
            - name: NTKBUS_NATS_NKEY_SEED
              valueFrom: {secretKeyRef: {name: %s, key: seed}}
            - {name: OPENBLAS_NUM_THREADS, value: "1"}
          resources:
            requests: {cpu: "1", memory: 512Mi}
`, id, c.Samplers[id], id, id, id, k8sURLs, id, id, id)
	}
	return b.String()
}
