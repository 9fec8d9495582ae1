#!/usr/bin/env python3
"""Reference solution of problems/burgers1d.toml.

    u_t + u u_x = nu u_xx on (-1, 1) x (0, 1],  nu = 0.01/pi,
    u(x, 0) = -sin(pi x),  u(-1, t) = u(1, t) = 0.

Method: the Cole-Hopf transform gives the solution as a ratio of two
integrals (Basdevant et al. 1986, the data of Raissi et al. 2019):

    u(x, t) = - I1 / I0,
    I_k = int sin(pi (x - c z))^k exp(-cos(pi (x - c z)) / (2 pi nu) - z^2) dz,
    c = sqrt(4 nu t),

computed by the trapezoidal rule on z in [-Z, Z] (spectrally accurate for
this smooth, rapidly decaying integrand), in log-sum-exp form so that the
factor exp(1/(2 pi nu)) = e^50 does not overflow. The script checks its own
accuracy twice: the quadrature with half the step, and an independent
method, a Fourier pseudo-spectral solution (the odd 2-periodic extension of
the data, which has u(+-1, t) = 0, with 4096 modes and ETDRK4 in time).
Both differences are printed; the data are written only when they are
below 1e-9.

Output: problems/burgers1d.csv with columns x, t, u on the grid
x = -1, -0.99, ..., 1 (201 points) by t = 0, 0.01, ..., 1 (101 points).

Run: python3 scripts/reference/burgers1d.py   (numpy; takes about a minute)
"""
import os
import sys

import numpy as np

NU = 0.01 / np.pi


def cole_hopf(x, t, dz=0.01, Z=20.0):
    """u(x, t) for arrays x at one time t > 0."""
    c = np.sqrt(4 * NU * t)
    z = np.arange(-Z, Z + dz / 2, dz)
    y = x[:, None] - c * z[None, :]
    e = -np.cos(np.pi * y) / (2 * np.pi * NU) - z[None, :] ** 2
    m = e.max(axis=1, keepdims=True)
    w = np.exp(e - m)
    return -(np.sin(np.pi * y) * w).sum(axis=1) / w.sum(axis=1)


def spectral(xs, ts, N=4096, dt=2e-5):
    """Fourier pseudo-spectral ETDRK4 (Kassam & Trefethen 2005) on the
    2-periodic domain, evaluated at xs (by the Fourier series) at times ts."""
    x = -1 + 2 * np.arange(N) / N
    k = np.pi * np.fft.rfftfreq(N, d=1.0 / N)  # wave numbers of period 2
    L = -NU * k ** 2
    E, E2 = np.exp(dt * L), np.exp(dt * L / 2)
    M = 32
    r = np.exp(1j * np.pi * (np.arange(1, M + 1) - 0.5) / M)
    LR = dt * L[:, None] + r[None, :]
    Q = dt * np.real(np.mean((np.exp(LR / 2) - 1) / LR, axis=1))
    f1 = dt * np.real(np.mean((-4 - LR + np.exp(LR) * (4 - 3 * LR + LR ** 2)) / LR ** 3, axis=1))
    f2 = dt * np.real(np.mean((2 + LR + np.exp(LR) * (-2 + LR)) / LR ** 3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * LR - LR ** 2 + np.exp(LR) * (4 - LR)) / LR ** 3, axis=1))
    g = -0.5j * k  # N(u) = -(u^2/2)_x
    dealias = np.arange(len(k)) < N // 3  # the 2/3 rule: modes above N/3 are zeroed

    def nonlin(v):
        u = np.fft.irfft(v, n=N)
        return g * np.fft.rfft(u * u) * dealias

    v = np.fft.rfft(-np.sin(np.pi * x))
    out = []
    steps = np.rint(np.asarray(ts) / dt).astype(int)
    n = 0
    for target in steps:
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
        # The Fourier series at xs.
        m = np.arange(len(k))
        coef = v / N
        coef[1:] *= 2
        if N % 2 == 0:
            coef[-1] /= 2
        phase = np.exp(1j * np.pi * np.outer(xs + 1, m))
        out.append(np.real(phase @ coef))
    return np.array(out)


def main():
    xs = np.array([(i - 100) / 100 for i in range(201)])
    ts = np.array([j / 100 for j in range(101)])
    U = np.empty((len(ts), len(xs)))
    U_half = np.empty_like(U)
    for j, t in enumerate(ts):
        if t == 0:
            U[j] = U_half[j] = -np.sin(np.pi * xs)
            continue
        U[j] = cole_hopf(xs, t)
        U_half[j] = cole_hopf(xs, t, dz=0.005)
    U[:, 0] = U[:, -1] = 0  # the boundary values the symmetry gives exactly
    quad = np.abs(U - U_half).max()
    print(f"Cole-Hopf quadrature: step 0.01 against 0.005, max difference {quad:.2e}")
    S = spectral(xs, ts)
    spec = np.abs(U - S).max()
    print(f"Cole-Hopf against Fourier ETDRK4 (4096 modes, dt 2e-5): max difference {spec:.2e}")
    if max(quad, spec) > 1e-9:
        sys.exit("the two methods disagree beyond 1e-9: not writing the data")
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "problems", "burgers1d.csv")
    with open(path, "w") as f:
        f.write("# Burgers' equation, nu = 0.01/pi, u(x,0) = -sin(pi x): Cole-Hopf solution\n")
        f.write(f"# by scripts/reference/burgers1d.py; quadrature check {quad:.1e}, spectral check {spec:.1e}\n")
        f.write("x,t,u\n")
        for j, t in enumerate(ts):
            for i, x in enumerate(xs):
                f.write(f"{x!r},{t!r},{U[j, i]:.15g}\n")
    print(f"wrote {os.path.normpath(path)}: {len(xs)} x {len(ts)} points")


if __name__ == "__main__":
    main()
