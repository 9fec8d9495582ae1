#!/usr/bin/env python3
"""Reference solution of problems/allen_cahn1d.toml.

    u_t - d u_xx + 5 u^3 - 5 u = 0 on (-1, 1) x (0, 1],  d = 1e-4,
    u(x, 0) = x^2 cos(pi x), periodic in x (equivalently, for these even
    data, u_x(+-1, t) = 0).

Method: Fourier pseudo-spectral in x on the 2-periodic domain, ETDRK4 in
time (Cox & Matthews 2002, with the contour-integral coefficients of
Kassam & Trefethen 2005) -- the method of the data of Raissi et al. 2019.
The solution is evaluated on the output grid by its Fourier series.

The periodic extension of the initial data has a kink at x = +-1 (u_x jumps
from -2 to 2), which diffusion smooths at once but which makes the Fourier
series converge algebraically rather than spectrally: with the cubic term
dealiased (the modes below N/4 kept), the difference to a solution on twice
the grid falls about 5-fold per doubling (measured: 1.4e-6, then 2.8e-7 at
t = 0.25; 3.9e-10, then 7.8e-11 at t = 1), and halving dt changes nothing
visible (1e-13). The largest differences are at the first times next to
x = +-1, inside the boundary layer of width sqrt(d t) that smooths the kink.
The script solves on 4096 and 8192 grid points with dt = 1e-5, prints their
difference (over all times, and from t = 0.1 and t = 0.25 on), and writes
the finer solution (its error some 5 times below that difference) only
when the two agree within 1e-4 everywhere and 1e-6 from t = 0.25 on.

Output: problems/allen_cahn1d.csv with columns x, t, u on the grid
x = -1, -0.99, ..., 1 (201 points) by t = 0, 0.01, ..., 1 (101 points).

Run: python3 scripts/reference/allen_cahn1d.py   (numpy; 5 to 20 minutes)
"""
import os
import sys

import numpy as np

D, A = 1e-4, 5.0


def solve(xs, ts, N, dt):
    x = -1 + 2 * np.arange(N) / N
    k = np.pi * np.fft.rfftfreq(N, d=1.0 / N)  # wave numbers of period 2
    L = -D * k ** 2
    E, E2 = np.exp(dt * L), np.exp(dt * L / 2)
    M = 32
    r = np.exp(1j * np.pi * (np.arange(1, M + 1) - 0.5) / M)
    LR = dt * L[:, None] + r[None, :]
    Q = dt * np.real(np.mean((np.exp(LR / 2) - 1) / LR, axis=1))
    f1 = dt * np.real(np.mean((-4 - LR + np.exp(LR) * (4 - 3 * LR + LR ** 2)) / LR ** 3, axis=1))
    f2 = dt * np.real(np.mean((2 + LR + np.exp(LR) * (-2 + LR)) / LR ** 3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * LR - LR ** 2 + np.exp(LR) * (4 - LR)) / LR ** 3, axis=1))
    keep = np.arange(len(k)) < N // 4  # dealiasing of the cubic term

    def nonlin(v):
        u = np.fft.irfft(v, n=N)
        return np.fft.rfft(A * u - A * u ** 3) * keep

    v = np.fft.rfft(x ** 2 * np.cos(np.pi * x)) * keep
    m = np.arange(len(k))
    phase = np.exp(1j * np.pi * np.outer(xs + 1, m))
    out = []
    n = 0
    for target in np.rint(np.asarray(ts) / dt).astype(int):
        while n < target:
            Nv = nonlin(v)
            a = E2 * v + Q * Nv
            Na = nonlin(a)
            b = E2 * v + Q * Na
            Nb = nonlin(b)
            c = E2 * a + Q * (2 * Nb - Nv)
            Nc = nonlin(c)
            v = E * v + Nv * f1 + 2 * (Na + Nb) * f2 + Nc * f3
            n += 1
        coef = v / N
        coef[1:] *= 2
        coef[-1] /= 2  # the Nyquist mode (zero after dealiasing)
        out.append(np.real(phase @ coef))
    return np.array(out)


def main():
    xs = np.array([(i - 100) / 100 for i in range(201)])
    ts = np.array([j / 100 for j in range(101)])
    coarse = solve(xs, ts, 4096, 1e-5)
    fine = solve(xs, ts, 8192, 1e-5)
    fine[0] = coarse[0] = xs ** 2 * np.cos(np.pi * xs)  # the initial data exactly
    d = np.abs(coarse - fine)
    diff, late, later = d.max(), d[ts >= 0.1].max(), d[ts >= 0.25].max()
    j, i = np.unravel_index(d.argmax(), d.shape)
    print(f"4096 against 8192 grid points (dt 1e-5): max difference {diff:.2e} (at t = {ts[j]}, x = {xs[i]}),"
          f" {late:.2e} from t = 0.1, {later:.2e} from t = 0.25")
    if diff > 1e-4 or later > 1e-6:
        sys.exit("the two resolutions disagree: not writing the data")
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "problems", "allen_cahn1d.csv")
    with open(path, "w") as f:
        f.write("# Allen-Cahn equation, d = 1e-4, u(x,0) = x^2 cos(pi x): Fourier ETDRK4 solution\n")
        f.write(f"# by scripts/reference/allen_cahn1d.py (8192 grid points, dt 1e-5); 4096 against 8192 points:"
                f" {diff:.1e} (t = {ts[j]}, x = {xs[i]}), {late:.1e} from t = 0.1, {later:.1e} from t = 0.25\n")
        f.write("x,t,u\n")
        for j, t in enumerate(ts):
            for i, x in enumerate(xs):
                f.write(f"{x!r},{t!r},{fine[j, i]:.15g}\n")
    print(f"wrote {os.path.normpath(path)}: {len(xs)} x {len(ts)} points")


if __name__ == "__main__":
    main()
