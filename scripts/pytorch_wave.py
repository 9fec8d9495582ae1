#!/usr/bin/env python3
"""PyTorch baseline of ntkbus's wave benchmarks: the same work, written as a
PyTorch user writes a PINN, as fast as plain PyTorch allows.

The paper's experiment 5.2.2: u_tt − 4u_xx = 0 on (0,1)², a 2→500→500→500→1
tanh network in float64 (p = 503,001, Xavier-normal weights, zero biases),
n = 900 residuals: 300 interior points (u_tt − 4u_xx), 300 for u_t(x,0),
100 for u(x,0) − target, 100 per side (u). Input derivatives by nested
autograd: one backward pass gives u_x and u_t, two double-backward passes
give u_xx and u_tt. Each block has its own forward pass, so no pass carries
rows that do not need it; R(θ) without a parameter gradient is evaluated
with parameters that do not require grad, so autograd records only the
input-derivative graph.

Works (the names match scripts/bench-pytorch.sh and the Go benchmarks):

  residual    R(θ)                               (BenchmarkWaveResidual)
  vjp         Jᵀv at a base point whose graph is built (BenchmarkWaveVJP)
  probe       Jᵀg, then R(θ + Δt·Jᵀg), base graph built (BenchmarkWaveProbe)
  step_plain  forward, backward of ½Σ_b λ_b‖R_b‖², Adam update
                                                 (BenchmarkWaveStepPlain)
  step_alg3   a plain step plus one probe, as ntkbus's Algorithm 3 step does
              (BenchmarkWaveStepAlg3)
  ntk         the exact 900×900 K = J Jᵀ from the Jacobian's 900 rows, one
              backward pass each (J is 3.6 GB); slow, time it once
  gemm6       six (2100×500)·(500×500) GEMMs through torch.mm (the floor the
              Go side measures with BenchmarkWaveGEMMFloor)

Usage: pytorch_wave.py --threads 1 --iters 3 residual vjp probe ...
Prints one line per work: "<work> <seconds per call> <CPU seconds per call>"
(means over --iters calls after one warm-up call; the CPU time is the
process's, all threads), and a "# ..." header naming the setup. With
--flops it prints "<work> <flops>" instead: the floating-point operations of
the matrix products (aten::mm, addmm, bmm) of one call, as torch.profiler
counts them.
"""

import argparse
import math
import sys
import time

import torch

LAYERS = [2, 500, 500, 500, 1]
COUNTS = {"pde": 300, "ut0": 300, "u0": 100, "left": 100, "right": 100}
DT = 1e-4  # the predictor step of a probe (any value: the work is the same)


def init_params(gen):
    """Xavier-normal weights (std √(2/(fan_in+fan_out))), zero biases."""
    params = []
    for l in range(1, len(LAYERS)):
        fan_in, fan_out = LAYERS[l - 1], LAYERS[l]
        std = math.sqrt(2.0 / (fan_in + fan_out))
        w = torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float64) * std
        b = torch.zeros(fan_out, dtype=torch.float64)
        params += [w, b]
    return params


def draw_points(gen):
    """Uniform points of each block on the unit square, as ntkbus draws them."""
    def uniform(n):
        return torch.rand(n, 2, generator=gen, dtype=torch.float64)

    pde = uniform(COUNTS["pde"])
    ut0 = uniform(COUNTS["ut0"])
    ut0[:, 1] = 0
    u0 = uniform(COUNTS["u0"])
    u0[:, 1] = 0
    left = uniform(COUNTS["left"])
    left[:, 0] = 0
    right = uniform(COUNTS["right"])
    right[:, 0] = 1
    x = u0[:, 0]
    target = torch.sin(math.pi * x) + 0.5 * torch.sin(4 * math.pi * x)
    values = torch.cat([u0, left, right])
    y = torch.cat([target, torch.zeros(COUNTS["left"] + COUNTS["right"], dtype=torch.float64)])
    return {"pde": pde.requires_grad_(), "ut0": ut0.requires_grad_(), "values": values, "y": y}


def mlp(params, x):
    h = x
    last = len(params) // 2 - 1
    for l in range(last + 1):
        h = torch.nn.functional.linear(h, params[2 * l], params[2 * l + 1])
        if l < last:
            h = torch.tanh(h)
    return h


def residual(params, pts, graph):
    """R(θ) in block order (pde, ut0, u0, left, right). With graph, R keeps
    its graph for derivatives in θ (create_graph on every input derivative);
    without, the last derivatives record nothing."""
    grad = torch.autograd.grad
    x = pts["pde"]
    u = mlp(params, x)
    du = grad(u, x, torch.ones_like(u), create_graph=True)[0]
    u_x, u_t = du[:, 0], du[:, 1]
    ones = torch.ones_like(u_x)
    u_xx = grad(u_x, x, ones, create_graph=graph, retain_graph=True)[0][:, 0]
    u_tt = grad(u_t, x, ones, create_graph=graph)[0][:, 1]
    r_pde = u_tt - 4 * u_xx

    x = pts["ut0"]
    u = mlp(params, x)
    r_ut0 = grad(u, x, torch.ones_like(u), create_graph=graph)[0][:, 1]

    r_val = mlp(params, pts["values"])[:, 0] - pts["y"]
    return torch.cat([r_pde, r_ut0, r_val])


