"""One optimizer step of the exported optimizers against torch.optim, side by side in one run.

Usage (after `make build`):
    for g in adam lion sgd-momentum; do
        target/release/evolve export genomes/$g.json --format pytorch --out /tmp/export_$g.py
    done
    .venv/bin/python benches/export_step.py /tmp

`lion_pytorch.Lion` comes from the venv's pinned lion-pytorch 0.2.5 (`make test-packages`).
A 10M-parameter MLP (1000 -> 5000 -> 1000, float32, CPU, 1 thread), fixed gradients. Each
optimizer takes `--warmup` steps, then `--steps` timed ones; the optimizers are interleaved and
the whole round is run `--rounds` times, so drifts in machine speed hit them alike. Reports the
median over rounds of the microseconds per step (each round's too) and the optimizer state in
bytes per parameter.
"""
import argparse
import importlib
import statistics
import sys
import time

import torch


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(1000, 5000), torch.nn.Linear(5000, 1000))


def with_grads(net: torch.nn.Module) -> list:
    params = list(net.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    return params


def state_bytes(opt: torch.optim.Optimizer, params: list) -> float:
    total = 0
    for p in params:
        for value in opt.state[p].values():
            if torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total / sum(p.numel() for p in params)


def time_steps(opt: torch.optim.Optimizer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("exports", help="folder holding export_adam.py, export_lion.py, export_sgd-momentum.py")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, args.exports)
    from lion_pytorch import Lion  # pinned by `make test` (lion-pytorch==0.2.5)
    exported = {name: importlib.import_module(f"export_{name}").EvolvedOptimizer
                for name in ("adam", "lion", "sgd-momentum")}
    makers = {
        "torch.optim.Adam (default)": lambda p: torch.optim.Adam(p, lr=1e-3),
        "torch.optim.Adam (foreach=True)": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True),
        "exported adam (default: tensor by tensor on CPU)": lambda p: exported["adam"](p),
        "exported adam (foreach=True)": lambda p: exported["adam"](p, foreach=True),
        "torch.optim.SGD (momentum 0.9, foreach=True)":
            lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, foreach=True),
        "exported sgd-momentum (default)": lambda p: exported["sgd-momentum"](p),
        "exported sgd-momentum (foreach=True)": lambda p: exported["sgd-momentum"](p, foreach=True),
        "lion_pytorch.Lion": lambda p: Lion(p, lr=1e-4, betas=(0.9, 0.99)),
        "exported lion (default)": lambda p: exported["lion"](p),
        "exported lion (foreach=True)": lambda p: exported["lion"](p, foreach=True),
    }
    runs = {}
    for name, make in makers.items():
        params = with_grads(model())
        opt = make(params)
        time_steps(opt, args.warmup)
        runs[name] = (opt, params)
    times = {name: [] for name in makers}
    for _ in range(args.rounds):
        for name, (opt, _) in runs.items():
            times[name].append(time_steps(opt, args.steps))
    reference = statistics.median(times["torch.optim.Adam (foreach=True)"])
    print(f"{'optimizer':<50} {'median µs/step':>15} {'vs Adam foreach':>16} {'state B/param':>14}  rounds")
    for name, (opt, params) in runs.items():
        rounds = " / ".join(f"{t:,.0f}" for t in times[name])
        median = statistics.median(times[name])
        print(f"{name:<50} {median:>15,.0f} {median / reference:>15.2f}x "
              f"{state_bytes(opt, params):>14.2f}  {rounds}")


if __name__ == "__main__":
    main()
