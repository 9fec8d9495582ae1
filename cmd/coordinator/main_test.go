package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ntkbus/model"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestSnapshotThenExact(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "p.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "poisson1d", "--seed", "3", "--out", snap); code != 0 {
		t.Fatalf("snapshot: exit %d: %s", code, e)
	}
	kpath := filepath.Join(dir, "K.npy")
	code, out, e := runCmd(t, "exact", "--snapshot", snap, "--json", "--eigenvalues", "4", "--kernel-out", kpath)
	if code != 0 {
		t.Fatalf("exact: exit %d: %s", code, e)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("exact --json printed %q: %v", out, err)
	}
	for _, k := range []string{"n", "p", "residual_norm", "trace", "block_traces", "weights", "seconds"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("exact --json lacks %q", k)
		}
	}
	if rep["n"].(float64) != 4 || rep["p"].(float64) != 301 {
		t.Errorf("n, p = %v, %v; want 4, 301", rep["n"], rep["p"])
	}
	tr := rep["trace"].(float64)
	var sum float64
	for name, v := range rep["block_traces"].(map[string]any) {
		sum += v.(float64)
		w := rep["weights"].(map[string]any)[name].(float64)
		if math.Abs(w-tr/v.(float64)) > 1e-12*w {
			t.Errorf("weight %s = %v, want Tr K / Tr K_bb = %v", name, w, tr/v.(float64))
		}
	}
	if math.Abs(sum-tr) > 1e-12*tr {
		t.Errorf("block traces sum to %v, trace is %v", sum, tr)
	}
	// The eigenvalues of K sum to its trace.
	var es float64
	for _, v := range rep["eigenvalues"].([]any) {
		es += v.(float64)
	}
	if math.Abs(es-tr) > 1e-10*tr {
		t.Errorf("eigenvalues sum to %v, trace %v", es, tr)
	}
	// The .npy file: magic, a 64-byte aligned header, then 16 float64 whose diagonal sums to the trace.
	data, err := os.ReadFile(kpath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\x93NUMPY\x01\x00")) {
		t.Fatalf("not an npy file")
	}
	hl := int(binary.LittleEndian.Uint16(data[8:10]))
	if (10+hl)%64 != 0 || !strings.Contains(string(data[10:10+hl]), "'shape': (4, 4)") {
		t.Fatalf("npy header %q", data[10:10+hl])
	}
	body := data[10+hl:]
	if len(body) != 16*8 {
		t.Fatalf("npy body has %d bytes", len(body))
	}
	var diag float64
	for i := 0; i < 4; i++ {
		diag += math.Float64frombits(binary.LittleEndian.Uint64(body[(i*4+i)*8:]))
	}
	if math.Abs(diag-tr) > 1e-12*tr {
		t.Errorf("diagonal of the written K sums to %v, trace %v", diag, tr)
	}
	// The table form names every block.
	code, out, _ = runCmd(t, "exact", "--snapshot", snap)
	if code != 0 || !strings.Contains(out, "pde") || !strings.Contains(out, "λ_b") {
		t.Errorf("exact table: exit %d\n%s", code, out)
	}
}

