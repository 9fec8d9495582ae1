package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"ntkbus/coordinator/report"
	"ntkbus/model"
)

// runPlot draws the figures of a run or study folder again, or compares
// Q-tensor runs (the paper's Figure 10).
func runPlot(args []string, out io.Writer) error {
	fs := newFlags("plot", "DIR   |   plot --qtensor DIR1,DIR2 [--labels A,B] --out FILE   |   plot --compare DIR1,DIR2,... [--labels ...] [--metric error_l2] --out FILE")
	qt := fs.String("qtensor", "", "Q-tensor run folders to compare, comma-separated (one row of light intensity and directors each)")
	compare := fs.String("compare", "", "training runs to compare, comma-separated: their solution error against step and against wall-clock time in one figure")
	metric := fs.String("metric", "error_l2", "the error --compare draws: error_l2 (relative L²), error_max or error_rms")
	labels := fs.String("labels", "", "row labels for --qtensor, legend entries for --compare (default: the folder names)")
	times := fs.String("times", "0,0.5,2", "times of the --qtensor columns")
	outPath := fs.String("out", "", "figure file for --qtensor")
	if err := fs.Parse(args); err != nil {
		return inputError{err}
	}
	if *qt != "" {
		return plotQTensor(out, strings.Split(*qt, ","), *labels, *times, *outPath)
	}
	if *compare != "" {
		if *outPath == "" {
			return badInput("--out is required with --compare")
		}
		var ls []string
		if *labels != "" {
			ls = strings.Split(*labels, ",")
		}
		dirs := strings.Split(*compare, ",")
		for _, d := range dirs {
			if !exists(filepath.Join(d, "train.csv")) {
				return badInput("%s holds no training run (train.csv)", d)
			}
		}
		if err := report.CompareRuns(*outPath, dirs, ls, *metric); err != nil {
			return inputError{err}
		}
		fmt.Fprintf(out, "figure: %s\n", *outPath)
		return nil
	}
	if fs.NArg() != 1 {
		return badInput("plot needs one run or study folder")
	}
	dir := fs.Arg(0)
	var files []string
	var err error
	switch {
	case exists(filepath.Join(dir, "train.csv")):
		files, err = report.RunFigures(dir)
	case exists(filepath.Join(dir, "errors.csv")):
		files, err = report.StudyFigures(dir)
	default:
		return badInput("%s holds neither a training run (train.csv) nor a study (errors.csv)", dir)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "figures: %s\n", strings.Join(files, ", "))
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func plotQTensor(out io.Writer, dirs []string, labels, times, path string) error {
	if path == "" {
		return badInput("--out is required with --qtensor")
	}
	var ls []string
	if labels != "" {
		ls = strings.Split(labels, ",")
	}
	if ls != nil && len(ls) != len(dirs) {
		return badInput("%d labels for %d runs", len(ls), len(dirs))
	}
	var ts []float64
	for _, s := range strings.Split(times, ",") {
		var t float64
		if _, err := fmt.Sscan(s, &t); err != nil {
			return badInput("--times: %q is not a number", s)
		}
		ts = append(ts, t)
	}
	var setups []*model.Setup
	var thetas [][]float64
	for _, d := range dirs {
		snap, err := model.ReadSnapshot(filepath.Join(d, "final.json"))
		if err != nil {
			return inputError{err}
		}
		s, _, theta, err := snap.Resolve()
		if err != nil {
			return inputError{err}
		}
		if s.Problem.Name != "qtensor" {
			return badInput("%s is a %s run, not qtensor", d, s.Problem.Name)
		}
		setups = append(setups, s)
		thetas = append(thetas, theta)
		if ls == nil {
			ls = append(ls, filepath.Base(d))
		}
	}
	if err := report.QTensorFigure(path, setups, thetas, ls, ts); err != nil {
		return err
	}
	fmt.Fprintf(out, "figure: %s\n", path)
	printQTensorErrors(out, setups, thetas, ls, ts)
	return nil
}

// printQTensorErrors tells how far each run is from the reference at the
// figure's times, over both components of Q.
func printQTensorErrors(out io.Writer, setups []*model.Setup, thetas [][]float64, labels []string, times []float64) {
	fmt.Fprintf(out, "error against the %s, max / RMS over Q11 and Q12 on the figure's 81×81 grid:\n", setups[0].Problem.Truth)
	w := 0
	for _, l := range labels {
		w = max(w, len(l))
	}
	line := func(first string, cells []string) {
		var b strings.Builder
		fmt.Fprintf(&b, "%-*s", w, first)
		for _, c := range cells {
			fmt.Fprintf(&b, "  %-19s", c)
		}
		fmt.Fprintln(out, strings.TrimRight(b.String(), " "))
	}
	var head []string
	for _, t := range times {
		head = append(head, fmt.Sprintf("t = %g", t))
	}
	line("", head)
	maxAbs, rms := report.QTensorErrors(setups, thetas, times)
	for r := range setups {
		var cells []string
		for k := range times {
			cells = append(cells, fmt.Sprintf("%.3g / %.3g", maxAbs[r][k], rms[r][k]))
		}
		line(labels[r], cells)
	}
}
