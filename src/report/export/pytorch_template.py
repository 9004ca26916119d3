"""{{NAME}}: {{ORIGIN}}

Genome: {{DESCRIBE}}
Hash:   {{HASH}}
Scores: {{SCORES}}

Usage:
    from evolved_optimizer import EvolvedOptimizer
    optimizer = EvolvedOptimizer(model.parameters(), total_steps=500)

Update per parameter tensor, step s (from 0), t = s + 1:
    g <- clamp(g, -c, c)                              (if grad_clip)
    w <- w * (1 - lr_t * weight_decay)                (decoupled)
    m <- b1*m + (1-b1)*g ; v <- b2*v + (1-b2)*g^2      (or m = g, v = g^2)
    s <- sum_k weight_k * T_k(g, m, v)                (terms below)
    w <- w - lr_t * xi * phi * s                      (DiffGrad xi, trust ratio phi)
    Lookahead every k steps.
lr_t: warmup lr*(s+1)/W for s < W, times 0.5*(1 + cos(pi*min(s, S)/S)) with cosine decay over
S = total_steps (the lr stays at its final value after S).

Papers: the terms' below; RAdam: Liu et al. 2020, "On the Variance of the Adaptive Learning Rate
and Beyond", arXiv:1908.03265; trust ratio: You et al. 2020, "Large Batch Optimization for Deep
Learning: Training BERT in 76 minutes" (LAMB), arXiv:1904.00962; DiffGrad: Dubey et al. 2019,
"diffGrad: An Optimization Method for Convolutional Neural Networks", arXiv:1909.11015;
Lookahead: Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back",
arXiv:1907.08610.

Weight decay is decoupled (AdamW's form): w <- w * (1 - lr * weight_decay). To port a
torch.optim setting with coupled L2 decay (SGD, Adam, RMSprop's weight_decay=wd, which adds
wd * w to the gradient), start from weight_decay = wd / lr and tune.

Schedules: with schedule=True (the default) the genome's own warmup and cosine decay multiply
each group's "lr", counted in optimizer steps per group. To drive the learning rate yourself
(torch.optim.lr_scheduler, which sets group["lr"]), pass schedule=False: otherwise the two
schedules multiply.
"""
import copy
import json
import math
import types
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import torch

GENOME = json.loads({{GENOME_JSON}})

# T for each term kind, written from evolve's term declarations (src/genome/terms.rs). c holds,
# per parameter tensor: grad, m, m_hat, v, denom (sqrt(v_hat) + eps), eps, d_t (sign decay), b1,
# b2, t, radam and the parameter's state.
TERMS = {{TERMS}}

# The per-parameter state each term kind reads, from the same declarations.
READS = {{READS}}


def state_keys(genome: Dict[str, Any]) -> Tuple[str, ...]:
    """What each parameter's state holds for `genome`: only what its rule reads."""
    keys = {k for term in genome["terms"] for k in READS[term["kind"]]}
    if genome.get("diffgrad"):
        keys.add("prev_grad")
    if genome.get("lookahead"):
        keys.add("slow")
    return ("step",) + tuple(k for k in ("m", "v", "lion_m", "prev_grad", "slow") if k in keys)


