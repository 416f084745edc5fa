//! What confinement costs a run: the mean time to start a child, let it exit and reap it,
//! plain (`fork`) and fully confined (`spawn` into every namespace with the id maps, then
//! `confine_with`: empty root, privileges, landlock, rlimits, seccomp).
//!
//! `cargo run --release -p sandbox --example confine_cost [ITERATIONS]`

use std::time::{Duration, Instant};

fn mean(iterations: u32, mut one: impl FnMut()) -> Duration {
    one(); // warm-up
    let started = Instant::now();
    for _ in 0..iterations {
        one();
    }
    started.elapsed() / iterations
}

fn main() {
    let iterations: u32 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(200);
    let arch = sandbox::Arch::native().expect("a seccomp list for this architecture");
    let filter = sandbox::compile_filter(arch, Some(sandbox::PID_IN_NAMESPACE)).expect("filter compiles");
    let confinement = sandbox::Confinement::default();

    let plain = mean(iterations, || {
        // SAFETY: this example is single-threaded; the child only exits.
        let pid = unsafe { sandbox::spawn::fork(|| 0) }.expect("fork");
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    });
    let confined = mean(iterations, || {
        // SAFETY: this example is single-threaded.
        let child = unsafe {
            sandbox::spawn(&confinement, None, || match sandbox::confine_with(&confinement, &filter) {
                Ok(_) => 0,
                Err(_) => 1,
            })
        }
        .expect("spawn");
        assert_eq!(child.wait().expect("wait"), sandbox::Termination::Exited(0), "confinement failed");
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{iterations} iterations each");
    println!("fork + exit + wait:               {:.3} ms", ms(plain));
    println!("spawn + confine + exit + wait:    {:.3} ms", ms(confined));
    println!("confinement adds:                 {:.3} ms per run", ms(confined.saturating_sub(plain)));
}
