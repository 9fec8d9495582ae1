// Command coordinator runs ntkbus jobs: it holds θ, draws probes (in process
// or over NATS), estimates the NTK and trains PINNs with NTK loss weights.
//
//	coordinator snapshot --problem wave --seed 1 --out wave.json
//	coordinator exact --snapshot wave.json [--json]
//
// Run "coordinator help" for every subcommand.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand.
type command struct {
	name, summary string
	run           func(args []string, out io.Writer) error
}

func commands() []command {
	return []command{
		{"snapshot", "write a snapshot file: a random θ and the problem's points", runSnapshot},
		{"exact", "exact NTK trace, block traces and weights of a snapshot", runExact},
		{"estimate", "Monte Carlo estimate of the NTK, its traces and weights at a snapshot", runEstimate},
		{"spectrum", "top eigenvalues of the NTK at a snapshot: from a sketch of probes, and exact", runSpectrum},
		{"train", "train a PINN with NTK loss weights (Algorithms 1 and 3)", runTrain},
		{"study", "study errors: the estimator's error rates (Figures 5 and 6); study throughput: probes/s and the coordinator's share; study spectrum: NTK eigenvalues for operators T applied to u", runStudy},
		{"plot", "draw a run's or a study's figures again; compare Q-tensor runs", runPlot},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses: 2 for bad input (usage, flags, files), 1 for failures.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(args[1:], stdout)
			if err == nil {
				return 0
			}
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "coordinator %s: %v\n", c.name, err)
			var ue inputError
			if errors.As(err, &ue) {
				return 2
			}
			return 1
		}
	}
	fmt.Fprintf(stderr, "coordinator: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: coordinator <command> [flags]\n\ncommands:")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"coordinator <command> -h\" for its flags.")
}

// inputError marks an error in what the user gave (flags, files): exit 2.
type inputError struct{ error }

func (e inputError) Unwrap() error { return e.error }

func badInput(format string, a ...any) error { return inputError{fmt.Errorf(format, a...)} }

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: coordinator %s %s\n\nflags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; a flag error or a stray argument is bad input.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return inputError{err}
	}
	if fs.NArg() > 0 {
		return badInput("unexpected argument %q (flags go before nothing else)", fs.Arg(0))
	}
	return nil
}

// intList parses "2,500,500,1".
type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	*l = nil
	for _, f := range strings.Split(v, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil {
			return fmt.Errorf("%q is not an integer", f)
		}
		*l = append(*l, n)
	}
	return nil
}

// paramList parses "L=1,a=-0.2".
type paramList map[string]float64

func (p *paramList) String() string {
	var s []string
	for k, v := range *p {
		s = append(s, fmt.Sprintf("%s=%g", k, v))
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func (p *paramList) Set(v string) error {
	if *p == nil {
		*p = map[string]float64{}
	}
	for _, f := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("%q is not name=value", f)
		}
		var x float64
		if _, err := fmt.Sscan(val, &x); err != nil {
			return fmt.Errorf("%q: %q is not a number", k, val)
		}
		(*p)[strings.TrimSpace(k)] = x
	}
	return nil
}
