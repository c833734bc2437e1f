//! Many nodes' blocking code on one simulated clock: a cooperative scheduler for a boot storm.
//!
//! Each task (one node's whole ROM flow, say) is ordinary blocking code that waits by calling
//! the driver's `delay` or [`Ctx::wait`]. Each runs on a thread of its own, but only one thread
//! ever runs at a time: a waiting task hands the turn back with its wake-up time, and the
//! scheduler advances the simulated clock to the earliest wake-up (running the fabric's events
//! on the way), polls the gateway every `tick` of simulated time, and gives that task the turn.
//! So the flows interleave on the simulated clock exactly as if they ran at once, and their
//! code is unchanged: the driver's `delay` is routed to [`Ctx::wait`] on the task's thread
//! ([`hca_sim::set_thread_delay`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use hca_sim::Sim;

use crate::gateway::Gateway;

/// One task: a node's code, given its context.
pub type Task<R> = Box<dyn FnOnce(&Ctx) -> R>;

struct St {
    /// Who runs: a task's index, or `None` for the scheduler.
    turn: Option<usize>,
    /// Each task's wake-up time (ns of simulated time); `None` once it has finished.
    wake: Vec<Option<u64>>,
}

struct Shared {
    st: Mutex<St>,
    /// One per task, and the scheduler's last: a hand-over wakes only the thread it concerns.
    cvs: Vec<Condvar>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a task sees: the simulation, its index, and the way to wait.
#[derive(Clone)]
pub struct Ctx {
    /// The simulation (shared by every task; used only while this task has the turn).
    pub sim: Sim,
    index: usize,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("index", &self.index).finish()
    }
}

impl Ctx {
    /// The task's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Simulated time (ns).
    pub fn now_ns(&self) -> u64 {
        ns(self.sim.now())
    }

    /// Lets `d` of simulated time pass for this task (the others run meanwhile).
    pub fn wait(&self, d: Duration) {
        let at = self.now_ns() + ns(d).max(1);
        let n = self.shared.cvs.len() - 1;
        let mut st = self.shared.lock();
        st.wake[self.index] = Some(at);
        st.turn = None;
        self.shared.cvs[n].notify_one();
        while st.turn != Some(self.index) {
            st = self.shared.cvs[self.index]
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

/// Moves a value that is not `Send` to or from a task's thread.
struct Handover<T>(T);

impl<T> Handover<T> {
    /// The value (a method, so that a closure captures the whole `Handover`, not its field).
    fn take(self) -> T {
        self.0
    }
}

// SAFETY: the simulation's shared state (`Rc`s, `RefCell`s) is only touched by the thread
// holding the turn, and the turn passes between threads under a mutex, which orders every
// access of one thread before the next thread's. A `Handover` is created on one thread before
// the other one can run (spawn) and opened after that thread has handed the turn back for
// good (join), so its contents are never used by two threads at once.
unsafe impl<T> Send for Handover<T> {}

/// Runs `tasks` to completion, interleaved on `sim`'s clock, polling `gw` every `tick` of
/// simulated time and pausing `pause` of real time after each poll (so that real servers
/// keep up). Returns each task's result, `None` for a task that panicked.
pub fn run<R: 'static>(
    sim: &Sim,
    gw: &mut Gateway,
    tasks: Vec<Task<R>>,
    tick: Duration,
    pause: Duration,
) -> Vec<Option<R>> {
    let n = tasks.len();
    let now = ns(sim.now());
    let shared = Arc::new(Shared {
        st: Mutex::new(St {
            turn: None,
            wake: vec![Some(now); n],
        }),
        cvs: (0..=n).map(|_| Condvar::new()).collect(),
    });
    let mut threads = Vec::with_capacity(n);
    for (index, task) in tasks.into_iter().enumerate() {
        let ctx = Ctx {
            sim: sim.clone(),
            index,
            shared: shared.clone(),
        };
        let shared = shared.clone();
        let parcel = Handover((task, ctx));
        let t = std::thread::Builder::new()
            .name(format!("node{index}"))
            .stack_size(8 << 20)
            .spawn(move || {
                let (task, ctx) = parcel.take();
                {
                    let mut st = shared.lock();
                    while st.turn != Some(index) {
                        st = shared.cvs[index]
                            .wait(st)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                }
                let waiter = ctx.clone();
                hca_sim::set_thread_delay(Some(Rc::new(move |d| waiter.wait(d))));
                let r = catch_unwind(AssertUnwindSafe(|| task(&ctx))).ok();
                hca_sim::set_thread_delay(None);
                drop(ctx);
                let out = Handover(r);
                let mut st = shared.lock();
                st.wake[index] = None;
                st.turn = None;
                shared.cvs[n].notify_one();
                drop(st);
                out
            })
            .expect("a thread for a node");
        threads.push(t);
    }
    let tick_ns = ns(tick).max(1);
    let mut next_tick = now;
    loop {
        let next = {
            let st = shared.lock();
            st.wake
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.map(|at| (at, i)))
                .min()
        };
        let Some((at, i)) = next else { break };
        let now = ns(sim.now());
        if next_tick <= at {
            sim.run_for(Duration::from_nanos(next_tick.saturating_sub(now)));
            gw.poll();
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            next_tick = next_tick.max(ns(sim.now())) + tick_ns;
            continue;
        }
        sim.run_for(Duration::from_nanos(at.saturating_sub(now)));
        let mut st = shared.lock();
        st.turn = Some(i);
        shared.cvs[i].notify_one();
        while st.turn.is_some() {
            st = shared.cvs[n].wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
    threads
        .into_iter()
        .map(|t| t.join().ok().and_then(Handover::take))
        .collect()
}
