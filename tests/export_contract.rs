//! The exported optimizer keeps torch.optim's contract, run by the project's own torch (.venv):
//! deepcopy and pickling, the schedule's state in `state_dict`, a cosine that stays at its end,
//! a group added mid-run joining the schedule, `schedule=False`, `maximize`, torch.optim's
//! argument checks, clear refusals (sparse gradients, complex parameters, another optimizer's
//! state), a repr per genome, an honest first line, AMP's GradScaler, only the state and terms
//! the genome's rule needs, foreach and tensor-by-tensor steps that agree, step counts in tensors,
//! and a step that torch.compile traces whole.
mod common;
use common::run_venv_python;
use std::path::Path;
use std::process::Command;

fn export(genome: &str, out: &Path) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(env!("CARGO_BIN_EXE_evolve"))
        .arg("export")
        .arg(manifest.join("genomes").join(format!("{genome}.json")))
        .args(["--format", "pytorch", "--out"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_exported_optimizer_keeps_the_torch_optim_contract() {
    let dir = tempfile::tempdir().unwrap();
    export("adam", &dir.path().join("adam_export.py"));
    export("lion", &dir.path().join("lion_export.py"));
    // Warmup 100 and cosine decay over the run.
    export(
        "marfinetz2025-evolved",
        &dir.path().join("published_export.py"),
    );
    export("eve", &dir.path().join("eve_export.py"));
    let stdout = run_venv_python(CONTRACT, dir.path());
    for skipped in stdout.lines().filter(|l| l.starts_with("skipped")) {
        eprintln!("{skipped}");
    }
    assert_eq!(stdout.trim().lines().last(), Some("contract ok 17"));
}

const CONTRACT: &str = r#"
import copy, math, pickle, shutil
import torch
import adam_export, lion_export, published_export, eve_export

torch.manual_seed(0)
checked = 0

def params(n=2):
    return [torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64)) for _ in range(n)]

def set_grads(ps, value=1.0):
    for p in ps:
        p.grad = torch.full_like(p, value)

def trained(opt_class, steps, **kw):
    ps = params()
    opt = opt_class(ps, **kw)
    for _ in range(steps):
        set_grads(ps)
        opt.step()
    return ps, opt

# 1. deepcopy and pickling give an optimizer that steps exactly as the original.
ps, opt = trained(adam_export.EvolvedOptimizer, 3)
twin_params = [p.detach().clone().requires_grad_(True) for p in ps]
twin = copy.deepcopy(opt)
twin.param_groups[0]["params"] = twin_params
twin.state = {q: copy.deepcopy(opt.state[p]) for p, q in zip(ps, twin_params)}
set_grads(ps); opt.step()
set_grads(twin_params); twin.step()
assert all(torch.equal(p, q) for p, q in zip(ps, twin_params))
pickle.loads(pickle.dumps(opt)).step()
checked += 1

# 2. Instances do not share the module's genome.
a = adam_export.EvolvedOptimizer(params())
a.genome["terms"][0]["weight"] = 5.0
assert adam_export.EvolvedOptimizer(params()).genome["terms"][0]["weight"] == 1.0
checked += 1

# 3. The cosine stays at its end past total_steps (the lr does not climb back).
opt = published_export.EvolvedOptimizer(params(), total_steps=1000)
group = opt.param_groups[0]
factors = []
for s in (999, 1000, 1500, 2000):
    group["schedule_step"] = s
    factors.append(opt._lr(group) / group["lr"])
assert factors[1] == factors[2] == factors[3] == 0.0, factors
assert 0.0 < factors[0] < 1e-4, factors
checked += 1

# 4. The schedule's state (total_steps, step) round-trips through state_dict.
ps, opt = trained(published_export.EvolvedOptimizer, 7, total_steps=100)
saved = opt.state_dict()
assert saved["param_groups"][0]["total_steps"] == 100
assert saved["param_groups"][0]["schedule_step"] == 7
fresh = published_export.EvolvedOptimizer(ps, total_steps=5)
fresh.load_state_dict(saved)
assert fresh.param_groups[0]["total_steps"] == 100
assert fresh.param_groups[0]["schedule_step"] == 7
checked += 1