func TestBadInputExitsTwo(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exact", "--snapshot", write("a.json", `{"problem":"heat","theta":[],"blocks":[]}`)}, `unknown problem "heat"`},
		{[]string{"exact", "--snapshot", write("b.json", `{"problem":"poisson1d","layers":[1,2,1],"theta":[1],"blocks":[]}`)}, "theta has 1 values"},
		{[]string{"exact", "--snapshot", write("c.json", `{"problem":"quadratic","theta":[1,1,1],"blocks":[{"name":"data","points":[[0],[1,2]]}]}`)}, "point 1 has 2 coordinates"},
		{[]string{"exact", "--snapshot", write("d.json", `{"problem":"quadratic","theta":[1,NaN,1],"blocks":[]}`)}, "must be finite"},
		{[]string{"exact", "--snapshot", filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"exact"}, "--snapshot is required"},
		{[]string{"snapshot", "--problem", "wave"}, "--out is required"},
		{[]string{"snapshot", "--problem", "wave", "--out", "x", "--layers", "3,4,1"}, "input width 3"},
		{[]string{"nonsense"}, "unknown command"},
		{[]string{"study", "throughput", "--problem", "quadratic", "--rounds", "0"}, "--rounds 0"},
		{[]string{"study", "throughput", "--problem", "quadratic", "--nats", "off", "--compare-local=false"}, "nothing to measure"},
		{[]string{"study", "speed"}, `unknown study "speed"`},
	} {
		code, _, e := runCmd(t, tc.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", tc.args, code, e)
		}
		if !strings.Contains(e, tc.want) {
			t.Errorf("%v: stderr %q does not contain %q", tc.args, e, tc.want)
		}
		if tc.args[0] == "exact" && strings.Count(strings.TrimSpace(e), "\n") > 0 {
			t.Errorf("%v: error is not one line: %q", tc.args, e)
		}
	}
}

// estimate over an embedded NATS server with in-process samplers prints the
// same numbers as the in-process backend, to the bit (JSON floats are exact).
func TestEstimateOverNATSEqualsLocal(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "w.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "wave", "--layers", "2,16,16,1", "--points", "8,8,4,4,4", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	est := func(extra ...string) map[string]any {
		args := append([]string{"estimate", "--snapshot", snap, "--probes", "50", "--seed", "4", "--json", "--log-level", "error"}, extra...)
		code, out, e := runCmd(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, e)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	local := est("--workers", "2")
	bus := est("--nats", "embedded", "--listen", "127.0.0.1:0", "--samplers", "3")
	for _, k := range []string{"trace", "trace_se"} {
		if local[k] != bus[k] {
			t.Errorf("%s: local %v, NATS %v", k, local[k], bus[k])
		}
	}
	for _, k := range []string{"block_traces", "weights", "weights_se"} {
		if fmt.Sprint(local[k]) != fmt.Sprint(bus[k]) {
			t.Errorf("%s: local %v, NATS %v", k, local[k], bus[k])
		}
	}
	if !strings.HasPrefix(bus["backend"].(string), "nats, embedded") {
		t.Errorf("backend %v", bus["backend"])
	}
}

// A --nats URL with no server behind it fails after --connect-wait with a
// message that names the address, instead of a bare timeout.
func TestNoServerAtURL(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "q.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "quadratic", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	code, _, e := runCmd(t, "estimate", "--snapshot", snap, "--probes", "4", "--nats", "nats://"+addr, "--connect-wait", "300ms", "--log-level", "error")
	if code != 1 || !strings.Contains(e, "no NATS server answered at nats://"+addr) {
		t.Errorf("exit %d, stderr %q", code, e)
	}
}

