//! Modules and their events (`sys/kern/kern_module.c`): the `MDT_MODULE` metadata a kld
//! carries registers a module (`module_register()`), `DECLARE_MODULE`'s SYSINIT calls
//! [`module_register_init`], which sends `MOD_LOAD`; kldunload sends `MOD_QUIESCE` then
//! `MOD_UNLOAD`; shutdown sends `MOD_SHUTDOWN`.

use super::args::SliceArgs;
use super::printf::kvprintf;
use super::{console, kpanic, mem, threads, Ctx};
use std::sync::Mutex;

/// `MOD_LOAD`.
pub const MOD_LOAD: u64 = 0;
/// `MOD_UNLOAD`.
pub const MOD_UNLOAD: u64 = 1;
/// `MOD_SHUTDOWN`.
pub const MOD_SHUTDOWN: u64 = 2;
/// `MOD_QUIESCE`.
pub const MOD_QUIESCE: u64 = 3;

/// The name of a module event.
pub fn event_name(what: u64) -> &'static str {
    match what {
        MOD_LOAD => "MOD_LOAD",
        MOD_UNLOAD => "MOD_UNLOAD",
        MOD_SHUTDOWN => "MOD_SHUTDOWN",
        MOD_QUIESCE => "MOD_QUIESCE",
        _ => "?",
    }
}

/// A registered module.
#[derive(Debug, Clone)]
pub struct Module {
    /// Its name (`moduledata_t.name`).
    pub name: String,
    /// The `moduledata_t`.
    pub data: u64,
    /// The event handler.
    pub evhand: u64,
    /// Its argument (`priv`).
    pub arg: u64,
    /// The stand-in `struct module` passed as `module_t`.
    pub modp: u64,
    /// `MOD_LOAD` succeeded and the module has not been released.
    pub loaded: bool,
    /// Released (its load failed, or it was unloaded).
    pub released: bool,
}

static MODULES: Mutex<Vec<Module>> = Mutex::new(Vec::new());

/// `module_register()`: registers the module declared by the `moduledata_t` at `data`.
pub fn register(data: u64) -> Result<String, String> {
    // SAFETY: a moduledata_t from the kld's relocated metadata: { name, evhand, priv }.
    let (name, evhand, arg) = unsafe {
        (
            mem::string(mem::read(data)),
            mem::read::<u64>(data + 8),
            mem::read::<u64>(data + 16),
        )
    };
    let mut g = MODULES.lock().unwrap_or_else(|e| e.into_inner());
    if g.iter().any(|m| m.name == name && !m.released) {
        return Err(format!("cannot register {name}: already loaded"));
    }
    let modp = Box::leak(Box::new([0u64; 32])).as_ptr() as u64;
    g.push(Module {
        name: name.clone(),
        data,
        evhand,
        arg,
        modp,
        loaded: false,
        released: false,
    });
    Ok(name)
}

/// The registered modules.
pub fn modules() -> Vec<Module> {
    MODULES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn update(name: &str, f: impl FnOnce(&mut Module)) {
    let mut g = MODULES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = g.iter_mut().rev().find(|m| m.name == name) {
        f(m);
    }
}

/// `MOD_EVENT(mod, what)`: calls the module's handler on kernel thread `thread`; returns its
/// error (an `int`).
pub fn event(thread: usize, m: &Module, what: u64) -> i32 {
    super::set_phase(event_name(what));
    // SAFETY: evhand is the module's modeventhand_t: int (*)(module_t, int, void *).
    unsafe { threads::call(thread, m.evhand, &[m.modp, what, m.arg]) as i32 }
}

/// Marks a module released (after a refused load, or at unload).
pub fn release(name: &str) {
    update(name, |m| {
        m.loaded = false;
        m.released = true;
    });
}

/// `void module_register_init(const void *data);` — `DECLARE_MODULE`'s SYSINIT: finds the
/// module registered from the same `moduledata_t` name (a panic if there is none) and sends it
/// `MOD_LOAD`; on an error it sends `MOD_UNLOAD`, releases the module and prints, as the
/// kernel does, `module_register_init: MOD_LOAD (name, handler, arg) error N` (after which
/// the kernel linker unloads a file whose modules all failed: kldload then fails with
/// ENOEXEC).
pub fn module_register_init(c: &mut Ctx) -> u64 {
    let data = c.args.ptr();
    // SAFETY: the contract: a moduledata_t whose first member is its name.
    let name = unsafe { mem::string(mem::read(data)) };
    let found = modules()
        .into_iter()
        .rev()
        .find(|m| m.name == name && !m.released);
    let Some(m) = found else {
        kpanic(
            c,
            &format!("module_register_init: module named {name} not found"),
        );
    };
    let error = event(c.thread, &m, MOD_LOAD);
    if error != 0 {
        event(c.thread, &m, MOD_UNLOAD);
        release(&name);
        let cname = std::ffi::CString::new(name.clone()).unwrap_or_default();
        let args = [cname.as_ptr() as u64, m.evhand, m.arg, error as u32 as u64];
        let mut out = Vec::new();
        // SAFETY: a constant format whose %s argument is a live C string.
        unsafe {
            kvprintf(
                c"module_register_init: MOD_LOAD (%s, %p, %p) error %d\n".as_ptr() as u64,
                &mut SliceArgs::new(&args),
                10,
                &mut out,
            )
        };
        console::write(&out);
    } else {
        update(&name, |m| m.loaded = true);
    }
    super::set_phase("SYSINIT");
    0
}
