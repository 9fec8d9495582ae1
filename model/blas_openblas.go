//go:build openblas

package model

// Built with -tags openblas (and CGO_LDFLAGS=-lopenblas), gonum's BLAS calls
// go to OpenBLAS through cgo. This switches the process-wide implementation
// that gonum/blas/blas64 dispatches to, once, at start-up, and sets
// OpenBLAS to one thread per call: the evaluator cuts its large products
// into fixed pieces and runs them on its own helpers (gemm.go), so the
// threads are GOMAXPROCS's and the bits do not depend on them. OpenBLAS's
// own threads changed the bits with their number, and on a shared machine
// spent a quarter to a third of their time in sched_yield waiting for
// each other.

/*
#cgo LDFLAGS: -lopenblas
extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);

// cpuLevel is 2 for the AVX-512 subsets OpenBLAS's SkylakeX kernels use,
// 1 for AVX2 with FMA (its Haswell kernels), 0 otherwise.
static int cpuLevel(void) {
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl"))
		return 2;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return 1;
#endif
	return 0;
}
*/
import "C"

import (
	"fmt"
	"slices"
	"strings"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
)

const blasBackend = "openblas"

// parallelGEMM: the pieces of a cut product run on the helpers.
const parallelGEMM = true

func init() {
	blas64.Use(netlib.Implementation{})
	C.openblas_set_num_threads(1)
}

// blasKernels names the kernels OpenBLAS chose.
func blasKernels() string { return C.GoString(C.openblas_get_corename()) }

// blasWarning explains, in one line, that OpenBLAS chose generic kernels
// (older than AVX2) for a CPU that runs better ones, and what to set. OpenBLAS 0.3.21 (Debian 12) does
// not know CPUs newer than itself and falls back to its oldest x86-64
// kernels ("Prescott"), a 2100×500×500 GEMM at 14 GFLOP/s on one core of
// this project's Xeon against 40–53 with SkylakeX.
func blasWarning() string {
	core := strings.ToLower(blasKernels())
	if !strings.Contains(C.GoString(C.openblas_get_config()), "DYNAMIC_ARCH") {
		return "" // built for one CPU: nothing to choose
	}
	fast := []string{"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"}
	if slices.Contains(fast, core) {
		return ""
	}
	var want string
	switch C.cpuLevel() {
	case 2:
		want = "SkylakeX (AVX-512)"
	case 1:
		want = "Haswell (AVX2)"
	default:
		return ""
	}
	return fmt.Sprintf("OpenBLAS chose its generic %s kernels for this CPU, whose %s ones run its products several times faster: set OPENBLAS_CORETYPE=%s", blasKernels(), want, strings.Fields(want)[0])
}
