package protocol

// Codec encodes and decodes messages, reusing its buffers; one Codec serves
// one goroutine. Marshal functions append to dst and return it; Unmarshal
// functions reuse the slices already in the destination message. Unmarshal
// checks the wire format and the version only; Validate checks meaning.
type Codec struct {
	w writer
	r reader
}

// MarshalResult appends the encoding of m to dst.
func (c *Codec) MarshalResult(dst []byte, m *Result) []byte {
	w := &c.w
	w.begin(11)
	w.int("v", int64(m.Version))
	w.str("run", m.Run)
	w.int("step", m.Step)
	w.int("lo", int64(m.Lo))
	w.int("hi", int64(m.Hi))
	w.uint("tok", m.Token)
	w.str("inst", m.Instance)
	w.int("width", int64(m.Width))
	w.floats("d", m.D)
	w.int("masked", int64(m.Masked))
	w.float("sec", m.Seconds)
	return w.out(dst)
}

// UnmarshalResult decodes a Result into m.
func (c *Codec) UnmarshalResult(data []byte, m *Result) error {
	d := m.D
	*m = Result{}
	return c.r.message(data, &m.Version, []string{"run", "step", "lo", "hi", "tok", "width", "d"}, func(r *reader, k string) (err error) {
		switch k {
		case "run":
			m.Run, err = r.str(k)
		case "step":
			m.Step, err = r.int(k)
		case "lo":
			m.Lo, err = r.smallInt(k)
		case "hi":
			m.Hi, err = r.smallInt(k)
		case "tok":
			m.Token, err = r.uint(k)
		case "width":
			m.Width, err = r.smallInt(k)
		case "d":
			d, err = r.floats(k, d)
			m.D = d
		case "inst":
			m.Instance, err = r.str(k)
		case "masked":
			m.Masked, err = r.smallInt(k)
		case "sec":
			m.Seconds, err = r.float(k)
		default:
			err = r.skip()
		}
		return err
	})
}

// MarshalWorkRequest appends the encoding of m to dst.
func (c *Codec) MarshalWorkRequest(dst []byte, m *WorkRequest) []byte {
	w := &c.w
	w.begin(9)
	w.int("v", int64(m.Version))
	w.str("run", m.Run)
	w.int("step", m.Step)
	w.int("lo", int64(m.Lo))
	w.int("hi", int64(m.Hi))
	w.key("snap")
	writeRef(w, &m.Snap)
	w.int("try", int64(m.Attempt))
	w.uint("tok", m.Token)
	w.int("beat", int64(m.Beat))
	return w.out(dst)
}

func writeRef(w *writer, s *SnapshotRef) {
	w.enc.EncodeMapLen(4)
	w.int("step", s.Step)
	w.int("size", int64(s.Size))
	w.int("chunks", int64(s.Chunks))
	w.bytes("sum", s.Sum[:])
}

func readRef(r *reader, s *SnapshotRef) error {
	return r.fields([]string{"step", "size", "chunks", "sum"}, func(r *reader, k string) (err error) {
		switch k {
		case "step":
			s.Step, err = r.int(k)
		case "size":
			s.Size, err = r.smallInt(k)
		case "chunks":
			s.Chunks, err = r.smallInt(k)
		case "sum":
			err = readSum(r, &s.Sum)
		default:
			err = r.skip()
		}
		return err
	})
}

func readSum(r *reader, sum *[32]byte) error {
	n, err := r.binLen("sum")
	if err != nil {
		return err
	}
	if n != 32 {
		return malformed("sum has %d bytes, want 32", n)
	}
	copy(sum[:], r.raw(n))
	return nil
}

// UnmarshalWorkRequest decodes a WorkRequest into m.
func (c *Codec) UnmarshalWorkRequest(data []byte, m *WorkRequest) error {
	*m = WorkRequest{}
	return c.r.message(data, &m.Version, []string{"run", "step", "lo", "hi", "snap", "tok", "beat"}, func(r *reader, k string) (err error) {
		switch k {
		case "run":
			m.Run, err = r.str(k)
		case "step":
			m.Step, err = r.int(k)
		case "lo":
			m.Lo, err = r.smallInt(k)
		case "hi":
			m.Hi, err = r.smallInt(k)
		case "snap":
			err = readRef(r, &m.Snap)
		case "try":
			m.Attempt, err = r.smallInt(k)
		case "tok":
			m.Token, err = r.uint(k)
		case "beat":
			m.Beat, err = r.smallInt(k)
		default:
			err = r.skip()
		}
		return err
	})
}

