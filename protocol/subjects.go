package protocol

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the subject prefix of a default deployment.
const DefaultPrefix = "ntkbus"

// ServiceName is the samplers' NATS micro service name: "nats micro ls"
// and "nats micro stats ntkbus-sampler" show every instance.
const ServiceName = "ntkbus-sampler"

// Subjects are all the subjects of one deployment, under one prefix. Every
// subject a sampler publishes on ends with <id>, the identity of its
// credential, and a server's permissions let credential <id> publish only
// there (see natsbus.SamplerPermissions): the coordinator takes a
// message's sender from its subject, which the server vouches for, never
// from the message.
//
//	<prefix>.announce.<run>       "run <run> has work and this snapshot": idle samplers pull, and prefetch
//	<prefix>.pull.<run>.<id>      an idle sampler of credential <id> asks for a batch; the answer
//	                              (a work request, or "none") goes to its inbox _INBOX_<id>.> only
//	<prefix>.snap.<run>.<id>      snapshot chunk requests from <id>, answered on _INBOX_<id>.> only
//	<prefix>.results.<run>.<id>   what <id> says about its batches: progress, results, errors
type Subjects struct{ Prefix string }

// NewSubjects checks prefix: dot-separated tokens without spaces or wildcards.
func NewSubjects(prefix string) (Subjects, error) {
	if prefix == "" {
		return Subjects{}, fmt.Errorf("empty subject prefix")
	}
	for _, tok := range strings.Split(prefix, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			return Subjects{}, fmt.Errorf("subject prefix %q: tokens must be non-empty, without spaces, * or >", prefix)
		}
	}
	return Subjects{Prefix: prefix}, nil
}

// Pull is the wildcard of a run's pull requests, where the coordinator
// serves them.
func (s Subjects) Pull(run string) string { return s.Prefix + ".pull." + run + ".*" }

// PullFrom is where credential id asks for a batch of a run.
func (s Subjects) PullFrom(run, id string) string { return s.Prefix + ".pull." + run + "." + id }

// Snapshot is the wildcard of a run's chunk requests, where the
// coordinator serves them.
func (s Subjects) Snapshot(run string) string { return s.Prefix + ".snap." + run + ".*" }

// SnapshotFrom is where credential id requests chunks of a run's snapshot.
func (s Subjects) SnapshotFrom(run, id string) string { return s.Prefix + ".snap." + run + "." + id }

// Inbox is the inbox prefix of credential id: the coordinator answers a
// pull or a chunk request only on a reply subject under the Inbox of the
// id its subject names, and a server confines id to reading its own inboxes.
func Inbox(id string) string { return "_INBOX_" + id }

// Announce is the subject of a run's announcements.
func (s Subjects) Announce(run string) string { return s.Prefix + ".announce." + run }

// AnnounceAll matches every run's announcements.
func (s Subjects) AnnounceAll() string { return s.Prefix + ".announce.*" }

// Results is the wildcard of a run's result subjects.
func (s Subjects) Results(run string) string { return s.Prefix + ".results." + run + ".*" }

// ResultsFrom is where credential id reports on its batches of a run.
func (s Subjects) ResultsFrom(run, id string) string {
	return s.Prefix + ".results." + run + "." + id
}

// Sender is the identity a subject of the form <...>.<id> names (its last
// token), or an error when that is no identity. Only a server's
// permissions make it the sender's: see Subjects.
func Sender(subject string) (string, error) {
	id := subject[strings.LastIndexByte(subject, '.')+1:]
	if err := ValidIdentity(id); err != nil {
		return "", err
	}
	return id, nil
}

// ValidRunID reports whether id can be a run id: one subject token of
// letters, digits, '-' and '_', 1 to 64 characters.
func ValidRunID(id string) error { return validToken("run id", id) }

// ValidIdentity reports whether id can name a credential in subjects
// (chunk requests, inbox prefixes): the same alphabet as a run id.
func ValidIdentity(id string) error { return validToken("identity", id) }

// ValidInstance reports whether id can be a sampler instance name (a
// replica's name, for logs only: it proves nothing): the same alphabet as
// a run id.
func ValidInstance(id string) error { return validToken("sampler instance", id) }

func validToken(what, id string) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("%s %q: want 1 to 64 characters", what, id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%s %q: only letters, digits, - and _", what, id)
		}
	}
	return nil
}
