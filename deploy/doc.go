// Package deploy holds ntkbus's deployment files: the NATS server
// configuration with its users and permissions (nats/nats.conf), the
// Dockerfile, and the Kubernetes manifests (k8s/, applied with kustomize).
// It has no code; its tests check the files statically and start a real
// nats-server from the configuration to check the permissions.
package deploy
