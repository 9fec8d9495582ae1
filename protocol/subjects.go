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

// Subjects are all the subjects of one deployment, under one prefix:
//
//	<prefix>.work                 work requests, to the samplers' queue group <prefix>-samplers only
//	<prefix>.snap.<run>.<id>      snapshot chunk requests from credential <id>, answered by the
//	                              coordinator on that credential's inbox _INBOX_<id>.> only
//	<prefix>.announce.<run>       "a new snapshot exists", so idle samplers prefetch it
//	<prefix>.results.<run>.<t>    where samplers answer (the work request's reply subject)
//
// The subjects are laid out so that a server's permissions can confine a
// sampler credential <id>: it may subscribe to the work subject only as a
// member of the queue group, publish chunk requests only under its own
// <id>, and read only its own inboxes (see natsbus.SamplerPermissions).
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

// Work is the subject of work requests.
func (s Subjects) Work() string { return s.Prefix + ".work" }

// QueueGroup is the samplers' queue group.
func (s Subjects) QueueGroup() string { return s.Prefix + "-samplers" }

// Snapshot is the wildcard of a run's chunk requests, where the
// coordinator serves them.
func (s Subjects) Snapshot(run string) string { return s.Prefix + ".snap." + run + ".*" }

// SnapshotFrom is where credential id requests chunks of a run's snapshot.
func (s Subjects) SnapshotFrom(run, id string) string { return s.Prefix + ".snap." + run + "." + id }

// Inbox is the inbox prefix of credential id: the coordinator sends a
// chunk only to a reply subject under the Inbox of the id its request
// names, and a server confines id to reading its own inboxes.
func Inbox(id string) string { return "_INBOX_" + id }

// Announce is the subject of a run's snapshot announcements.
func (s Subjects) Announce(run string) string { return s.Prefix + ".announce." + run }

// AnnounceAll matches every run's announcements.
func (s Subjects) AnnounceAll() string { return s.Prefix + ".announce.*" }

// Results is the wildcard of a run's result subjects.
func (s Subjects) Results(run string) string { return s.Prefix + ".results." + run + ".*" }

// ResultsFor is one result subject of a run.
func (s Subjects) ResultsFor(run, token string) string {
	return s.Prefix + ".results." + run + "." + token
}

// ValidRunID reports whether id can be a run id: one subject token of
// letters, digits, '-' and '_', 1 to 64 characters.
func ValidRunID(id string) error { return validToken("run id", id) }

// ValidIdentity reports whether id can name a credential in subjects
// (chunk requests, inbox prefixes): the same alphabet as a run id.
func ValidIdentity(id string) error { return validToken("identity", id) }

// ValidInstance reports whether id can be a sampler instance id (a NATS
// micro id): the same alphabet as a run id.
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
