//! A stop signal is honoured between scoring passes, not only between training steps: on a big
//! split a scoring pass can outlast a scheduler's grace period (Slurm's KillWait is 30 s). Its
//! own test binary, because the stop flag is process-wide.
use evolve::train::accuracy;
use evolve::train::data::{Dataset, DatasetKind};
use evolve::train::models::{ModelKind, Net};
use evolve::Error;
use tch::{nn, Device};

#[test]
fn a_stop_signal_stops_scoring_at_the_next_pass() {
    let root = tempfile::tempdir().unwrap();
    evolve::train::data::synthetic::write_root(root.path(), 1).unwrap();
    let data = Dataset::load(DatasetKind::Cifar10, root.path()).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Net::new(ModelKind::TinyCnn, &vs.root(), DatasetKind::Cifar10, 1);
    let score = || accuracy(&net, &data, &data.test_x, &data.test_y, 16);
    assert_eq!(score().unwrap().len(), 1, "scores while no signal came");
    evolve::interrupt::install();
    // SAFETY: raise(3) sends a signal to this thread; the handler installed above only sets a flag.
    assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
    assert_eq!(evolve::interrupt::requested(), Some(libc::SIGTERM));
    match score() {
        Err(Error::Interrupted(signal)) => assert_eq!(signal, libc::SIGTERM),
        other => panic!("scoring went on after SIGTERM: {other:?}"),
    }
}
