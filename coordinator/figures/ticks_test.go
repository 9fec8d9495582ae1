package figures

import (
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func labels(ticks []plot.Tick, lo, hi float64) []string {
	var out []string
	for _, t := range ticks {
		if !t.IsMinor() && t.Value >= lo-1e-12 && t.Value <= hi+1e-12 {
			out = append(out, t.Label)
		}
	}
	return out
}

func TestLogTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   []string
	}{
		{0.003, 20, []string{"10⁻²", "10⁻¹", "10⁰", "10¹"}},
		{2, 40, []string{"2", "5", "10", "20"}},
		{1e-12, 1e4, []string{"10⁻¹²", "10⁻¹¹", "10⁻¹⁰", "10⁻⁹", "10⁻⁸", "10⁻⁷", "10⁻⁶", "10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰", "10¹", "10²", "10³", "10⁴"}},
		{1e-30, 1e10, []string{"10⁻³⁰", "10⁻²⁷", "10⁻²⁴", "10⁻²¹", "10⁻¹⁸", "10⁻¹⁵", "10⁻¹²", "10⁻⁹", "10⁻⁶", "10⁻³", "10⁰", "10³", "10⁶", "10⁹"}},
		// A max error of 1.7 on an axis from 0.55 to 1.95: linear labels
		// reach above 1.
		{0.55, 1.95, []string{"0.75", "1.00", "1.25", "1.50", "1.75"}},
		{0.9, 1.2, []string{"0.90", "0.95", "1.00", "1.05", "1.10", "1.15", "1.20"}},
		{3e-9, 8e-9, []string{"3×10⁻⁹", "4×10⁻⁹", "5×10⁻⁹", "6×10⁻⁹", "7×10⁻⁹", "8×10⁻⁹"}},
	} {
		got := labels(logTicks{}.Ticks(c.lo, c.hi), c.lo, c.hi)
		if len(got) != len(c.want) {
			t.Errorf("[%g, %g]: labels %q, want %q", c.lo, c.hi, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("[%g, %g]: labels %q, want %q", c.lo, c.hi, got, c.want)
				break
			}
		}
	}
	if ticks := (logTicks{}).Ticks(0, 1); ticks != nil {
		t.Errorf("non-positive range gave ticks %v", ticks)
	}
}

func TestLinearTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi  float64
		integer bool
		want    []string
	}{
		{0, 1, false, []string{"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"}},
		{-28, 25, false, []string{"−20", "−10", "0", "10", "20"}},
		{-0.5, 49.5, true, []string{"0", "10", "20", "30", "40"}},
		{-0.5, 2.5, true, []string{"0", "1", "2"}},
		{0, 3e-5, false, []string{"0", "0.5×10⁻⁵", "1×10⁻⁵", "1.5×10⁻⁵", "2×10⁻⁵", "2.5×10⁻⁵", "3×10⁻⁵"}},
	} {
		got := labels(linearTicks{integer: c.integer}.Ticks(c.lo, c.hi), c.lo, c.hi)
		if len(got) != len(c.want) {
			t.Errorf("[%g, %g]: labels %q, want %q", c.lo, c.hi, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("[%g, %g]: labels %q, want %q", c.lo, c.hi, got, c.want)
				break
			}
		}
	}
}

func TestRuns(t *testing.T) {
	got := runs("O(N⁻¹) and λ_{D}^{-2}₃")
	want := []run{{"O(N", 0}, {"−1", 1}, {") and λ", 0}, {"D", -1}, {"−2", 1}, {"3", -1}}
	if len(got) != len(want) {
		t.Fatalf("runs = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("runs = %v, want %v", got, want)
		}
	}
}

func TestSegmentHits(t *testing.T) {
	box := rect(10, 10, 20, 20)
	for _, c := range []struct {
		a, b [2]float64
		want bool
	}{
		{[2]float64{0, 0}, [2]float64{30, 30}, true},   // crosses the diagonal
		{[2]float64{0, 15}, [2]float64{5, 15}, false},  // stops short
		{[2]float64{12, 12}, [2]float64{13, 13}, true}, // inside
		{[2]float64{0, 25}, [2]float64{30, 25}, false}, // passes above
		{[2]float64{0, 30}, [2]float64{30, 0}, true},   // other diagonal
		{[2]float64{25, 0}, [2]float64{35, 30}, false}, // passes to the right
	} {
		if got := segmentHits(box, pt(c.a), pt(c.b)); got != c.want {
			t.Errorf("segment %v–%v: hits = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func rect(x0, y0, x1, y1 vg.Length) vg.Rectangle {
	return vg.Rectangle{Min: vg.Point{X: x0, Y: y0}, Max: vg.Point{X: x1, Y: y1}}
}

func pt(p [2]float64) vg.Point { return vg.Point{X: vg.Length(p[0]), Y: vg.Length(p[1])} }

func TestLegendAvoidsData(t *testing.T) {
	c := draw.New(vgimg.New(400, 300))
	// A rising line leaves the top left free.
	ch, err := buildLines([]Series{{Name: "rising", X: []float64{0, 1}, Y: []float64{0, 1}}}, nil, axes{})
	if err != nil {
		t.Fatal(err)
	}
	box, ok := ch.freeSpot(c, 80, 30)
	dc := ch.p.DataCanvas(c)
	if !ok || box.Max.X > dc.Center().X || box.Min.Y < dc.Center().Y {
		t.Errorf("legend at %v, ok %v; want the top left of %v", box, ok, dc.Rectangle)
	}
	// A zigzag over the whole area leaves no room inside.
	var x, y []float64
	for i := range 41 {
		x = append(x, float64(i))
		y = append(y, float64(i%2))
	}
	ch, err = buildLines([]Series{{Name: "zigzag", X: x, Y: y}}, nil, axes{})
	if err != nil {
		t.Fatal(err)
	}
	if box, ok := ch.freeSpot(c, 80, 30); ok {
		t.Errorf("legend placed inside at %v over a zigzag", box)
	}
}
