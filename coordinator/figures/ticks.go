package figures

import (
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
)

// logTicks is a plot.Ticker for log axes (given the values themselves, not
// their logarithms). Every decade is labelled 10ⁿ (every second or third one
// beyond sixteen decades), and 2…9×10ⁿ get unlabelled minor ticks. When fewer
// than three labelled decades fall inside the range, the 2× and 5× ticks
// (and if need be all of them) are labelled too, as plain numbers where
// short; and when the labels still leave a stretch of the axis of more
// than a third of it unlabelled, or the range is less than a decade (0.55
// to 1.9, whose values above 1 would have no label), the axis takes linear
// ticks instead, so that any value on it can be read. gonum's
// plot.LogTicks labels only decades, and starts a decade late below 1.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi >= lo) || math.IsInf(hi, 0) {
		return nil
	}
	if hi < 10*lo {
		// Less than a decade: linear labels (2, 4, 6, 8 rather than
		// 2, 3, …, 8 crowded at the top), each readable.
		return positiveLinear(lo, hi)
	}
	k0 := int(math.Floor(math.Log10(lo)))
	k1 := int(math.Ceil(math.Log10(hi)))
	decades := k1 - k0
	step := 1 + (decades-1)/16
	withMinor := decades <= 12

	type mark struct {
		m, k  int // value m×10^k
		label bool
	}
	var marks []mark
	for k := k0; k <= k1; k++ {
		marks = append(marks, mark{1, k, mod(k, step) == 0})
		if withMinor && k < k1 {
			for m := 2; m <= 9; m++ {
				marks = append(marks, mark{m, k, false})
			}
		}
	}
	inside := func(mk mark) bool {
		v := decimal(mk.m, mk.k)
		return v >= lo*(1-1e-9) && v <= hi*(1+1e-9)
	}
	count := func() (n int) {
		for _, mk := range marks {
			if mk.label && inside(mk) {
				n++
			}
		}
		return n
	}
	plain := false
	if count() < 3 {
		plain = true
		for i := range marks {
			marks[i].label = marks[i].m == 1 || marks[i].m == 2 || marks[i].m == 5
		}
		if count() < 2 {
			for i := range marks {
				marks[i].label = true
			}
		}
		// The largest stretch without a label, ends included, in decades.
		at := []float64{math.Log10(lo)}
		for _, mk := range marks {
			if mk.label && inside(mk) {
				at = append(at, math.Log10(decimal(mk.m, mk.k)))
			}
		}
		at = append(at, math.Log10(hi))
		gap := 0.0
		for i := 1; i < len(at); i++ {
			gap = math.Max(gap, at[i]-at[i-1])
		}
		if span := at[len(at)-1] - at[0]; span > 0 && gap > span/3 {
			return positiveLinear(lo, hi)
		}
	}
	ticks := make([]plot.Tick, 0, len(marks))
	for _, mk := range marks {
		t := plot.Tick{Value: decimal(mk.m, mk.k)}
		if mk.label {
			if plain && mk.k >= -3 && mk.k <= 4 {
				t.Label = strconv.FormatFloat(t.Value, 'f', -1, 64)
			} else {
				t.Label = powerLabel(mk.m, mk.k)
			}
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// positiveLinear is linearTicks' ticks of [lo, hi] above zero, for a log
// axis of less than a decade.
func positiveLinear(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for _, t := range (linearTicks{}).Ticks(lo, hi) {
		if t.Value > 0 {
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// decimal returns m×10^k, rounded as the decimal literal would be.
func decimal(m, k int) float64 {
	v, _ := strconv.ParseFloat(strconv.Itoa(m)+"e"+strconv.Itoa(k), 64)
	return v
}

// powerLabel formats m×10^k as "10ᵏ" or "m×10ᵏ".
func powerLabel(m, k int) string {
	if m == 1 {
		return "10" + superscript(k)
	}
	return strconv.Itoa(m) + "×10" + superscript(k)
}

// superscript writes an integer with Unicode superscript digits, as in 10⁻³.
func superscript(k int) string {
	var b strings.Builder
	for _, r := range strconv.Itoa(k) {
		switch {
		case r == '-':
			b.WriteRune('⁻')
		case r == '1':
			b.WriteRune('¹')
		case r == '2':
			b.WriteRune('²')
		case r == '3':
			b.WriteRune('³')
		default:
			b.WriteRune('⁰' + (r - '0'))
		}
	}
	return b.String()
}

// logAxis ticks a linear axis of log10 values as a log axis.
type logAxis struct{}

func (logAxis) Ticks(lo, hi float64) []plot.Tick {
	ticks := logTicks{}.Ticks(math.Pow(10, lo), math.Pow(10, hi))
	for i := range ticks {
		ticks[i].Value = math.Log10(ticks[i].Value)
	}
	return ticks
}

func mod(a, b int) int { return ((a % b) + b) % b }

// linearTicks is a plot.Ticker for linear axes giving about five labelled
// ticks at 1, 2, 2.5 or 5 ×10ⁿ spacing with minor ticks between (gonum's
// plot.DefaultTicks aims for three). Very large or small values are written
// as m×10ⁿ. With integer set, ticks are whole numbers only (matrix indices).
type linearTicks struct {
	integer bool
}

func (t linearTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil
	}
	const target = 5
	raw := (hi - lo) / target
	e := math.Floor(math.Log10(raw))
	base := math.Pow(10, e)
	var step, minorPer float64
	switch f := raw / base; {
	case f < 1.5:
		step, minorPer = 1, 5
	case f < 2.25:
		step, minorPer = 2, 4
	case f < 3.5:
		step, minorPer = 2.5, 5
	case f < 7.5:
		step, minorPer = 5, 5
	default:
		step, minorPer = 10, 5
	}
	step *= base
	if t.integer {
		step = math.Max(1, math.Round(step))
		minorPer = math.Min(minorPer, step)
	}
	// Decimals needed to write multiples of step exactly.
	decimals := 0
	for d := 0; d < 15; d++ {
		s := step * math.Pow(10, float64(d))
		if math.Abs(s-math.Round(s)) < 1e-6*s {
			decimals = d
			break
		}
	}
	maxAbs := math.Max(math.Abs(lo), math.Abs(hi))
	exp := int(math.Floor(math.Log10(maxAbs)))
	scientific := !t.integer && (exp >= 5 || exp <= -4)

	var ticks []plot.Tick
	first := math.Ceil(lo/step - 1e-9)
	last := math.Floor(hi/step + 1e-9)
	minor := step / minorPer
	for i := first - 1; i <= last; i++ {
		v := i * step
		if i >= first {
			ticks = append(ticks, plot.Tick{Value: v, Label: formatTick(v, decimals, scientific, exp)})
		}
		for j := 1.0; j < minorPer; j++ {
			if mv := v + j*minor; mv >= lo && mv <= hi {
				ticks = append(ticks, plot.Tick{Value: mv})
			}
		}
	}
	return ticks
}

// formatTick writes v with the given decimals, or as m×10^exp, with a true
// minus sign.
func formatTick(v float64, decimals int, scientific bool, exp int) string {
	if math.Abs(v) < 1e-9*math.Pow(10, float64(exp)) {
		v = 0
	}
	if v == 0 && scientific {
		return "0"
	}
	if !scientific {
		return strings.Replace(strconv.FormatFloat(v, 'f', decimals, 64), "-", "−", 1)
	}
	m := v / math.Pow(10, float64(exp))
	// Round away floating noise, then drop trailing zeros.
	s := strconv.FormatFloat(m, 'f', max(0, min(6, decimals+exp)), 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return strings.Replace(s, "-", "−", 1) + "×10" + superscript(exp)
}
