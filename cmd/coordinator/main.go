// Command coordinator runs ntkbus jobs: it holds θ, draws probes (in process
// or over NATS), estimates the NTK and trains PINNs with NTK loss weights.
//
//	coordinator snapshot --problem wave --seed 1 --out wave.json
//	coordinator exact --snapshot wave.json [--json]
//
// Run "coordinator help" for every subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"

	"ntkbus/cmd/internal/buildinfo"
	"ntkbus/model"
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
		{"predict", "the network's outputs (and with --residuals its residuals) at the points of a CSV file: take a trained PINN elsewhere", runPredict},
		{"study", "study errors: the estimator's error rates (Figures 5 and 6); study throughput: probes/s and the coordinator's share; study spectrum: NTK eigenvalues for operators T applied to u", runStudy},
		{"plot", "draw a run's or a study's figures again; compare Q-tensor runs", runPlot},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses: 0 for success and help, 2 for bad input (usage, flags,
// files), 1 for failures, 128 + the signal's number after SIGINT (130) or
// SIGTERM (143).
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			return run(append(args[1:], "-h"), stdout, stderr)
		}
		usage(stdout)
		return 0
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, version())
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		if w := model.BLASWarning(); w != "" {
			fmt.Fprintf(stderr, "coordinator: warning: %s\n", w)
		}
		err := c.run(args[1:], stdout)
		var h helpRequest
		var ie interrupted
		var ue inputError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &h):
			h.fs.SetOutput(stdout)
			h.fs.Usage()
			return 0
		case errors.As(err, &ie):
			return ie.status
		}
		fmt.Fprintf(stderr, "coordinator %s: %v\n", c.name, err)
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stderr, "coordinator: unknown command %q%s; \"coordinator help\" lists the commands\n", args[0], suggest(args[0], commandNames(), ""))
	return 2
}

func commandNames() []string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return append(names, "help", "version")
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: coordinator <command> [flags]\n\ncommands:")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "version", "print the version")
	fmt.Fprintln(w, "\nRun \"coordinator help <command>\" or \"coordinator <command> -h\" for its flags.")
}

// version names the build: one version for the coordinator and the
// sampler, from the module's build information.
func version() string { return buildinfo.Line("coordinator") }

// inputError marks an error in what the user gave (flags, files): exit 2.
type inputError struct{ error }

func (e inputError) Unwrap() error { return e.error }

func badInput(format string, a ...any) error { return inputError{fmt.Errorf(format, a...)} }

// helpRequest is -h: the command's flags go to stdout and the exit status is 0.
type helpRequest struct{ fs *flag.FlagSet }

func (h helpRequest) Error() string { return "help requested" }
func (h helpRequest) Unwrap() error { return flag.ErrHelp }

// interrupted is a command stopped by a signal, after it has said so and
// written what it must; the exit status is 128 + the signal's number.
type interrupted struct{ status int }

func (e interrupted) Error() string { return fmt.Sprintf("interrupted (exit status %d)", e.status) }

// newFlags returns a flag set that reports errors instead of exiting or
// printing: parseFlags turns them into one line.
func newFlags(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: coordinator %s %s\n\nflags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; a flag error or a stray argument is bad input,
// reported in one line (with the nearest flag for a misspelled one), and
// -h is a help request.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		return helpRequest{fs}
	}
	if err != nil {
		return inputError{flagError(fs, err)}
	}
	if fs.NArg() > 0 {
		return badInput("unexpected argument %q (every option is a --flag; \"coordinator %s -h\" lists them)", fs.Arg(0), fs.Name())
	}
	return nil
}

// flagError rewrites the flag package's errors in the --flag form, with a
// suggestion for an unknown flag.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	const undefined = "flag provided but not defined: -"
	if name, ok := strings.CutPrefix(msg, undefined); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		return fmt.Errorf("unknown flag --%s%s; \"coordinator %s -h\" lists the flags", name, suggest(name, names, "--"), fs.Name())
	}
	for _, pre := range []string{"invalid value ", "invalid boolean value ", "flag needs an argument: "} {
		if strings.HasPrefix(msg, pre) {
			return errors.New(strings.Replace(msg, " -", " --", 1))
		}
	}
	return err
}

// suggest returns " (did you mean <prefix>x?)" for the known name x nearest
// to name, when it is close enough to be a slip of the keyboard.
func suggest(name string, known []string, prefix string) string {
	best, bestD := "", 1<<30
	for _, k := range known {
		d := editDistance(strings.ToLower(name), strings.ToLower(k))
		if strings.HasPrefix(k, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" || bestD > max(1, min(3, len(name)/3)) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s%s?)", prefix, best)
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment): insertions, deletions, substitutions and swaps of neighbours.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// interrupts turns SIGINT and SIGTERM into a cancelled context. The first
// signal is acknowledged at once and lets the command stop cleanly (a
// checkpoint, the command that resumes); a second one quits at once.
type interrupts struct {
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan os.Signal
	status atomic.Int32
}

func watchInterrupts(w io.Writer) *interrupts {
	ctx, cancel := context.WithCancel(context.Background())
	in := &interrupts{ctx: ctx, cancel: cancel, ch: make(chan os.Signal, 2)}
	signal.Notify(in.ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig, ok := <-in.ch
		if !ok {
			return
		}
		in.status.Store(int32(signalStatus(sig)))
		fmt.Fprintf(w, "\n%s: stopping after the work in hand (press Ctrl-C again to quit at once)\n", sig)
		cancel()
		if sig, ok = <-in.ch; ok {
			fmt.Fprintf(w, "%s again: quitting at once\n", sig)
			os.Exit(signalStatus(sig))
		}
	}()
	return in
}

// err is the command's result after an interruption.
func (in *interrupts) err() error {
	st := int(in.status.Load())
	if st == 0 {
		st = 130
	}
	return interrupted{status: st}
}

// settle turns the error of a command that a signal stopped into the
// shell's status (130, 143) instead of the cancelled context's error:
// deferred, after stop, with the command's named result.
func (in *interrupts) settle(err *error) {
	if *err != nil && in.ctx.Err() != nil {
		*err = in.err()
	}
}

// stop ends the watch: signals take their default action again.
func (in *interrupts) stop() {
	signal.Stop(in.ch)
	close(in.ch)
	in.cancel()
}

// signalStatus is the shell's exit status for a process ended by sig.
func signalStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 130
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
