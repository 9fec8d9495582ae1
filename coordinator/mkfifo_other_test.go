//go:build !unix

package coordinator

import "errors"

func syscallMkfifo(string) error { return errors.New("no FIFOs") }