class EvolvedOptimizer(torch.optim.Optimizer):
    """{{DESCRIBE}}

    Args:
        params: the parameters (or parameter groups) to optimise.
        lr: the base learning rate (each group's "lr"; the genome's schedule multiplies it).
        betas: (beta1, beta2) of the moments m and v.
        eps: added to sqrt(v_hat).
        weight_decay: decoupled weight decay (see the module docstring to port a coupled one).
        total_steps: the run's length in optimizer steps ({{TOTAL_STEPS_NOTE}}).
        schedule: apply the genome's warmup and cosine decay (False: an external scheduler
            drives group["lr"]).
        maximize: maximise the objective instead of minimising it.
        genome: another genome (a dict as in GENOME) to run instead of this file's.
    """

    def __init__(self, params: Iterable[Any], lr: float = {{LR}},
                 betas: Tuple[float, float] = ({{BETA1}}, {{BETA2}}), eps: float = {{EPS}},
                 weight_decay: float = {{WEIGHT_DECAY}}, total_steps: Optional[int] = None,
                 schedule: bool = True, maximize: bool = False,
                 genome: Optional[Dict[str, Any]] = None) -> None:
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
        self.genome = copy.deepcopy(GENOME if genome is None else genome)
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
                        schedule_step=0)
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
            param_group["schedule_step"] = max(
                (g["schedule_step"] for g in self.param_groups), default=0)
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        keys = state_keys(self.genome)
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

    def _lr(self, group: Dict[str, Any]) -> float:
        lr, s, total = group["lr"], group["schedule_step"], group["total_steps"]
        if not group["schedule"]:
            return lr
        g = self.genome
        warmup = g.get("warmup_steps", 0)
        if warmup and s < warmup:
            lr = lr * (s + 1) / warmup
        if g.get("cosine_decay") and total:
            lr = lr * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        return lr

    def _sign_decay(self, group: Dict[str, Any]) -> float:
        mode = self.genome.get("sign_decay", "off")
        total = group["total_steps"]
        frac = min(group["schedule_step"], total) / total if total else 0.0
        if mode == "linear":
            return 1.0 - frac
        if mode == "cosine":
            return 0.5 * (1 + math.cos(math.pi * frac))
        return 1.0

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        g = self.genome
        for group in self.param_groups:
            b1, b2 = group["betas"]
            eps, wd = group["eps"], group["weight_decay"]
            lr = self._lr(group)
            d_t = self._sign_decay(group)
            keys = state_keys(g)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("EvolvedOptimizer does not support sparse gradients")
                if torch.is_complex(p):
                    raise RuntimeError(
                        "EvolvedOptimizer does not support complex parameters: optimise "
                        "torch.view_as_real(p) as a real parameter instead")
                state = self.state[p]
                if not state:
                    for key in keys:
                        state[key] = 0 if key == "step" else torch.zeros_like(p)
                    if "slow" in state:
                        state["slow"].copy_(p)
                t = state["step"] + 1
                grad = -p.grad if group["maximize"] else p.grad
                if g.get("grad_clip") is not None:
                    grad = grad.clamp(-g["grad_clip"], g["grad_clip"])
                w_norm = p.norm()
                if wd:
                    p.mul_(1 - lr * wd)
                m, v = state.get("m"), state.get("v")
                if m is not None and g.get("use_m", True):
                    m.lerp_(grad, 1 - b1)
                elif m is not None:
                    m.copy_(grad)
                if v is not None and g.get("use_v", True):
                    v.mul_(b2).add_(grad * grad * (1 - b2))
                elif v is not None:
                    v.copy_(grad * grad)
                if g.get("bias_correction", True):
                    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
                else:
                    bc1, bc2 = 1.0, 1.0
                c = types.SimpleNamespace(
                    grad=grad, m=m, m_hat=None if m is None else m / bc1, v=v,
                    denom=None if v is None else v.sqrt() / math.sqrt(bc2) + eps,
                    eps=eps, d_t=d_t, b1=b1, b2=b2, t=t,
                    radam=g.get("radam", False), state=state)
                direction = torch.zeros_like(p)
                for term in g["terms"]:
                    direction.add_(TERMS[term["kind"]](c) * term["weight"])
                if "lion_m" in state:
                    state["lion_m"].lerp_(grad, 1 - b2)
                scale = 1.0
                if g.get("diffgrad"):
                    scale = torch.sigmoid((state["prev_grad"] - grad).norm())
                    state["prev_grad"].copy_(grad)
                if g.get("trust_ratio"):
                    u_norm = (p - lr * direction).norm()
                    if w_norm > 0 and u_norm > 0:
                        scale = scale * torch.clamp(w_norm, max=10.0) / u_norm
                p.sub_(direction * (lr * scale))
                lookahead = g.get("lookahead")
                if lookahead and t % lookahead["k"] == 0:
                    state["slow"].lerp_(p, lookahead["alpha"])
                    p.copy_(state["slow"])
                state["step"] = t
            group["schedule_step"] += 1
        return loss

    @staticmethod
    def _radam(m: torch.Tensor, v: torch.Tensor, b1: float, b2: float, eps: float,
               t: int) -> torch.Tensor:
        """RAdam's rectified step in the Eve library's form (raw m, v)."""
        n_max = 2 / (1 - b2) - 1
        n_t = n_max - 2 * t * b2 ** t / (1 - b2 ** t)
        if n_t >= 5:
            r = math.sqrt((1 - b2 ** t) * (n_t - 4) / (n_max - 4) * (n_t - 2) / n_t * n_max / (n_max - 2)) / (1 - b1 ** t)
            return r * m / (v.sqrt() + eps)
        return m / (1 - b1 ** t)

