package model

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"ntkbus/model/expr"
)

// Limits on a problem file, which may come from a message as well as from
// disk: its text, its dimensions, its blocks and their components.
const (
	MaxProblemText  = 256 << 10
	maxFileDim      = 8
	maxFileOutputs  = 16
	maxFileBlocks   = 64
	maxFileComps    = 16
	maxFileHoles    = 64
	maxFilePoints   = 1 << 26
	maxFileDefs     = 256
	maxFileParams   = 256
	maxOnEntries    = 64
	maxFilePieces   = 256     // places of points over all blocks (each is checked by 4096 draws)
	maxFileWork     = 1 << 22 // Σ over residual components of operations × variables read (differentiation's work)
	maxNameLen      = 64
	defaultFileWide = 32 // hidden width of a problem file without [network]
)

// problemFile is the TOML of a problem file; docs/problems.md describes it.
type problemFile struct {
	Name        string               `toml:"name"`
	Description string               `toml:"description"`
	Coordinates []string             `toml:"coordinates"`
	Outputs     []string             `toml:"outputs"`
	Resample    bool                 `toml:"resample"`
	Domain      map[string][]float64 `toml:"domain"`
	Holes       []holeFile           `toml:"hole"`
	Parameters  map[string]float64   `toml:"parameters"`
	Definitions map[string]string    `toml:"definitions"`
	Network     *networkFile         `toml:"network"`
	Blocks      []blockFile          `toml:"block"`
	Solution    *solutionFile        `toml:"solution"`
}

type holeFile struct {
	Name   string    `toml:"name"`
	Center []float64 `toml:"center"`
	Radius float64   `toml:"radius"`
	Min    []float64 `toml:"min"`
	Max    []float64 `toml:"max"`
}

type networkFile struct {
	Layers      []int  `toml:"layers"`
	Activation  string `toml:"activation"`
	Standardize bool   `toml:"standardize"`
}

type blockFile struct {
	Name       string `toml:"name"`
	On         any    `toml:"on"`
	Points     *int   `toml:"points"`
	PointsFile string `toml:"points_file"`
	Residual   any    `toml:"residual"`
}

type solutionFile struct {
	Exact     any    `toml:"exact"`
	Reference string `toml:"reference"`
}

// The keys each table takes, for the message about a key it does not.
var fileKeys = map[string]string{
	"":         "name, description, coordinates, outputs, resample, [domain], [[hole]], [parameters], [definitions], [network], [[block]], [solution]",
	"hole":     "name, and center and radius (a ball) or min and max (a box)",
	"network":  "layers, activation, standardize",
	"block":    "name, on, points, points_file, residual",
	"solution": "exact, reference",
}

