// Package deploy holds ntkbus's deployment files: the NATS server
// configuration (nats/nats.conf, nats/nats-tls.conf with TLS) with route
// authentication, the Dockerfile, the Kubernetes manifests (k8s/, applied
// with kustomize) and secrets.sh, which draws the cluster's credentials
// with Generate (one nkey per identity) and writes the users, docker
// compose services and Kubernetes objects made from them into secrets/.
// Its tests check the files statically and start real nats-servers from
// the configuration to check every permission and denial.
package deploy