# 5. A group added mid-run joins the schedule where the others are (no second warmup).
ps, opt = trained(published_export.EvolvedOptimizer, 50, total_steps=100)
opt.add_param_group({"params": params(1)})
assert opt.param_groups[1]["schedule_step"] == 50
assert opt._lr(opt.param_groups[1]) == opt._lr(opt.param_groups[0])
checked += 1

# 6. schedule=False: group["lr"] is used as it is (for external schedulers), no total_steps needed.
opt = published_export.EvolvedOptimizer(params(), schedule=False)
assert opt._lr(opt.param_groups[0]) == opt.param_groups[0]["lr"]
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
for _ in range(5):
    opt.step(); sched.step()
assert math.isclose(opt._lr(opt.param_groups[0]) / opt.defaults["lr"], 0.5, rel_tol=1e-9)
checked += 1

# 7. Without total_steps a genome with cosine decay says what to pass.
try:
    published_export.EvolvedOptimizer(params())
    raise AssertionError("accepted a cosine genome without total_steps")
except ValueError as e:
    assert "total_steps=" in str(e) and "schedule=False" in str(e), e
checked += 1

# 8. maximize: the same step as minimising the negated objective.
ps_max = params(); ps_min = [p.detach().clone().requires_grad_(True) for p in ps_max]
up = adam_export.EvolvedOptimizer(ps_max, maximize=True)
down = adam_export.EvolvedOptimizer(ps_min)
for _ in range(3):
    set_grads(ps_max, 1.0); set_grads(ps_min, -1.0)
    up.step(); down.step()
assert all(torch.equal(p, q) for p, q in zip(ps_max, ps_min))
checked += 1