// IsProblemFile reports whether a --problem argument names a file rather
// than a built-in problem: it ends in .toml or contains a path separator.
func IsProblemFile(arg string) bool {
	return strings.HasSuffix(arg, ".toml") || strings.ContainsAny(arg, `/\`)
}

// ReadProblemFile reads a problem file and the files it names (points
// files and the reference, relative to the file's folder), checks it, and
// returns the configuration that carries it: its defaults, its text and
// those files' contents, so that a snapshot or a run's config.json holds
// everything the problem needs.
func ReadProblemFile(path string) (Config, error) {
	text, err := readBounded(path, MaxProblemText)
	if err != nil {
		return Config{}, fmt.Errorf("problem file %w", err)
	}
	f, _, err := decodeProblem(path, text)
	if err != nil {
		return Config{}, errors.New(oneLine(err.Error()))
	}
	dir := filepath.Dir(path)
	read := func(name, what string) (string, error) {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, name)
		}
		s, err := readBounded(p, MaxTableBytes)
		if err != nil {
			return "", fmt.Errorf("%s: %s: %w", path, what, err)
		}
		return s, nil
	}
	cfg := Config{Problem: f.Name, Text: text}
	for _, b := range f.Blocks {
		if b.PointsFile == "" {
			continue
		}
		if cfg.Files == nil {
			cfg.Files = map[string]string{}
		}
		if _, ok := cfg.Files[b.PointsFile]; ok {
			continue
		}
		s, err := read(b.PointsFile, fmt.Sprintf("block %s: points_file", b.Name))
		if err != nil {
			return Config{}, err
		}
		cfg.Files[b.PointsFile] = s
	}
	if f.Solution != nil && f.Solution.Reference != "" {
		s, err := read(f.Solution.Reference, "[solution] reference")
		if err != nil {
			return Config{}, err
		}
		cfg.Reference, cfg.ReferenceName = s, f.Solution.Reference
	}
	p, err := parseProblem(path, cfg, nil)
	if err != nil {
		return Config{}, err
	}
	return defaultsOf(p, cfg), nil
}

// decodeProblem decodes a problem file's TOML, refusing keys it does not
// know; where names the file in messages.
func decodeProblem(where, text string) (*problemFile, toml.MetaData, error) {
	if len(text) > MaxProblemText {
		return nil, toml.MetaData{}, fmt.Errorf("%s: %d bytes, more than the %d a problem file may have", where, len(text), MaxProblemText)
	}
	var f problemFile
	md, err := toml.Decode(text, &f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, md, fmt.Errorf("%s: line %d, column %d: %s", where, pe.Position.Line, pe.Position.Col, strings.TrimPrefix(pe.Message, "toml: "))
		}
		return nil, md, fmt.Errorf("%s: %s", where, strings.TrimPrefix(err.Error(), "toml: "))
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		table := ""
		if len(k) > 1 {
			table = k[0]
		}
		if table == "domain" || table == "parameters" || table == "definitions" {
			return nil, md, fmt.Errorf("%s: [%s] %s: not a number or string as [%s] takes", where, table, k[len(k)-1], table)
		}
		takes, ok := fileKeys[table]
		if !ok {
			takes = fileKeys[""]
		}
		what := "a problem file"
		if table != "" {
			what = "[" + table + "]"
		}
		return nil, md, fmt.Errorf("%s: unknown key %q (%s takes %s)", where, k.String(), what, takes)
	}
	return &f, md, nil
}

// parseProblem builds the problem of cfg's text (see problemFile); where
// names it in messages, and params override its [parameters].
func parseProblem(where string, cfg Config, params map[string]float64) (*Problem, error) {
	p, err := buildProblem(where, cfg, params)
	if err != nil {
		return nil, errors.New(oneLine(err.Error()))
	}
	return p, nil
}

// oneLine escapes the line breaks that quoted input may bring into a
// message, so that every message is one line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

func buildProblem(where string, cfg Config, params map[string]float64) (*Problem, error) {
	f, md, err := decodeProblem(where, cfg.Text)
	if err != nil {
		return nil, err
	}
	b := &fileBuilder{where: where, f: f, md: md, files: cfg.Files}
	p, err := b.build(params)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if cfg.Reference != "" {
		name := cfg.ReferenceName
		if name == "" {
			name = "reference"
		}
		r, err := ParseReference(name, cfg.Reference, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		p.SetReference(r)
	}
	return p, nil
}

// fileBuilder turns a decoded problem file into a Problem.
type fileBuilder struct {
	pieces int // places of points so far
	work   int // differentiation work so far (see maxFileWork)
	where  string
	f      *problemFile
	md     toml.MetaData
	files  map[string]string
	p      *Problem
	dom    *domain
	env    expr.Env // coordinates, outputs, parameters and definitions
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (b *fileBuilder) build(params map[string]float64) (*Problem, error) {
	f := b.f
	switch {
	case f.Name == "":
		return nil, errors.New(`missing name: give the problem a name, e.g. name = "burgers1d"`)
	case len(f.Name) > maxNameLen || !nameRE.MatchString(f.Name):
		return nil, fmt.Errorf("name %q: want at most %d letters, digits, '_', '.' or '-', starting with a letter or digit", f.Name, maxNameLen)
	case len(f.Coordinates) == 0:
		return nil, errors.New(`missing coordinates: name the input coordinates, e.g. coordinates = ["x", "t"]`)
	case len(f.Coordinates) > maxFileDim:
		return nil, fmt.Errorf("%d coordinates, at most %d", len(f.Coordinates), maxFileDim)
	case len(f.Outputs) == 0:
		return nil, errors.New(`missing outputs: name the network's outputs, e.g. outputs = ["u"]`)
	case len(f.Outputs) > maxFileOutputs:
		return nil, fmt.Errorf("%d outputs, at most %d", len(f.Outputs), maxFileOutputs)
	case len(f.Blocks) == 0:
		return nil, errors.New("no [[block]]: a problem needs at least one block of residuals")
	case len(f.Blocks) > maxFileBlocks:
		return nil, fmt.Errorf("%d blocks, at most %d", len(f.Blocks), maxFileBlocks)
	case len(f.Holes) > maxFileHoles:
		return nil, fmt.Errorf("%d holes, at most %d", len(f.Holes), maxFileHoles)
	case len(f.Parameters) > maxFileParams:
		return nil, fmt.Errorf("%d parameters, at most %d", len(f.Parameters), maxFileParams)
	case len(f.Definitions) > maxFileDefs:
		return nil, fmt.Errorf("%d definitions, at most %d", len(f.Definitions), maxFileDefs)
	}
	dim, outs := len(f.Coordinates), len(f.Outputs)
	b.p = &Problem{
		Name: f.Name, Dim: dim, Outputs: outs,
		Coords:      append([]string(nil), f.Coordinates...),
		OutputNames: append([]string(nil), f.Outputs...),
		Resample:    f.Resample,
	}
	if err := b.domain(); err != nil {
		return nil, err
	}
	if err := b.parameters(params); err != nil {
		return nil, err
	}
	if err := b.definitions(); err != nil {
		return nil, err
	}
	if err := b.network(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i := range f.Blocks {
		bf := &f.Blocks[i]
		if bf.Name == "" {
			return nil, fmt.Errorf("block %d: missing name", i+1)
		}
		if len(bf.Name) > maxNameLen || !nameRE.MatchString(bf.Name) {
			return nil, fmt.Errorf("block %d: name %q: want at most %d letters, digits, '_', '.' or '-'", i+1, bf.Name, maxNameLen)
		}
		if seen[bf.Name] {
			return nil, fmt.Errorf("block %s: two blocks have this name", bf.Name)
		}
		seen[bf.Name] = true
		def, err := b.block(bf)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", bf.Name, err)
		}
		if err := def.Streams.validate(dim); err != nil {
			return nil, fmt.Errorf("block %s: %w", bf.Name, err)
		}
		b.p.Blocks = append(b.p.Blocks, def)
	}
	if err := b.solution(); err != nil {
		return nil, err
	}
	return b.p, nil
}

