//! SIGINT (Ctrl-C) and SIGTERM (what Slurm and every scheduler send before SIGKILL) as a flag:
//! long loops poll it and stop at a safe point instead of dying mid-write.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The number of the signal that asked us to stop; 0 while none has.
static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

fn received() -> &'static Arc<AtomicUsize> {
    RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Installs the handlers for SIGINT and SIGTERM (once; later calls are no-ops).
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
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
        _ => "a signal",
    }
}
