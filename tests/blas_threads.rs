//! The OpenBLAS thread guard, alone in its own process (the thread count is global, so no other
//! test may hold a guard meanwhile).

use crossmodal::blas::{one_thread_per_product, threads};

#[test]
fn guards_hold_openblas_at_one_thread_and_the_last_puts_the_count_back() {
    let before = threads();
    let outer = one_thread_per_product();
    assert_eq!(threads(), 1);
    let inner = one_thread_per_product();
    drop(outer);
    assert_eq!(threads(), 1, "a guard is still alive");
    // Products still come out right on one thread.
    let a = ndarray::Array2::from_shape_fn((300, 200), |(i, j)| ((i * 7 + j * 3) % 11) as f32);
    let product = a.dot(&a.t());
    let expected: f32 = a.row(5).iter().zip(a.row(9)).map(|(x, y)| x * y).sum();
    assert_eq!(product[[5, 9]], expected);
    drop(inner);
    assert_eq!(threads(), before);
}
