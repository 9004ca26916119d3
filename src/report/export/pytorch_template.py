"""{{NAME}}: {{ORIGIN}}

Genome: {{DESCRIBE}}
Hash:   {{HASH}}
Scores: {{SCORES}}

Usage:
    from evolved_optimizer import EvolvedOptimizer
    optimizer = EvolvedOptimizer(model.parameters(), total_steps=500)

The step (`_rule`) is generated for this genome by evolve from the same declarations its engine
trains with: it keeps only the state the rule reads, and each line is one torch._foreach_* call
over a parameter group's tensors (or one tensor), as torch.optim's own optimizers do. Step counts
live in float64 tensors on the host, so the step never waits for the device, and torch.compile
traces it without a graph break. EvolvedOptimizer's docstring gives the update rule, its papers,
and how to port weight decay and schedules.
"""
import copy
import json
import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
from torch import Tensor

GENOME = json.loads({{GENOME_JSON}})

Scalars = Union[float, List[float], Tensor, List[Tensor]]


def _per_tensor(x: Union[float, Tensor], eager: bool) -> Scalars:
    """Scalars for a foreach call from a 0-dim tensor or one value per tensor. Eagerly, numbers
    on the host become Python numbers (one number when they agree), so the fused scalar
    overloads run; while torch.compile traces, they stay tensors."""
    if not torch.is_tensor(x):
        return x
    if not eager or x.device.type != "cpu":
        # Numbers on the device stay there: reading them would wait for it.
        return x if x.dim() == 0 else list(x.unbind())
    if x.dim() == 0:
        return x.item()
    values = x.tolist()
    return values[0] if min(values) == max(values) else values


def _add_scaled_(p: List[Tensor], x: List[Tensor], k: Union[float, Tensor], eager: bool) -> None:
    """p += k * x (x is not written to)."""
    k = _per_tensor(k, eager)
    if isinstance(k, float):
        torch._foreach_add_(p, x, alpha=k)
    else:
        torch._foreach_add_(p, torch._foreach_mul(x, k))


def _addcdiv_(p: List[Tensor], x: List[Tensor], den: List[Tensor], k: Union[float, Tensor],
              eager: bool) -> None:
    """p += k * x / den."""
    k = _per_tensor(k, eager)
    if isinstance(k, float) or (isinstance(k, list) and isinstance(k[0], float)):
        torch._foreach_addcdiv_(p, x, den, k)
    else:
        q = torch._foreach_div(x, den)
        torch._foreach_mul_(q, k)
        torch._foreach_add_(p, q)


def _trust_ratio(w_norm: Tensor, u_norm: Tensor) -> Tensor:
    """LAMB's trust ratio in the Eve library's form: min(|w|, 10) / |update|, 1 where either is 0."""
    usable = (w_norm > 0) & (u_norm > 0)
    return torch.where(usable, w_norm.clamp(max=10.0) / u_norm, 1.0)


{{RULE}}

