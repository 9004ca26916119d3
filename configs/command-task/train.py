"""A training script of your own, scored by `evolve` as a task (see the README's "Any training
script as a task").

evolve runs it as

    python train.py --optimizer OPTIMIZER.py --seed SEED --steps STEPS

with OPTIMIZER.py the genome exported as a PyTorch optimizer, and reads the last line it prints:
one JSON object with `val_acc` (and optionally `val_loss` and `losses`, the training-loss curve).

The task is made here, so the script needs nothing but torch: a 10-class problem labelled by a
fixed random teacher network, a held-out validation split, and a small MLP student trained with
the evolved optimizer. The data are the same for every seed; the seed sets the student's
initialisation and batch order.
"""
import argparse
import importlib.util
import json

import torch


def task_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6144, 32, generator=g)
    teacher = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    for p in teacher.parameters():
        p.data = torch.randn(p.shape, generator=g)
    with torch.no_grad():
        y = teacher(x).argmax(1)
    return (x[:5120], y[:5120]), (x[5120:], y[5120:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--optimizer", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    (x, y), (val_x, val_y) = task_data()
    torch.manual_seed(args.seed)
    model = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))

    # The exported optimizer, loaded in three lines:
    spec = importlib.util.spec_from_file_location("evolved_optimizer", args.optimizer)
    evolved = importlib.util.module_from_spec(spec); spec.loader.exec_module(evolved)
    optimizer = evolved.EvolvedOptimizer(model.parameters(), total_steps=args.steps)

    losses = []
    for _ in range(args.steps):
        batch = torch.randint(0, len(x), (128,))
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        logits = model(val_x)
        val_loss = torch.nn.functional.cross_entropy(logits, val_y).item()
        val_acc = (logits.argmax(1) == val_y).float().mean().item()
    print(json.dumps({"val_acc": val_acc, "val_loss": val_loss, "losses": losses}))


if __name__ == "__main__":
    main()