// MarshalSamplerError appends the encoding of m to dst.
func (c *Codec) MarshalSamplerError(dst []byte, m *SamplerError) []byte {
	w := &c.w
	w.begin(9)
	w.int("v", int64(m.Version))
	w.str("run", m.Run)
	w.int("step", m.Step)
	w.int("lo", int64(m.Lo))
	w.int("hi", int64(m.Hi))
	w.uint("tok", m.Token)
	w.str("inst", m.Instance)
	w.str("code", m.Code)
	w.str("msg", m.Message)
	return w.out(dst)
}

// UnmarshalSamplerError decodes a SamplerError into m.
func (c *Codec) UnmarshalSamplerError(data []byte, m *SamplerError) error {
	*m = SamplerError{}
	return c.r.message(data, &m.Version, []string{"code", "tok"}, func(r *reader, k string) (err error) {
		switch k {
		case "code":
			m.Code, err = r.str(k)
		case "run":
			m.Run, err = r.str(k)
		case "step":
			m.Step, err = r.int(k)
		case "lo":
			m.Lo, err = r.smallInt(k)
		case "hi":
			m.Hi, err = r.smallInt(k)
		case "tok":
			m.Token, err = r.uint(k)
		case "inst":
			m.Instance, err = r.str(k)
		case "msg":
			m.Message, err = r.str(k)
		default:
			err = r.skip()
		}
		return err
	})
}

// MarshalPull appends the encoding of m to dst.
func (c *Codec) MarshalPull(dst []byte, m *Pull) []byte {
	w := &c.w
	w.begin(3)
	w.int("v", int64(m.Version))
	w.str("run", m.Run)
	w.str("inst", m.Instance)
	return w.out(dst)
}

// UnmarshalPull decodes a Pull into m.
func (c *Codec) UnmarshalPull(data []byte, m *Pull) error {
	*m = Pull{}
	return c.r.message(data, &m.Version, []string{"run"}, func(r *reader, k string) (err error) {
		switch k {
		case "run":
			m.Run, err = r.str(k)
		case "inst":
			m.Instance, err = r.str(k)
		default:
			err = r.skip()
		}
		return err
	})
}

// MarshalProgress appends the encoding of m to dst.
func (c *Codec) MarshalProgress(dst []byte, m *Progress) []byte {
	w := &c.w
	w.begin(5)
	w.int("v", int64(m.Version))
	w.str("run", m.Run)
	w.int("step", m.Step)
	w.uint("tok", m.Token)
	w.int("done", int64(m.Done))
	return w.out(dst)
}

// UnmarshalProgress decodes a Progress into m.
func (c *Codec) UnmarshalProgress(data []byte, m *Progress) error {
	*m = Progress{}
	return c.r.message(data, &m.Version, []string{"run", "step", "tok", "done"}, func(r *reader, k string) (err error) {
		switch k {
		case "run":
			m.Run, err = r.str(k)
		case "step":
			m.Step, err = r.int(k)
		case "tok":
			m.Token, err = r.uint(k)
		case "done":
			m.Done, err = r.smallInt(k)
		default:
			err = r.skip()
		}
		return err
	})
}

// MarshalChunkRequest appends the encoding of m to dst.
func (c *Codec) MarshalChunkRequest(dst []byte, m *ChunkRequest) []byte {
	w := &c.w
	w.begin(4)
	w.int("v", int64(m.Version))
	w.str("run", m.Run)
	w.int("step", m.Step)
	w.int("i", int64(m.Index))
	return w.out(dst)
}

// UnmarshalChunkRequest decodes a ChunkRequest into m.
func (c *Codec) UnmarshalChunkRequest(data []byte, m *ChunkRequest) error {
	*m = ChunkRequest{}
	return c.r.message(data, &m.Version, []string{"run", "step", "i"}, func(r *reader, k string) (err error) {
		switch k {
		case "run":
			m.Run, err = r.str(k)
		case "step":
			m.Step, err = r.int(k)
		case "i":
			m.Index, err = r.smallInt(k)
		default:
			err = r.skip()
		}
		return err
	})
}

