//! A mutex(9) (`MTX_DEF`) owning the data it protects.
//!
//! A `struct mtx` is registered with WITNESS by address, so it must not move between `mtx_init`
//! and `mtx_destroy`: [`Mutex::new_boxed`] creates it in place on the heap and hands out a
//! `Pin<Box<_>>`.

use crate::abi::{Mtx, MTX_DEF};
use crate::ffi;
use alloc_crate::boxed::Box;
use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::marker::PhantomPinned;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;

/// A sleep mutex protecting a `T`.
#[derive(Debug)]
pub struct Mutex<T> {
    mtx: UnsafeCell<Mtx>,
    data: UnsafeCell<T>,
    _pin: PhantomPinned,
}

// SAFETY: access to `data` is serialised by the kernel mutex; `T: Send` is enough for the data
// to be handed between threads that way.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: the mutex may be destroyed on another thread than the one that created it.
unsafe impl<T: Send> Send for Mutex<T> {}

const FILE: &CStr = c"kmod/bindings/src/sync.rs";

impl<T> Mutex<T> {
    /// Allocates and initialises a mutex named `name` (shown by WITNESS and `procstat -kk`).
    /// Sleepable context only (it allocates with `M_WAITOK`).
    pub fn new_boxed(name: &'static CStr, value: T) -> Pin<Box<Self>> {
        let this = Box::new(Self {
            mtx: UnsafeCell::new(Mtx {
                lock_object: [0; 3],
                mtx_lock: 0,
            }),
            data: UnsafeCell::new(value),
            _pin: PhantomPinned,
        });
        // SAFETY: the storage is a zeroed, properly sized and aligned `struct mtx` at its final
        // heap address; `name` is 'static (the kernel keeps the pointer); type NULL = name.
        unsafe { ffi::_mtx_init(this.lock_word(), name.as_ptr(), core::ptr::null(), MTX_DEF) };
        Box::into_pin(this)
    }

    fn lock_word(&self) -> *mut usize {
        // `mtx_lock` lives inside the UnsafeCell; the kernel updates it atomically.
        // SAFETY: pointer arithmetic inside the `Mtx` allocation (offset asserted in abi.rs).
        unsafe {
            self.mtx
                .get()
                .cast::<u8>()
                .add(crate::abi::MTX_LOCK_OFFSET)
                .cast()
        }
    }

    /// The `struct mtx` itself (for C code that locks it with `mtx_lock`, and as the
    /// `struct lock_object *` of `_sleep`: `lock_object` is at offset 0).
    pub fn raw(self: Pin<&Self>) -> *mut Mtx {
        self.get_ref().mtx.get()
    }

    /// Locks the mutex (may sleep; not from interrupt filters or with a spin mutex held).
    pub fn lock(self: Pin<&Self>) -> MutexGuard<'_, T> {
        let this = self.get_ref();
        // SAFETY: the mutex was initialised by `new_boxed` and is not destroyed while `self`
        // is borrowed; FILE is NUL-terminated and static.
        unsafe { ffi::__mtx_lock_flags(this.lock_word(), 0, FILE.as_ptr(), line!() as i32) };
        MutexGuard { mutex: this }
    }
}

impl<T> Drop for Mutex<T> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new_boxed`, never moved (pinned), not held (no guard can
        // outlive the borrow `drop` has exclusively).
        unsafe { ffi::_mtx_destroy(self.lock_word()) };
    }
}

/// Proof that the mutex is held; unlocks on drop.
#[derive(Debug)]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
}

impl<T> MutexGuard<'_, T> {
    /// `msleep_sbt(chan, mtx, 0, wmesg, sbt, 0, C_HARDCLOCK)`: releases the mutex and sleeps
    /// on `chan` until a `wakeup(chan)` or `sbt` (32.32 seconds; 0: no timeout) has passed,
    /// then re-takes the mutex. A `wakeup(chan)` by a thread holding this mutex cannot be
    /// missed: the sleeper is on the sleep queue before the mutex is released. 0 when woken,
    /// `EWOULDBLOCK` after the timeout; spurious wakeups happen (callers re-check).
    // `chan` is only an address (the sleep queue's key), never dereferenced.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn sleep(&mut self, chan: *const core::ffi::c_void, wmesg: &'static CStr, sbt: i64) -> i32 {
        // SAFETY: this guard proves the mutex is held by this thread and initialised; `wmesg`
        // is static. `_sleep` returns with the mutex held again (no PDROP).
        unsafe {
            ffi::_sleep(
                chan,
                self.mutex.mtx.get().cast(),
                0,
                wmesg.as_ptr(),
                sbt.max(0),
                0,
                crate::abi::C_HARDCLOCK,
            )
        }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held, so no other reference to the data exists.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard's thread locked the mutex in `lock`.
        unsafe {
            ffi::__mtx_unlock_flags(self.mutex.lock_word(), 0, FILE.as_ptr(), line!() as i32)
        };
    }
}
