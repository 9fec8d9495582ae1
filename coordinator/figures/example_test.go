package figures_test

import (
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"ntkbus/coordinator/figures"
)

// An error-rate study: the MSE of an estimator with N probes, averaged
// over repetitions, with its standard error.
func ExampleErrorRatePlot() {
	dir, err := os.MkdirTemp("", "figures")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	n := []float64{10, 30, 100, 300, 1000, 3000}
	mse := []float64{210, 64, 19, 7.1, 2.0, 0.69}
	se := []float64{40, 11, 4, 1.2, 0.4, 0.12}
	path := filepath.Join(dir, "ntk_mse.png")
	err = figures.ErrorRatePlot(path, n, mse, se, figures.ErrorRateOptions{
		Size:  figures.Size{Width: 800, Height: 560},
		Title: "NTK Monte Carlo error",
	})
	if err != nil {
		log.Fatal(err)
	}
	slope, _, lo, hi, err := figures.FitLogLog(n, mse)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("slope %.2f, 95%% CI [%.2f, %.2f]\n", slope, lo, hi)
	// Output: slope -1.00, 95% CI [-1.03, -0.97]
}

// Loss weights over training: exact weights dashed, estimates solid in
// the same colour with a confidence band.
func ExampleLinePlot() {
	dir, err := os.MkdirTemp("", "figures")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	var steps, exact, est, lo, hi []float64
	for s := range 200 {
		x := float64(s)
		steps = append(steps, x)
		exact = append(exact, 4+math.Sin(x/30))
		est = append(est, 4+math.Sin(x/30)+0.2*math.Sin(x))
		lo = append(lo, est[s]-0.3)
		hi = append(hi, est[s]+0.3)
	}
	path := filepath.Join(dir, "weights.png")
	err = figures.LinePlot(path, []figures.Series{
		{Name: "λ_{D} exact", X: steps, Y: exact, Style: figures.Dashed, Group: "D"},
		{Name: "λ_{D} estimate", X: steps, Y: est, Lo: lo, Hi: hi, Group: "D"},
	}, figures.LineOptions{Title: "Loss weights", XLabel: "Step", YLabel: "λ"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", filepath.Base(path))
	// Output: wrote weights.png
}