// study throughput measures both backends on the same probes, reports the
// coordinator's share, and checks that they agree to the bit.
func TestStudyThroughput(t *testing.T) {
	code, out, e := runCmd(t, "study", "throughput", "--problem", "wave", "--layers", "2,16,16,1", "--points", "8,8,4,4,4",
		"--probes", "64", "--rounds", "2", "--workers", "2", "--samplers", "3", "--listen", "127.0.0.1:0", "--json", "--log-level", "error")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	var rep struct {
		Probes, Rounds int
		Local, NATS    *struct {
			Seconds      []float64 `json:"seconds"`
			ProbesPerSec float64   `json:"probes_per_sec"`
			Coord        *float64  `json:"coordinator_seconds"`
			Compute      *float64  `json:"sampler_seconds"`
			Pct          *float64  `json:"coordinator_percent"`
			Samplers     *int      `json:"samplers"`
		}
		Ratio    *float64 `json:"nats_vs_local"`
		SameBits *bool    `json:"same_bits"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Probes != 64 || rep.Rounds != 2 || rep.Local == nil || rep.NATS == nil {
		t.Fatalf("report %s", out)
	}
	if len(rep.Local.Seconds) != 2 || len(rep.NATS.Seconds) != 2 || !(rep.Local.ProbesPerSec > 0) || !(rep.NATS.ProbesPerSec > 0) {
		t.Errorf("rounds or rates missing: %s", out)
	}
	if rep.Local.Coord != nil {
		t.Errorf("the in-process backend has no coordinator share: %s", out)
	}
	if rep.NATS.Coord == nil || rep.NATS.Compute == nil || !(*rep.NATS.Compute > 0) || rep.NATS.Pct == nil || rep.NATS.Samplers == nil || *rep.NATS.Samplers < 1 || *rep.NATS.Samplers > 3 {
		t.Errorf("NATS stats missing: %s", out)
	}
	if rep.SameBits == nil || !*rep.SameBits || rep.Ratio == nil {
		t.Errorf("backends differ or no ratio: %s", out)
	}
}

// train over the embedded bus writes its run folder.
func TestTrainOverNATS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, out, e := runCmd(t, "train", "--problem", "wave", "--layers", "2,12,12,1", "--points", "8,8,4,4,4",
		"--steps", "6", "--init-probes", "8", "--probes", "2", "--alpha", "0.5", "--exact-every", "3",
		"--listen", "127.0.0.1:0", "--samplers", "2", "--out", dir, "--log-level", "error")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	if !strings.Contains(out, "embedded NATS server: nats://127.0.0.1:") || !strings.Contains(out, "run folder: "+dir) {
		t.Errorf("output does not name the server and the folder:\n%s", out)
	}
	for _, f := range []string{"config.json", "train.csv", "checkpoint.gob", "final.json", "summary.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, "train.csv"))
	if n := strings.Count(string(data), "\n"); n != 7 {
		t.Errorf("train.csv has %d lines, want a header and 6 rows", n)
	}
	// The final snapshot feeds "exact".
	if code, _, e := runCmd(t, "exact", "--snapshot", filepath.Join(dir, "final.json")); code != 0 {
		t.Errorf("exact on the final snapshot: %s", e)
	}
}

// plot --qtensor draws two runs against the reference and prints each run's
// distance from it, the same numbers as the model's SolutionError.
func TestPlotQTensor(t *testing.T) {
	dir := t.TempDir()
	var dirs []string
	for _, w := range []string{"estimate", "fixed"} {
		d := filepath.Join(dir, w)
		code, _, e := runCmd(t, "train", "--problem", "qtensor", "--layers", "3,6,2", "--points", "8,8,2,2,2,2",
			"--steps", "2", "--weights", w, "--init-probes", "4", "--out", d, "--log-level", "error")
		if code != 0 {
			t.Fatalf("train %s: exit %d: %s", w, code, e)
		}
		dirs = append(dirs, d)
	}
	fig := filepath.Join(dir, "figure10.png")
	code, out, e := runCmd(t, "plot", "--qtensor", strings.Join(dirs, ","), "--labels", "NTK,plain", "--times", "0,1", "--out", fig)
	if code != 0 {
		t.Fatalf("plot: exit %d: %s", code, e)
	}
	if _, err := os.Stat(fig); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "error against the finite-difference reference") || !strings.Contains(out, "t = 1") {
		t.Fatalf("plot does not report the error against the reference:\n%s", out)
	}
	snap, err := model.ReadSnapshot(filepath.Join(dirs[1], "final.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, _, theta, err := snap.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	var x []float64
	for j := 0; j < 81; j++ {
		for i := 0; i < 81; i++ {
			x = append(x, -2+4*float64(i)/80, -2+4*float64(j)/80, 1)
		}
	}
	maxAbs, rms, _ := s.SolutionError(theta, x)
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "plain") {
			line = l
		}
	}
	if want := fmt.Sprintf("%.3g / %.3g", maxAbs, rms); !strings.HasSuffix(strings.TrimSpace(line), want) {
		t.Errorf("the plain run's line %q does not end with its error at t = 1, %s", line, want)
	}
	if code, _, _ := runCmd(t, "plot", "--qtensor", dirs[0], "--labels", "a,b", "--out", fig); code != 2 {
		t.Errorf("two labels for one run: exit %d, want 2", code)
	}
}
