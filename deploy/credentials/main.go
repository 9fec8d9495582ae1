// Command credentials writes an ntkbus cluster's credentials and the
// deployment files made from them: deploy/secrets.sh runs it.
//
//	go run ./deploy/credentials --samplers 16 [--force]
//
// In --out (default deploy/secrets): one nkey seed per identity
// (coordinator.nk, sampler-1.nk …, mode 0600), the route password, the
// servers' users (users.conf, public keys and permissions), the samplers'
// docker compose services (compose.yml) and Kubernetes objects (k8s.yaml);
// and .env at the repository root for docker compose. Seeds that exist are
// kept (so adding samplers keeps the others' keys); --force draws them all
// again. Every secret file ends with mode 0600, whatever it had.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"ntkbus/deploy"
	"ntkbus/protocol"
)

func main() {
	samplers := flag.Int("samplers", 16, "sampler identities: sampler-1 … sampler-N, each its own key")
	out := flag.String("out", "deploy/secrets", "folder of the credentials and the files made from them")
	root := flag.String("root", ".", "repository root, where docker compose reads .env")
	prefix := flag.String("prefix", protocol.DefaultPrefix, "subject prefix of the deployment")
	force := flag.Bool("force", false, "draw every key and the route password again")
	flag.Parse()
	subjects, err := protocol.NewSubjects(*prefix)
	if err != nil {
		fail(err)
	}
	c, err := deploy.Generate(*root, *out, *samplers, subjects, *force)
	if err != nil {
		fail(err)
	}
	fmt.Printf("wrote the credentials of a coordinator and %d samplers (sampler-1 … sampler-%d) to %s/, mode 0600\n", len(c.Samplers), len(c.Samplers), *out)
	fmt.Printf("  %s: the servers' users (public keys and permissions)\n", filepath.Join(*out, "users.conf"))
	fmt.Printf("  %s: docker compose's samplers (COMPOSE_FILE in %s)\n", filepath.Join(*out, "compose.yml"), filepath.Join(*root, ".env"))
	fmt.Printf("  %s: the Kubernetes secrets and samplers (kubectl apply -k deploy/)\n", filepath.Join(*out, "k8s.yaml"))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "credentials:", err)
	os.Exit(2)
}
