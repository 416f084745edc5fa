//! What confinement costs a run: the mean time to start a child, let it exit and reap it,
//! plain (`fork`), in each namespace alone (`spawn` with only that one besides the user
//! namespace, no `confine`), and fully confined (`spawn` into every namespace with the id
//! maps, then `confine_with`: empty root, privileges, landlock, rlimits, seccomp).
//!
//! `cargo run --release -p sandbox --example confine_cost [ITERATIONS]`

use sandbox::{Confinement, Namespaces};
use std::time::{Duration, Instant};

fn mean(iterations: u32, mut one: impl FnMut()) -> Duration {
    one(); // warm-up
    let started = Instant::now();
    for _ in 0..iterations {
        one();
    }
    started.elapsed() / iterations
}

/// Spawns into `confinement`'s namespaces, runs `body` in the child, reaps it.
fn spawn_and_reap(confinement: &Confinement, body: impl Fn() -> i32) {
    // SAFETY: this example is single-threaded.
    let child = unsafe { sandbox::spawn(confinement, None, &body) }.expect("spawn");
    assert_eq!(child.wait().expect("wait"), sandbox::Termination::Exited(0), "the child failed");
}

fn main() {
    let iterations: u32 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(200);
    let arch = sandbox::Arch::native().expect("a seccomp list for this architecture");
    let filter = sandbox::compile_filter(arch, Some(sandbox::PID_IN_NAMESPACE)).expect("filter compiles");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{iterations} iterations each, mean per run");

    let plain = mean(iterations, || {
        // SAFETY: this example is single-threaded; the child only exits.
        let pid = unsafe { sandbox::spawn::fork(|| 0) }.expect("fork");
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    });
    println!("fork + exit + wait:                  {:.3} ms", ms(plain));

    let user_only = Confinement { namespaces: Namespaces::USER_ONLY, ..Confinement::default() };
    let user = mean(iterations, || spawn_and_reap(&user_only, || 0));
    println!("spawn, user namespace only:          {:.3} ms", ms(user));
    let only = Namespaces::USER_ONLY;
    let each = [
        ("pid", Namespaces { pid: true, ..only }),
        ("mount", Namespaces { mount: true, ..only }),
        ("network", Namespaces { network: true, ..only }),
        ("ipc", Namespaces { ipc: true, ..only }),
        ("uts", Namespaces { uts: true, ..only }),
        ("cgroup", Namespaces { cgroup: true, ..only }),
    ];
    for (name, namespaces) in each {
        let c = Confinement { namespaces, ..Confinement::default() };
        let t = mean(iterations, || spawn_and_reap(&c, || 0));
        println!("  + {name:<8} namespace:               {:+.3} ms", ms(t) - ms(user));
    }

    let all = Confinement::default();
    let namespaces = mean(iterations, || spawn_and_reap(&all, || 0));
    println!("spawn, every namespace:              {:.3} ms", ms(namespaces));
    let confined = mean(iterations, || {
        spawn_and_reap(&all, || match sandbox::confine_with(&all, &filter) {
            Ok(_) => 0,
            Err(_) => 1,
        })
    });
    println!("spawn + confine + exit + wait:       {:.3} ms", ms(confined));
    println!("confinement adds:                    {:.3} ms per run", ms(confined.saturating_sub(plain)));
}
