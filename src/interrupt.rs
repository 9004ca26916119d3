//! SIGINT (Ctrl-C), SIGTERM (what Slurm and every scheduler send before SIGKILL) and SIGHUP (a
//! closed SSH session) as a flag: long loops poll it and stop at a safe point instead of dying
//! mid-write.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The number of the signal that asked us to stop; 0 while none has.
static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

fn received() -> &'static Arc<AtomicUsize> {
    RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// The signals that ask a run to stop and save.
const STOPPING: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP (once; later calls are no-ops).
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        for signal in STOPPING {
            // Registering a flag store is async-signal-safe; failure leaves the default action.
            let _ =
                signal_hook::flag::register_usize(signal, Arc::clone(received()), signal as usize);
        }
    });
}

/// The signal that asked us to stop, if any.
pub fn requested() -> Option<i32> {
    match received().load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal as i32),
    }
}

/// The signal's name, for messages.
pub fn name(signal: i32) -> &'static str {
    match signal {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        signal_hook::consts::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Ignores SIGXFSZ, so that a write past a file-size limit fails with `EFBIG` (and its temporary
/// file is removed, as on a full disk) instead of killing the process mid-write.
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