class EvolvedOptimizer(torch.optim.Optimizer):
    """{{DESCRIBE}}

    Update per parameter tensor, step s (from 0), t = s + 1:
        g <- clamp(g, -c, c)                              (if grad_clip)
        w <- w * (1 - lr_t * weight_decay)                (decoupled)
        m <- b1*m + (1-b1)*g ; v <- b2*v + (1-b2)*g^2      (or m = g, v = g^2)
        s <- sum_k weight_k * T_k(g, m, v)                (the terms below)
        w <- w - lr_t * xi * phi * s                      (DiffGrad xi, trust ratio phi)
        Lookahead every k steps.
    lr_t: warmup lr*(s+1)/W for s < W, times 0.5*(1 + cos(pi*min(s, S)/S)) with cosine decay
    over S = total_steps (the lr stays at its final value after S).

    This genome's terms and modifiers, with their papers:
{{PAPERS}}
    Weight decay is decoupled (AdamW's form): w <- w * (1 - lr * weight_decay). To port a
    torch.optim setting with coupled L2 decay (SGD, Adam, RMSprop's weight_decay=wd, which adds
    wd * w to the gradient), start from weight_decay = wd / lr and tune.

    Schedules: with schedule=True (the default) the genome's own warmup and cosine decay
    multiply each group's "lr", counted in optimizer steps per group. To drive the learning rate
    yourself (torch.optim.lr_scheduler, which sets group["lr"]), pass schedule=False: otherwise
    the two schedules multiply.

    Args:
        params: the parameters (or parameter groups) to optimise.
        lr: the base learning rate (each group's "lr"; the genome's schedule multiplies it).
        betas: (beta1, beta2) of the moments m and v.
        eps: added to sqrt(v_hat).
        weight_decay: decoupled weight decay (see above to port a coupled one).
        total_steps: the run's length in optimizer steps ({{TOTAL_STEPS_NOTE}}).
        schedule: apply the genome's warmup and cosine decay (False: an external scheduler
            drives group["lr"]).
        maximize: maximise the objective instead of minimising it.
        foreach: run each step's calls over a group's tensors at once (torch._foreach_*) rather
            than tensor by tensor; None (the default) chooses as torch.optim does: foreach when
            every parameter is on CUDA. On CPU one tensor at a time is the faster, since each
            temporary is freed and its memory reused before the next.
    """

    def __init__(self, params: Iterable[Any], lr: float = {{LR}},
                 betas: Tuple[float, float] = ({{BETA1}}, {{BETA2}}), eps: float = {{EPS}},
                 weight_decay: float = {{WEIGHT_DECAY}}, total_steps: Optional[int] = None,
                 schedule: bool = True, maximize: bool = False,
                 foreach: Optional[bool] = None) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        self.genome = copy.deepcopy(GENOME)
        g = self.genome
        spans_run = g.get("cosine_decay") or g.get("sign_decay", "off") != "off"
        if spans_run and schedule and not total_steps:
            raise ValueError(
                "EvolvedOptimizer: this genome's schedule spans the run (cosine decay or sign "
                "decay), so it needs the run's length: pass total_steps=<the number of optimizer "
                "steps your training takes>, or schedule=False to drive the learning rate with "
                "your own scheduler")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        total_steps=total_steps or 0, schedule=schedule, maximize=maximize,
                        foreach=foreach)
        super().__init__(params, defaults)

    def __repr__(self) -> str:
        g = self.genome
        terms = " + ".join(f"{t['kind']}*{t['weight']:.4g}" for t in g["terms"])
        flags = [f for f in ("radam", "trust_ratio", "diffgrad") if g.get(f)]
        if g.get("lookahead"):
            flags.append(f"lookahead k={g['lookahead']['k']} alpha={g['lookahead']['alpha']:.3g}")
        extra = "".join(f", {f}" for f in flags)
        return (f"EvolvedOptimizer({g.get('name', 'evolved')}: {terms}; lr={g['lr']:.4g}, "
                f"betas=({g['beta1']:.4g}, {g['beta2']:.4g}), eps={g['eps']:.3g}, "
                f"weight_decay={g.get('weight_decay', 0.0):.3g}{extra})")

    def __getstate__(self) -> Dict[str, Any]:
        state = super().__getstate__()
        state["genome"] = self.genome
        return state

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        # A group added mid-run joins the schedule where the others are, not at its start.
        if "schedule_step" not in param_group:
            at = max((float(g["schedule_step"]) for g in self.param_groups), default=0.0)
            param_group["schedule_step"] = torch.tensor(at, dtype=torch.float64)
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        keys = ("step",) + tuple(STATE)
        for key, state in state_dict.get("state", {}).items():
            missing = [k for k in keys if k not in state]
            if missing:
                raise ValueError(
                    f"EvolvedOptimizer.load_state_dict: the state of parameter {key} lacks "
                    f"{', '.join(missing)}: this state_dict is another optimizer's")
        for group in state_dict.get("param_groups", []):
            if "schedule_step" not in group:
                raise ValueError(
                    "EvolvedOptimizer.load_state_dict: a parameter group lacks schedule_step: "
                    "this state_dict is another optimizer's")
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["schedule_step"] = torch.as_tensor(group["schedule_step"], dtype=torch.float64)
        for state in self.state.values():
            state["step"] = torch.as_tensor(state["step"], dtype=torch.float64)

    def _lr(self, group: Dict[str, Any]) -> Tensor:
        """The group's learning rate at its current schedule step."""
        s = torch.as_tensor(group["schedule_step"], dtype=torch.float64)
        return _learning_rate(group["lr"], s, group["total_steps"], group["schedule"])

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        eager = not torch.compiler.is_compiling()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError("EvolvedOptimizer does not support sparse gradients")
                if torch.is_complex(p):
                    raise RuntimeError(
                        "EvolvedOptimizer does not support complex parameters: optimise "
                        "torch.view_as_real(p) as a real parameter instead")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    for key, init in STATE.items():
                        state[key] = init(p)
            s = group["schedule_step"]
            foreach = group["foreach"]
            if foreach is None:
                foreach = all(p.is_cuda for p in params)
            b1, b2 = group["betas"]
            for batch in [params] if foreach else [[p] for p in params]:
                if not batch:
                    continue
                steps = [self.state[p]["step"] for p in batch]
                torch._foreach_add_(steps, 1.0)
                lists = {key: [self.state[p][key] for p in batch] for key in STATE}
                _rule(batch, [p.grad for p in batch], lists, torch.stack(steps), s,
                      group["lr"], b1, b2, group["eps"], group["weight_decay"],
                      group["total_steps"], group["schedule"], group["maximize"], eager)
            group["schedule_step"] = s + 1
        return loss
