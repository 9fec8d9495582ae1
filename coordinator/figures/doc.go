// Package figures draws the PNG figures researchers read ntkbus results
// from, on top of gonum/plot: loss curves and loss weights, Monte Carlo
// error rates, NTK heatmaps, and fields of a trained PINN.
//
// Each figure kind is one function that takes plain slices and a small
// options struct and writes a PNG:
//
//   - LinePlot: named series on linear or log axes (loss curves, weights λ
//     over steps, NTK eigenvalues), each optionally with a shaded band
//     (a confidence interval), error bars, a dashed or dotted style, a
//     shared colour (Group: "exact" dashed beside "estimate" solid), or
//     drawn as markers (data points beside true and fitted curves, the
//     paper's Figure 4); plus power-law Reference lines C·x^slope such as
//     "O(N⁻¹) reference".
//   - ErrorRatePlot: log-log mean squared error against the number of
//     samples N with standard-error bars, an O(1/N) reference and the
//     fitted slope with its 95% interval in the legend (Figure 6). The fit
//     is FitLogLog.
//   - Heatmaps: square matrices in one or more panels, row 0 on top as in
//     matplotlib's imshow, each with a colour bar, optionally on a shared
//     colour range so an exact NTK and its estimates compare colour for
//     colour (Figures 5 and 7).
//   - FieldMaps: scalars on regular 2-D grids side by side, with colour
//     bars, optional contour lines and a diverging palette centred at 0
//     for errors (Figure 9), and optional headless director segments from
//     a coarser vector grid on top (Figure 10).
//
// Sizes are in pixels: the written PNG is exactly Size.Width×Size.Height,
// drawn at Size.DPI (DefaultDPI, 150, if zero). Text and lines are sized
// in points, so a larger DPI makes them larger within the same image.
//
// Bad input is an error, not a crash: mismatched lengths, grids that do
// not match their values, non-square matrices. Points with NaN or
// infinite values, and non-positive values on a log axis, are skipped
// (NaN cells of heatmaps and fields are drawn dark grey); a figure left
// with no data at all returns an error wrapping ErrNoData. Every error
// names the figure's file.
//
// Legends are placed inside the axes where no line, marker, band edge or
// error bar passes, and outside to the right when there is no such place.
// Log axes carry power-of-ten labels (10⁻³), with 2× and 5× labels when
// they span less than three decades.
//
// All text may contain Unicode superscripts (N⁻¹), subscript digits (λ₁)
// and the markup ^{…} and _{…} (λ_{D}); they are drawn as small raised or
// lowered characters, since the bundled Liberation fonts lack some of these
// glyphs. Other missing glyphs (∇, ⊙) are not drawn.
//
// Colours: series follow matplotlib's tab10 cycle; heatmaps and fields use
// an approximation of viridis, or Moreland's smooth blue–red diverging map.
//
// The package has no global mutable state and its functions may be called
// concurrently.
package figures
