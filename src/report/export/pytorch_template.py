"""{{NAME}}: an optimizer discovered by `evolve`.

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
lr_t: warmup lr*(s+1)/W for s < W, times 0.5*(1 + cos(pi*s/total_steps)) with cosine decay.
"""
import json
import math
import types

import torch

GENOME = json.loads({{GENOME_JSON}})

# T for each term kind, written from evolve's term declarations (src/terms.rs). c holds, per
# parameter tensor: grad, m, m_hat, v, denom (sqrt(v_hat) + eps), eps, d_t (sign decay), b1, b2,
# t, radam and the parameter's state.
TERMS = {{TERMS}}


class EvolvedOptimizer(torch.optim.Optimizer):
    def __init__(self, params, lr={{LR}}, betas=({{BETA1}}, {{BETA2}}), eps={{EPS}},
                 weight_decay={{WEIGHT_DECAY}}, total_steps=None, genome=None):
        """total_steps: {{TOTAL_STEPS_NOTE}}."""
        self.genome = dict(GENOME if genome is None else genome)
        g = self.genome
        if (g.get("cosine_decay") or g.get("sign_decay", "off") != "off") and not total_steps:
            raise ValueError("this genome's schedule spans the run: pass total_steps=")
        self.total_steps = total_steps or 0
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _lr(self, lr, s):
        g = self.genome
        warmup = g.get("warmup_steps", 0)
        if warmup and s < warmup:
            lr = lr * (s + 1) / warmup
        if g.get("cosine_decay") and self.total_steps:
            lr = lr * 0.5 * (1 + math.cos(math.pi * s / self.total_steps))
        return lr

    def _sign_decay(self, s):
        mode = self.genome.get("sign_decay", "off")
        frac = s / self.total_steps if self.total_steps else 0.0
        if mode == "linear":
            return 1.0 - frac
        if mode == "cosine":
            return 0.5 * (1 + math.cos(math.pi * frac))
        return 1.0

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        g = self.genome
        for group in self.param_groups:
            b1, b2 = group["betas"]
            eps, wd = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                    state["lion_m"] = torch.zeros_like(p)
                    state["prev_grad"] = torch.zeros_like(p)
                    state["slow"] = p.detach().clone()
                s = state["step"]
                t = s + 1
                lr = self._lr(group["lr"], s)
                grad = p.grad
                if g.get("grad_clip") is not None:
                    grad = grad.clamp(-g["grad_clip"], g["grad_clip"])
                w_norm = p.norm()
                if wd:
                    p.mul_(1 - lr * wd)
                m, v = state["m"], state["v"]
                if g.get("use_m", True):
                    m.lerp_(grad, 1 - b1)
                else:
                    m.copy_(grad)
                if g.get("use_v", True):
                    v.mul_(b2).add_(grad * grad * (1 - b2))
                else:
                    v.copy_(grad * grad)
                if g.get("bias_correction", True):
                    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
                else:
                    bc1, bc2 = 1.0, 1.0
                c = types.SimpleNamespace(
                    grad=grad, m=m, m_hat=m / bc1, v=v, denom=v.sqrt() / math.sqrt(bc2) + eps,
                    eps=eps, d_t=self._sign_decay(s), b1=b1, b2=b2, t=t,
                    radam=g.get("radam", False), state=state)
                direction = torch.zeros_like(p)
                for term in g["terms"]:
                    direction.add_(TERMS[term["kind"]](c) * term["weight"])
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
        return loss

    @staticmethod
    def _radam(m, v, b1, b2, eps, t):
        """RAdam's rectified step in the Eve library's form (raw m, v)."""
        n_max = 2 / (1 - b2) - 1
        n_t = n_max - 2 * t * b2 ** t / (1 - b2 ** t)
        if n_t >= 5:
            r = math.sqrt((1 - b2 ** t) * (n_t - 4) / (n_max - 4) * (n_t - 2) / n_t * n_max / (n_max - 2)) / (1 - b1 ** t)
            return r * m / (v.sqrt() + eps)
        return m / (1 - b1 ** t)