class Wave:
    def __init__(self, seed=1):
        gen = torch.Generator().manual_seed(seed)
        self.params = [p.requires_grad_() for p in init_params(gen)]
        self.pts = draw_points(gen)
        self.n = sum(COUNTS.values())
        self.g = torch.randn(self.n, generator=gen, dtype=torch.float64)
        offs = [0]
        for c in COUNTS.values():
            offs.append(offs[-1] + c)
        self.blocks = list(zip(offs[:-1], offs[1:]))
        self.lam = torch.ones(len(self.blocks), dtype=torch.float64)
        self.avg = torch.ones(len(self.blocks), dtype=torch.float64)
        self.opt = torch.optim.Adam(self.params, lr=1e-3, foreach=True)
        self.base = None

    def detached(self):
        return [p.detach() for p in self.params]

    def set_base(self):
        """The base point of a step: R(θ) with its graph in θ."""
        self.base = residual(self.params, self.pts, graph=True)

    # --- the works ---

    def residual(self):
        with torch.enable_grad():
            residual(self.detached(), self.pts, graph=False)

    def vjp(self):
        torch.autograd.grad(self.base, self.params, self.g, retain_graph=True)

    def probe_of(self, base):
        """d = (R(θ + Δt·Jᵀg) − R(θ))/Δt at a base point with its graph."""
        jtg = torch.autograd.grad(base, self.params, self.g, retain_graph=True)
        with torch.no_grad():
            shifted = [p + DT * v for p, v in zip(self.params, jtg)]
        r1 = residual(shifted, self.pts, graph=False)
        return (r1.detach() - base.detach()) / DT

    def probe(self):
        self.probe_of(self.base)

    def loss(self, r):
        """½ Σ_b λ_b ‖R_b‖², the objective of a step."""
        total = 0
        for b, (lo, hi) in enumerate(self.blocks):
            total = total + 0.5 * self.lam[b] * r[lo:hi].pow(2).sum()
        return total

    def step_plain(self):
        r = residual(self.params, self.pts, graph=True)
        self.opt.zero_grad(set_to_none=True)
        self.loss(r).backward()
        self.opt.step()

    def step_alg3(self):
        """Algorithm 3: R(θ_t), one probe, the moving average of the block
        traces and the weights from it, then the corrector step."""
        r = residual(self.params, self.pts, graph=True)
        d = self.probe_of(r)
        gd = self.g * d
        traces = torch.stack([gd[lo:hi].sum() for lo, hi in self.blocks])
        alpha = 1e-3
        self.avg = (1 - alpha) * self.avg + alpha * traces
        self.lam = self.avg.sum() / self.avg
        self.opt.zero_grad(set_to_none=True)
        self.loss(r).backward()
        self.opt.step()

    def ntk(self):
        """K = J Jᵀ from J's rows, one backward pass of R per row (batched
        backward passes, is_grads_batched, were no faster per row here)."""
        r = residual(self.params, self.pts, graph=True)
        p = sum(q.numel() for q in self.params)
        J = torch.empty(self.n, p, dtype=torch.float64)
        for i in range(self.n):
            rows = torch.autograd.grad(r[i], self.params, retain_graph=True)
            J[i] = torch.cat([q.reshape(-1) for q in rows])
        return J @ J.T


def gemm6(state):
    a, w, c = state
    for _ in range(6):
        torch.mm(a, w.T, out=c)


def matmul_flops(fn):
    """Flops of the matrix products of one call of fn."""
    from torch.profiler import profile
    with profile(with_flops=True) as prof:
        fn()
    return sum(e.flops for e in prof.events()
               if e.name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm") and e.flops)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--flops", action="store_true", help="count matrix-product flops instead of timing")
    ap.add_argument("works", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    wave = Wave()
    rows = 2100
    gen = torch.Generator().manual_seed(2)
    gstate = (torch.randn(rows, 500, generator=gen, dtype=torch.float64),
              torch.randn(500, 500, generator=gen, dtype=torch.float64),
              torch.empty(rows, 500, dtype=torch.float64))
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"p {sum(q.numel() for q in wave.params)}, n {wave.n}", flush=True)
    for work in args.works:
        if work == "gemm6":
            fn = lambda: gemm6(gstate)
        elif work in ("vjp", "probe"):
            wave.set_base()
            fn = getattr(wave, work)
        else:
            fn = getattr(wave, work)
        if args.flops:
            fn()  # warm-up, outside the profile
            print(f"{work} {matmul_flops(fn)}", flush=True)
            wave.base = None
            continue
        iters = 1 if work.startswith("ntk") else args.iters
        if not work.startswith("ntk"):
            fn()  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(iters):
            fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{work} {wall / iters:.6f} {cpu / iters:.6f}", flush=True)
        wave.base = None


if __name__ == "__main__":
    sys.exit(main())
