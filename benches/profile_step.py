#!/usr/bin/env python3
"""Where one training step of the published CIFAR-10 model spends its time, by libtorch operator:
the reference's own model (`../shared/bench/pytorch_reference.py`), batch 128, channels-last,
PyTorch's Adam, under torch.profiler. The same libtorch kernels that evolve calls through `tch`,
which exposes no profiler; `cargo bench --bench evaluation` times the phases and the convolutions.

Run: .venv/bin/python benches/profile_step.py [--threads 2] [--steps 10] [--layout channels_last|nchw]
"""
import argparse
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench"))
from pytorch_reference import model  # noqa: E402

GROUPS = {
    "convolutions": ("convolution", "conv"),
    "BatchNorm": ("batch_norm",),
    "ReLU": ("threshold_backward", "clamp_min", "relu"),
    "max-pooling": ("max_pool",),
    "dropout masks": ("bernoulli",),
    "linear layers": ("aten::mm", "aten::addmm"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--layout", choices=["channels_last", "nchw"], default="channels_last")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if a.layout == "channels_last" else torch.contiguous_format
    net = model().to(memory_format=fmt)
    x = torch.randn(128, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (128,))
    opt = torch.optim.Adam(net.parameters())

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {name: 0.0 for name in GROUPS}
    for e in events:
        for name, keys in GROUPS.items():
            if any(k in e.key for k in keys):
                shares[name] += e.self_cpu_time_total
                break
    step_ms = total / a.steps / 1e3
    parts = ", ".join(f"{n} {100 * t / total:.0f} %" for n, t in shares.items())
    rest = 100 * (total - sum(shares.values())) / total
    print(f"one step, {a.layout}, {a.threads} threads: {step_ms:.1f} ms of operator time = {parts}, "
          f"everything else (optimizer, loss, copies, fills) {rest:.0f} %")


if __name__ == "__main__":
    main()
