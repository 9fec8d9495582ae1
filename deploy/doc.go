// Package deploy holds ntkbus's deployment files: the NATS server
// configuration (nats/nats.conf, nats/nats-tls.conf with TLS) with its users
// and permissions (nats/auth.conf) and route authentication, the
// Dockerfile, the Kubernetes manifests (k8s/, applied with kustomize) and
// secrets.sh, which draws the passwords. It has no code; its tests check
// the files statically and start real nats-servers from the configuration
// to check every permission and denial.
package deploy
