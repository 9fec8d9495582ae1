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
//	<prefix>.work               work requests; samplers' queue group <prefix>-samplers
//	<prefix>.work.<instance>    work requests for one sampler instance (its micro id)
//	<prefix>.snap.<run>         snapshot chunk requests, answered by the coordinator
//	<prefix>.announce.<run>     "a new snapshot exists", so idle samplers prefetch it
//	<prefix>.results.<run>.<t>  where samplers send results (the work request's reply subject)
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

// WorkTo is the subject of work requests for one sampler instance, named by
// its micro service instance id. The coordinator addresses batches to the
// least loaded instance it knows: a queue group picks a member at random,
// which leaves some samplers idle while others queue.
func (s Subjects) WorkTo(instance string) string { return s.Prefix + ".work." + instance }

// QueueGroup is the samplers' queue group.
func (s Subjects) QueueGroup() string { return s.Prefix + "-samplers" }

// Snapshot is the subject where a run's snapshot chunks are served.
func (s Subjects) Snapshot(run string) string { return s.Prefix + ".snap." + run }

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
func ValidRunID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("run id %q: want 1 to 64 characters", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("run id %q: only letters, digits, - and _", id)
		}
	}
	return nil
}