// MarshalChunk appends the encoding of m to dst.
func (c *Codec) MarshalChunk(dst []byte, m *Chunk) []byte {
	w := &c.w
	w.begin(9)
	w.int("v", int64(m.Version))
	w.str("run", m.Run)
	w.int("step", m.Step)
	w.int("i", int64(m.Index))
	w.int("n", int64(m.Count))
	w.int("off", int64(m.Offset))
	w.int("size", int64(m.Size))
	w.bytes("sum", m.Sum[:])
	w.bytes("data", m.Data)
	return w.out(dst)
}

// UnmarshalChunk decodes a Chunk into m; m.Data reuses its storage.
func (c *Codec) UnmarshalChunk(data []byte, m *Chunk) error {
	buf := m.Data
	*m = Chunk{}
	return c.r.message(data, &m.Version, []string{"run", "step", "i", "n", "off", "size", "sum", "data"}, func(r *reader, k string) (err error) {
		switch k {
		case "run":
			m.Run, err = r.str(k)
		case "step":
			m.Step, err = r.int(k)
		case "i":
			m.Index, err = r.smallInt(k)
		case "n":
			m.Count, err = r.smallInt(k)
		case "off":
			m.Offset, err = r.smallInt(k)
		case "size":
			m.Size, err = r.smallInt(k)
		case "sum":
			err = readSum(r, &m.Sum)
		case "data":
			buf, err = r.bytesInto(k, buf)
			m.Data = buf
		default:
			err = r.skip()
		}
		return err
	})
}

// MarshalAnnounce appends the encoding of m to dst.
func (c *Codec) MarshalAnnounce(dst []byte, m *Announce) []byte {
	w := &c.w
	w.begin(3)
	w.int("v", int64(m.Version))
	w.str("run", m.Run)
	w.key("snap")
	writeRef(w, &m.Snap)
	return w.out(dst)
}

// UnmarshalAnnounce decodes an Announce into m.
func (c *Codec) UnmarshalAnnounce(data []byte, m *Announce) error {
	*m = Announce{}
	return c.r.message(data, &m.Version, []string{"run", "snap"}, func(r *reader, k string) (err error) {
		switch k {
		case "run":
			m.Run, err = r.str(k)
		case "snap":
			err = readRef(r, &m.Snap)
		default:
			err = r.skip()
		}
		return err
	})
}

// MarshalSnapshot appends the encoding of m to dst.
func (c *Codec) MarshalSnapshot(dst []byte, m *Snapshot) []byte {
	w := &c.w
	w.begin(8)
	w.int("v", int64(m.Version))
	w.str("run", m.Run)
	w.int("step", m.Step)
	w.key("problem")
	p := &m.Problem
	w.enc.EncodeMapLen(8)
	w.str("name", p.Name)
	w.ints("layers", p.Layers)
	w.str("act", p.Activation)
	w.floats("shift", p.InputShift)
	w.floats("scale", p.InputScale)
	w.key("params")
	keys := sortedKeys(p.Params)
	w.enc.EncodeMapLen(len(keys))
	for _, k := range keys {
		w.float(k, p.Params[k])
	}
	w.str("text", p.Text)
	w.key("files")
	names := sortedKeys(p.Files)
	w.enc.EncodeMapLen(len(names))
	for _, k := range names {
		w.str(k, p.Files[k])
	}
	w.floats("theta", m.Theta)
	w.key("points")
	w.enc.EncodeMapLen(3)
	w.uint("seed", m.Points.Seed)
	w.ints("counts", m.Points.Counts)
	w.key("blocks")
	w.enc.EncodeArrayLen(len(m.Points.Blocks))
	for i := range m.Points.Blocks {
		b := &m.Points.Blocks[i]
		w.enc.EncodeMapLen(4)
		w.str("name", b.Name)
		w.int("dim", int64(b.Dim))
		w.floats("pts", b.Points)
		w.floats("tgt", b.Targets)
	}
	w.key("probe")
	pr := &m.Probe
	w.enc.EncodeMapLen(6)
	w.uint("seed", pr.Seed)
	w.str("kind", pr.Kind)
	w.str("quot", pr.Quotient)
	w.float("dt", pr.Dt)
	w.float("eps", pr.Epsilon)
	w.str("alloc", pr.Allocation)
	w.int("width", int64(m.Width))
	return w.out(dst)
}