# 9. torch.optim's argument checks and messages.
for kw, message in [(dict(lr=-1.0), "Invalid learning rate: -1.0"),
                    (dict(betas=(1.5, 0.9)), "Invalid beta parameter at index 0: 1.5"),
                    (dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
                    (dict(eps=-1.0), "Invalid epsilon value: -1.0"),
                    (dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1")]:
    try:
        adam_export.EvolvedOptimizer(params(), **kw)
        raise AssertionError(f"accepted {kw}")
    except ValueError as e:
        assert str(e) == message, (str(e), message)
checked += 1

# 10. Sparse gradients and complex parameters are refused, naming the optimizer.
emb = torch.nn.Embedding(5, 2, sparse=True)
emb(torch.tensor([1, 2])).sum().backward()
try:
    adam_export.EvolvedOptimizer(emb.parameters()).step()
    raise AssertionError("stepped a sparse gradient")
except RuntimeError as e:
    assert "EvolvedOptimizer" in str(e) and "sparse" in str(e), e
z = torch.nn.Parameter(torch.randn(3, dtype=torch.complex64))
z.grad = torch.ones_like(z)
try:
    adam_export.EvolvedOptimizer([z]).step()
    raise AssertionError("stepped a complex parameter")
except RuntimeError as e:
    assert "complex" in str(e) and "view_as_real" in str(e), e
checked += 1

# 11. Another optimizer's state_dict is refused, naming what is missing.
ps = params()
torch_adam = torch.optim.Adam(ps)
set_grads(ps); torch_adam.step()
try:
    adam_export.EvolvedOptimizer(ps).load_state_dict(torch_adam.state_dict())
    raise AssertionError("loaded torch Adam's state")
except ValueError as e:
    assert "another optimizer's" in str(e) and " m," in str(e), e
checked += 1

# 12. repr shows the genome; the first line says which optimizer it is.
ra, rl = repr(adam_export.EvolvedOptimizer(params())), repr(lion_export.EvolvedOptimizer(params()))
assert ra != rl and "adam*1" in ra and "lion" in rl, (ra, rl)
assert adam_export.__doc__.splitlines()[0].startswith("adam: the genome `adam` that evolve ships")
checked += 1

# 13. AMP's GradScaler: scaled, unscaled, stepped, the same step as without it.
ps = params(1); qs = [p.detach().clone().requires_grad_(True) for p in ps]
scaled, plain = adam_export.EvolvedOptimizer(ps), adam_export.EvolvedOptimizer(qs)
scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
for _ in range(3):
    scaled.zero_grad(); plain.zero_grad()
    scaler.scale((ps[0] ** 2).sum()).backward()
    scaler.step(scaled); scaler.update()
    (qs[0] ** 2).sum().backward(); plain.step()
assert torch.equal(ps[0], qs[0])
checked += 1

# 14. Only the state the rule reads, and one term per kind.
for module, keys in [(adam_export, ["step", "m", "v"]), (lion_export, ["step", "lion_m"])]:
    ps, opt = trained(module.EvolvedOptimizer, 1)
    assert sorted(opt.state[ps[0]]) == sorted(keys), (module.__name__, sorted(opt.state[ps[0]]))
kinds = [t["kind"] for t in published_export.GENOME["terms"]]
assert kinds == ["adam", "sign"], kinds
checked += 1

def train_net(module, steps=8, foreach=None, compile_backend=None, dtype=torch.float64):
    """A small net trained by `module`'s optimizer; with `compile_backend`, opt.step compiled
    whole (fullgraph: any graph break fails) and no recompile allowed once the state exists."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).to(dtype)
    start = [p.detach().clone() for p in net.parameters()]
    opt = module.EvolvedOptimizer(net.parameters(), total_steps=steps, foreach=foreach)
    step = opt.step
    if compile_backend:
        step = torch.compile(opt.step, fullgraph=True, backend=compile_backend)
    x, y = torch.randn(16, 6, dtype=dtype), torch.randn(16, 2, dtype=dtype)
    for i in range(steps):
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        torch._dynamo.config.error_on_recompile = compile_backend is not None and i >= 2
        step()
    torch._dynamo.config.error_on_recompile = False
    return start, [p.detach().clone() for p in net.parameters()], opt

def update_error(start, a, b):
    moved = min(float((w - w0).norm()) for w, w0 in zip(b, start))
    assert moved > 0, "a tensor did not move"
    return max(float(((u - w0) - (w - w0)).norm() / (w - w0).norm()) for u, w, w0 in zip(a, b, start))

# 15. foreach=True (one call per group) and tensor by tensor (the CPU default) agree bit for bit.
for module in (adam_export, lion_export, published_export, eve_export):
    start, one_by_one, _ = train_net(module)
    _, together, _ = train_net(module, foreach=True)
    assert all(torch.equal(a, b) for a, b in zip(one_by_one, together)), module.__name__
checked += 1

# 16. The step counts are tensors on the host, kept per tensor and per group in state_dict.
_, _, opt = train_net(published_export)
saved = opt.state_dict()
assert all(torch.is_tensor(s["step"]) and s["step"].device.type == "cpu" for s in saved["state"].values())
assert torch.is_tensor(saved["param_groups"][0]["schedule_step"])
checked += 1

# 17. torch.compile traces the whole step without a graph break or a recompile per step, and the
# compiled step trains as the eager one does.
for module in (adam_export, lion_export, published_export, eve_export):
    start, eager, _ = train_net(module, foreach=True)
    _, traced, _ = train_net(module, foreach=True, compile_backend="eager")
    assert update_error(start, traced, eager) < 1e-12, module.__name__
if shutil.which("g++") or shutil.which("c++"):
    start, eager, _ = train_net(published_export, foreach=True, dtype=torch.float32)
    _, compiled, _ = train_net(published_export, foreach=True, compile_backend="inductor",
                               dtype=torch.float32)
    assert update_error(start, compiled, eager) < 1e-4, update_error(start, compiled, eager)
else:
    print("skipped: inductor needs a C++ compiler (g++); the trace itself was checked")
checked += 1

print(f"contract ok {checked}")
"#;