// domain reads [domain] and [[hole]].
func (b *fileBuilder) domain() error {
	f, p := b.f, b.p
	if f.Domain == nil {
		return fmt.Errorf("missing [domain]: give an interval per coordinate, e.g. %s = [0.0, 1.0]", f.Coordinates[0])
	}
	for _, k := range sortedKeys(f.Domain) {
		if indexOf(f.Coordinates, k) < 0 {
			return fmt.Errorf("[domain] %q: not a coordinate (coordinates: %s)", k, strings.Join(f.Coordinates, ", "))
		}
	}
	p.Box = make([][2]float64, p.Dim)
	for k, c := range f.Coordinates {
		iv, ok := f.Domain[c]
		switch {
		case !ok:
			return fmt.Errorf("[domain]: missing %s: give its interval, e.g. %s = [0.0, 1.0]", c, c)
		case len(iv) != 2:
			return fmt.Errorf("[domain] %s: %d numbers, want an interval [low, high]", c, len(iv))
		case !finite(iv[0]) || !finite(iv[1]):
			return fmt.Errorf("[domain] %s = %v: not finite", c, iv)
		case !(iv[0] < iv[1]):
			return fmt.Errorf("[domain] %s = %v: the domain has zero volume (want low < high)", c, iv)
		}
		p.Box[k] = [2]float64{iv[0], iv[1]}
	}
	b.dom = &domain{box: p.Box, coords: p.Coords}
	names := map[string]bool{}
	for i, h := range f.Holes {
		where := fmt.Sprintf("[[hole]] %d", i+1)
		if h.Name != "" {
			where = "hole " + h.Name
		}
		if h.Name == "" || !expr.ValidName(h.Name) || len(h.Name) > maxNameLen {
			return fmt.Errorf("%s: want a name of letters, digits and '_' (blocks say on = \"hole NAME\")", where)
		}
		if names[h.Name] {
			return fmt.Errorf("%s: two holes have this name", where)
		}
		names[h.Name] = true
		hole := Hole{Name: h.Name}
		ball := h.Center != nil || h.Radius != 0
		box := h.Min != nil || h.Max != nil
		switch {
		case ball && box:
			return fmt.Errorf("%s: give center and radius (a ball) or min and max (a box), not both", where)
		case ball:
			if len(h.Center) != p.Dim || !allFinite(h.Center) {
				return fmt.Errorf("%s: center %v: want %d finite coordinates (%s)", where, h.Center, p.Dim, strings.Join(p.Coords, ", "))
			}
			if !(h.Radius > 0) || !finite(h.Radius) {
				return fmt.Errorf("%s: radius %v: want a positive number", where, h.Radius)
			}
			hole.Center, hole.Radius = h.Center, h.Radius
		case box:
			if len(h.Min) != p.Dim || len(h.Max) != p.Dim || !allFinite(h.Min) || !allFinite(h.Max) {
				return fmt.Errorf("%s: min %v and max %v: want %d finite coordinates each (%s)", where, h.Min, h.Max, p.Dim, strings.Join(p.Coords, ", "))
			}
			for k := range h.Min {
				if !(h.Min[k] < h.Max[k]) {
					return fmt.Errorf("%s: min %v and max %v: want min < max in every coordinate", where, h.Min, h.Max)
				}
			}
			hole.Min, hole.Max = h.Min, h.Max
		default:
			return fmt.Errorf("%s: give center and radius (a ball) or min and max (a box)", where)
		}
		b.dom.holes = append(b.dom.holes, hole)
	}
	if len(b.dom.holes) > 0 {
		p.domain = b.dom
		frac, _ := b.dom.fraction(&piece{kind: onInterior}, 4096)
		if frac < minFraction {
			return fmt.Errorf("the holes cover %.3g%% of the box: the domain keeps too little volume (at least %g%%)", 100*(1-frac), 100*minFraction)
		}
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func allFinite(v []float64) bool {
	for _, x := range v {
		if !finite(x) {
			return false
		}
	}
	return true
}

// orderedKeys lists the keys of a table in the order the file writes them.
func (b *fileBuilder) orderedKeys(table string) []string {
	var keys []string
	for _, k := range b.md.Keys() {
		if len(k) == 2 && k[0] == table {
			keys = append(keys, k[1])
		}
	}
	return keys
}

// parameters reads [parameters] with the overrides.
func (b *fileBuilder) parameters(over map[string]float64) error {
	f, p := b.f, b.p
	b.env = expr.Env{Coords: p.Coords, Fields: p.OutputNames, Consts: map[string]float64{}, Defs: map[string]*expr.Node{}}
	for _, name := range b.orderedKeys("parameters") {
		v := f.Parameters[name]
		if !finite(v) {
			return fmt.Errorf("[parameters] %s = %v: not finite", name, v)
		}
		p.Params = append(p.Params, Param{Name: name, Value: v})
	}
	for _, name := range sortedKeys(over) {
		v := over[name]
		i := -1
		for j := range p.Params {
			if p.Params[j].Name == name {
				i = j
			}
		}
		if i < 0 {
			if len(p.Params) == 0 {
				return fmt.Errorf("no parameters, got %q", name)
			}
			return fmt.Errorf("no parameter %q (it has %s)", name, strings.Join(paramNames(p.Params), ", "))
		}
		if !finite(v) {
			return fmt.Errorf("parameter %s = %v is not finite", name, v)
		}
		p.Params[i].Value = v
	}
	for _, q := range p.Params {
		b.env.Consts[q.Name] = q.Value
	}
	for _, name := range b.orderedKeys("definitions") {
		b.env.Defs[name] = nil // reserve the names for Check
	}
	if err := b.env.Check(); err != nil {
		return err
	}
	return nil
}

func paramNames(ps []Param) []string {
	n := make([]string, len(ps))
	for i, q := range ps {
		n[i] = q.Name
	}
	return n
}

// definitions parses [definitions] in file order: each may use the ones
// before it.
func (b *fileBuilder) definitions() error {
	names := b.orderedKeys("definitions")
	b.env.Defs = map[string]*expr.Node{}
	for i, name := range names {
		env := b.env
		env.NoDn = "dn is written in a block's residual, where the boundary is known"
		n, err := expr.Parse(b.f.Definitions[name], &env)
		if err != nil {
			var ee *expr.Error
			if errors.As(err, &ee) && strings.HasPrefix(ee.Msg, "unknown symbol") {
				for _, later := range names[i:] {
					if strings.Contains(ee.Msg, fmt.Sprintf("%q", later)) {
						return fmt.Errorf("[definitions] %s at %s: %s is defined after %s: a definition may use only those above it", name, ee.Pos, later, name)
					}
				}
			}
			return fmt.Errorf("[definitions] %s at %w", name, err)
		}
		b.env.Defs[name] = n
	}
	return nil
}

// network reads [network], or takes the default: three hidden layers of
// 32 tanh units.
func (b *fileBuilder) network() error {
	p, n := b.p, b.f.Network
	if n == nil {
		n = &networkFile{}
	}
	if n.Layers == nil {
		p.Layers = []int{p.Dim, defaultFileWide, defaultFileWide, defaultFileWide, p.Outputs}
	} else {
		if len(n.Layers) < 2 || n.Layers[0] != p.Dim || n.Layers[len(n.Layers)-1] != p.Outputs {
			return fmt.Errorf("[network] layers = %v: want the input width %d (the coordinates) first and the output width %d (the outputs) last", n.Layers, p.Dim, p.Outputs)
		}
		for _, w := range n.Layers {
			if w <= 0 || w > 1<<20 {
				return fmt.Errorf("[network] layers = %v: widths must be between 1 and %d", n.Layers, 1<<20)
			}
		}
		p.Layers = append([]int(nil), n.Layers...)
	}
	act := n.Activation
	if act == "" {
		act = "tanh"
	}
	a, err := ParseActivation(act)
	if err != nil {
		return fmt.Errorf("[network] activation: %w", err)
	}
	p.Activation, p.Standardize = a, n.Standardize
	return nil
}

// strings reads a field that is a string or an array of strings.
func stringsOf(v any, what string, maxN int) ([]string, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{t}, nil
	case []any:
		if len(t) == 0 {
			return nil, fmt.Errorf("%s is an empty array", what)
		}
		if len(t) > maxN {
			return nil, fmt.Errorf("%s has %d entries, at most %d", what, len(t), maxN)
		}
		out := make([]string, len(t))
		for i, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s entry %d is a %T, want a string", what, i+1, e)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is a %T, want a string or an array of strings", what, v)
}

// solution reads [solution]: exact expressions, or a reference data file
// (whose contents come with the configuration, see parseProblem).
func (b *fileBuilder) solution() error {
	s, p := b.f.Solution, b.p
	if s == nil {
		return nil
	}
	exact, err := stringsOf(s.Exact, "[solution] exact", maxFileOutputs)
	if err != nil {
		return err
	}
	if exact != nil && s.Reference != "" {
		return errors.New("[solution]: give exact or reference, not both")
	}
	if exact == nil {
		if s.Reference == "" {
			return errors.New("[solution]: give exact (an expression per output) or reference (a CSV file)")
		}
		return nil
	}
	if len(exact) != p.Outputs {
		return fmt.Errorf("[solution] exact: %d expressions for the %d outputs %v", len(exact), p.Outputs, p.OutputNames)
	}
	fns := make([]expr.Fn, len(exact))
	for o, src := range exact {
		env := b.env
		env.NoDn = "an exact solution is a function of the coordinates"
		n, err := expr.Parse(src, &env)
		if err != nil {
			return fmt.Errorf("[solution] exact %s at %w", p.OutputNames[o], err)
		}
		if vs := expr.Vars(n); len(vs) > 0 && !vs[len(vs)-1].IsCoord() {
			return fmt.Errorf("[solution] exact %s: reads the output %s; an exact solution is a function of the coordinates %s only", p.OutputNames[o], vs[len(vs)-1].Name(p.Coords, p.OutputNames), strings.Join(p.Coords, ", "))
		}
		if fns[o], err = expr.Compile(n, coordSlots); err != nil {
			return fmt.Errorf("[solution] exact %s at %w", p.OutputNames[o], err)
		}
	}
	p.Exact = func(x, u []float64) {
		for o, f := range fns {
			u[o] = f(x, nil)
		}
	}
	p.Truth = "exact solution"
	return nil
}

// coordSlots binds coordinates to the first input and nothing else.
func coordSlots(v expr.Var) (expr.Slot, error) {
	if v.IsCoord() {
		return expr.Slot{In: 0, Index: v.K}, nil
	}
	return expr.Slot{}, errors.New("reads an output where only coordinates are known")
}

// defaultsOf is the configuration of p's defaults, carrying cfg's source.
func defaultsOf(p *Problem, src Config) Config {
	cfg := Config{Problem: p.Name, Params: p.ParamMap(),
		Text: src.Text, Files: src.Files, Reference: src.Reference, ReferenceName: src.ReferenceName}
	if p.IsNetwork() {
		cfg.Layers = append([]int(nil), p.Layers...)
		cfg.Activation = p.Activation.String()
		if p.Standardize {
			cfg.Shift, cfg.Scale = p.uniformStandardization()
		}
	}
	return cfg
}