// UnmarshalSnapshot decodes a Snapshot into m, reusing θ's storage.
func (c *Codec) UnmarshalSnapshot(data []byte, m *Snapshot) error {
	theta := m.Theta
	*m = Snapshot{}
	return c.r.message(data, &m.Version, []string{"run", "step", "problem", "theta", "points", "probe", "width"}, func(r *reader, k string) (err error) {
		switch k {
		case "run":
			m.Run, err = r.str(k)
		case "step":
			m.Step, err = r.int(k)
		case "problem":
			err = readProblem(r, &m.Problem)
		case "theta":
			theta, err = r.floats(k, theta)
			m.Theta = theta
		case "points":
			err = readPoints(r, &m.Points)
		case "probe":
			err = readProbe(r, &m.Probe)
		case "width":
			m.Width, err = r.smallInt(k)
		default:
			err = r.skip()
		}
		return err
	})
}

func readProblem(r *reader, p *ProblemSpec) error {
	return r.fields([]string{"name"}, func(r *reader, k string) (err error) {
		switch k {
		case "name":
			p.Name, err = r.str(k)
		case "layers":
			p.Layers, err = r.ints(k, nil)
		case "act":
			p.Activation, err = r.str(k)
		case "shift":
			p.InputShift, err = r.floats(k, nil)
		case "scale":
			p.InputScale, err = r.floats(k, nil)
		case "params":
			p.Params = map[string]float64{}
			err = r.fields(nil, func(r *reader, pk string) (err error) {
				if len(p.Params) >= maxList {
					return malformed("params: more than %d", maxList)
				}
				p.Params[pk], err = r.float(pk)
				return err
			})
		case "text":
			if p.Text, err = r.str(k); err == nil && len(p.Text) > MaxProblemText {
				err = malformed("text: %d bytes, at most %d", len(p.Text), MaxProblemText)
			}
		case "files":
			err = r.fields(nil, func(r *reader, name string) (err error) {
				if p.Files == nil {
					p.Files = map[string]string{}
				}
				if len(p.Files) >= maxList {
					return malformed("files: more than %d", maxList)
				}
				p.Files[name], err = r.str(name)
				return err
			})
		default:
			err = r.skip()
		}
		return err
	})
}

func readPoints(r *reader, c *Collocation) error {
	return r.fields(nil, func(r *reader, k string) (err error) {
		switch k {
		case "seed":
			c.Seed, err = r.uint(k)
		case "counts":
			c.Counts, err = r.ints(k, nil)
		case "blocks":
			var bn int
			if bn, err = r.header(false); err != nil {
				return malformed("blocks: %v", err)
			}
			// Repeated "blocks" keys add up: the bound is on the total.
			if bn > maxList-len(c.Blocks) {
				return malformed("blocks: %d more after %d, at most %d", bn, len(c.Blocks), maxList)
			}
			for j := 0; j < bn && err == nil; j++ {
				var b BlockPoints
				err = readBlock(r, &b)
				c.Blocks = append(c.Blocks, b)
			}
		default:
			err = r.skip()
		}
		return err
	})
}

func readBlock(r *reader, b *BlockPoints) error {
	return r.fields([]string{"name", "dim", "pts"}, func(r *reader, k string) (err error) {
		switch k {
		case "name":
			b.Name, err = r.str(k)
		case "dim":
			b.Dim, err = r.smallInt(k)
		case "pts":
			b.Points, err = r.floats(k, nil)
		case "tgt":
			b.Targets, err = r.floats(k, nil)
		default:
			err = r.skip()
		}
		return err
	})
}

func readProbe(r *reader, p *ProbeSettings) error {
	return r.fields(nil, func(r *reader, k string) (err error) {
		switch k {
		case "seed":
			p.Seed, err = r.uint(k)
		case "kind":
			p.Kind, err = r.str(k)
		case "quot":
			p.Quotient, err = r.str(k)
		case "dt":
			p.Dt, err = r.float(k)
		case "eps":
			p.Epsilon, err = r.float(k)
		case "alloc":
			p.Allocation, err = r.str(k)
		default:
			err = r.skip()
		}
		return err
	})
}
