#!/usr/bin/env python3
"""PyTorch reference for one gpt-tiny language-model evaluation, as a PyTorch user writes it.

The same model and data protocol as evolve's `gpt-tiny` task on a byte-level corpus:
  * the corpus files in name order, concatenated, cut into 129-byte records (128 input bytes and
    the 128 next bytes); the last tenth is the test split, the last `--validation` records
    before it the validation split; training windows are random crops of `--context` bytes
  * token + learned position embeddings, `--depth` pre-LayerNorm blocks of causal self-attention
    (`--heads` heads, F.scaled_dot_product_attention) and a 4x GELU MLP, final LayerNorm, linear
    head to 256 logits; GPT-2 initialisation
  * torch.optim.Adam(lr 1e-3), batch `--batch`, `--steps` steps, cross-entropy
Reports steps/s of the training loop and next-byte accuracy and bits per byte on the
validation split as one JSON line.

Usage: lm_reference.py --corpus DIR_OR_FILE [--steps 150] [--batch 32] [--threads 2] [--seed 0]
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

RECORD = 129


def read_corpus(path):
    if os.path.isfile(path):
        return open(path, "rb").read()
    names = sorted(n for n in os.listdir(path)
                   if os.path.isfile(os.path.join(path, n)) and not os.path.islink(os.path.join(path, n))
                   and not n.endswith(".dat") and n != "SHA256SUMS" and not n.startswith("README"))
    return b"".join(open(os.path.join(path, n), "rb").read() for n in names)


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(n, t, d)
        x = x + self.proj(a)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class Gpt(nn.Module):
    def __init__(self, context, width, depth, heads):
        super().__init__()
        self.tokens = nn.Embedding(256, width)
        self.positions = nn.Parameter(torch.randn(context, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, 256)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2 and "positions" not in name:
                std = 0.02 / math.sqrt(2 * depth) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, idx):
        x = self.tokens(idx) + self.positions[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--validation", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = read_corpus(args.corpus)
    records = len(data) // RECORD
    test = records // 10
    train = records - test
    r = torch.frombuffer(bytearray(data[: records * RECORD]), dtype=torch.uint8).view(records, RECORD)
    pool = train - args.validation
    x_train, val = r[:pool], r[pool:train]
    model = Gpt(args.context, args.width, args.depth, args.heads)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    t = args.context
    start = time.perf_counter()
    for _ in range(args.steps):
        rows = torch.randint(0, pool, (args.batch,))
        offsets = torch.randint(0, RECORD - t, (args.batch,))
        window = torch.stack([x_train[i, o: o + t + 1] for i, o in zip(rows.tolist(), offsets.tolist())]).long()
        logits = model(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 256), window[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_seconds = time.perf_counter() - start
    with torch.no_grad():
        per = (RECORD - 1) // t
        v = val.long()
        x = v[:, : per * t].reshape(-1, t)
        y = v[:, 1: per * t + 1].reshape(-1, t)
        logits = model(x)
        bits = F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1)).item() / math.log(2)
        acc = (logits.argmax(-1) == y).float().mean().item()
    print(json.dumps({"steps_per_second": args.steps / train_seconds, "train_seconds": train_seconds,
                      "val_acc": acc, "bits_per_byte": bits, "final_loss": loss.item()}))


if __name__ == "__main__":
    main()
