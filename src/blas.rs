//! OpenBLAS's own threads, held at one while rayon runs matrix products in parallel.
//!
//! ndarray's matrix products go to OpenBLAS, which splits every large product over threads of
//! its own. Where rayon already runs one product per core (the ranking's blocks of queries or
//! gallery items), the two kinds of threads compete for the same cores, and OpenBLAS's threads
//! spin and yield while they wait for work: ranking 5,000 queries against 50,000 items (d = 256,
//! 2 cores) took 1.73 s under the one-pass inverted softmax with OpenBLAS threaded and 1.22 s
//! with it at one thread (`OPENBLAS_NUM_THREADS=1 cargo bench --bench rank`,
//! docs/benchmarks.md). [`one_thread_per_product`] sets OpenBLAS to one thread for as long as
//! its guard lives, and the last guard alive puts back the count that was set before, so that
//! the single large products elsewhere (LAPACK's eigendecompositions in the CCA fit, which were
//! slower at one thread) keep OpenBLAS's threads.
//!
//! OpenBLAS also picks its kernels by the CPU it finds at start-up ([`kernels`]). Kernels for
//! different instruction sets (AVX-512, AVX2, AVX) add the same products in different orders,
//! so two machines' results differ at rounding level. The manifests record which kernels wrote
//! each stage (`pipeline::manifest::Machine`); `OPENBLAS_CORETYPE` picks others.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::sync::Mutex;

// OpenBLAS's thread count, global to the process (linked through `openblas-src`).
unsafe extern "C" {
    fn openblas_get_num_threads() -> c_int;
    fn openblas_set_num_threads(num_threads: c_int);
    fn openblas_get_corename() -> *const c_char;
    fn openblas_get_config() -> *const c_char;
}

/// How many guards are alive, and the thread count to put back when the last one is dropped.
static GUARDS: Mutex<(usize, c_int)> = Mutex::new((0, 0));

/// While alive, OpenBLAS runs each product on the calling thread ([`one_thread_per_product`]).
#[must_use = "OpenBLAS is back to its threads as soon as the guard is dropped"]
pub struct OneThreadPerProduct {
    _private: (),
}

/// Sets OpenBLAS to one thread until the returned guard (and every other one alive) is dropped.
pub fn one_thread_per_product() -> OneThreadPerProduct {
    let mut guards = GUARDS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if guards.0 == 0 {
        // SAFETY: OpenBLAS's getter and setter of its thread count take and return plain
        // integers and may be called from any thread.
        guards.1 = unsafe { openblas_get_num_threads() };
        unsafe { openblas_set_num_threads(1) };
    }
    guards.0 += 1;
    OneThreadPerProduct { _private: () }
}

/// OpenBLAS's thread count now.
pub fn threads() -> usize {
    // SAFETY: as in `one_thread_per_product`.
    unsafe { openblas_get_num_threads() }.max(1) as usize
}

/// The kernels OpenBLAS runs on this CPU and its build, e.g. "Zen kernels (OpenBLAS 0.3.21
/// NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64)".
pub fn kernels() -> String {
    let text = |pointer: *const c_char| {
        if pointer.is_null() {
            return String::new();
        }
        // SAFETY: OpenBLAS returns a NUL-terminated string in a buffer it owns and never frees;
        // the pointer was checked for null above.
        let text = unsafe { CStr::from_ptr(pointer) };
        text.to_string_lossy().trim().to_string()
    };
    // SAFETY: both getters take nothing and may be called from any thread.
    let (core, config) = unsafe { (openblas_get_corename(), openblas_get_config()) };
    match (text(core), text(config)) {
        (core, config) if core.is_empty() && config.is_empty() => {
            "OpenBLAS (kernels not reported)".to_string()
        }
        (core, config) if core.is_empty() => config,
        (core, config) if config.is_empty() => format!("{core} kernels (OpenBLAS)"),
        (core, config) => format!("{core} kernels ({config})"),
    }
}

impl Drop for OneThreadPerProduct {
    fn drop(&mut self) {
        let mut guards = GUARDS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guards.0 -= 1;
        if guards.0 == 0 {
            // SAFETY: as in `one_thread_per_product`.
            unsafe { openblas_set_num_threads(guards.1) };
        }
    }
}
