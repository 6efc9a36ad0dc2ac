"""Action distributions, chosen from the action space.

Written by hand rather than with torch.distributions: these two classes do only what the
algorithms need (sample, log_prob, entropy, mode, kl) without argument validation or
broadcasting machinery, which is a measurable share of a small-network step on a CPU.

Shapes (B = batch; any leading dims work the same, e.g. [K, B] for K stacked seeds):

| distribution | params                 | actions        | log_prob / entropy |
|--------------|------------------------|----------------|--------------------|
| Categorical  | logits [B, n]          | [B] int64      | [B]                |
| DiagGaussian | mean [B, d], log_std [d] or [B, d] | [B, d] float | [B] (summed over d) |

``sample(generators)`` with K generators draws block k of the noise (leading dim k) from
generators[k], exactly what a lone run's ``sample()`` draws for that block from the global
stream when its state equals generators[k]'s; without, the global stream draws everything.
"""

from __future__ import annotations

import math

import torch

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def per_seed_noise(out: torch.Tensor, generators: list[torch.Generator], kind: str) -> torch.Tensor:
    """Fill out[k] from generators[k] with "uniform" [0, 1) or "normal" noise; returns out."""
    for block, generator in zip(out.unbind(0), generators, strict=True):
        if kind == "uniform":
            block.uniform_(generator=generator)
        else:
            block.normal_(generator=generator)
    return out


class Categorical:
    def __init__(self, logits: torch.Tensor):
        self.logits = torch.log_softmax(logits, dim=-1)

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    def sample(self, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        # Gumbel-max: one fused pass, no host sync (torch.multinomial is slower for small n).
        if generators is None:
            u = torch.rand_like(self.logits)
        else:
            u = per_seed_noise(torch.empty_like(self.logits), generators, "uniform")
        u = u.clamp_(min=1e-20)
        return (self.logits - torch.log(-torch.log(u))).argmax(dim=-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(dim=-1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        # xlogy gives 0 * log 0 = 0, so masked (-inf) logits do not turn the entropy into NaN
        return -torch.special.xlogy(self.probs, self.probs).sum(dim=-1)

    def kl(self, other: Categorical) -> torch.Tensor:
        """KL(self || other), [B]; actions self never takes contribute 0."""
        p = self.probs
        return torch.where(p > 0, p * (self.logits - other.logits), 0.0).sum(dim=-1)

    def detach(self) -> Categorical:
        return Categorical(self.logits.detach())


class DiagGaussian:
    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor):
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def sample(self, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        if generators is None:
            noise = torch.randn_like(self.mean)
        else:
            noise = per_seed_noise(torch.empty_like(self.mean), generators, "normal")
        return self.mean + self.log_std.exp() * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - _HALF_LOG_2PI).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 + _HALF_LOG_2PI).sum(dim=-1)

    def kl(self, other: DiagGaussian) -> torch.Tensor:
        """KL(self || other), [B]."""
        var, other_var = (2 * self.log_std).exp(), (2 * other.log_std).exp()
        terms = other.log_std - self.log_std + (var + (self.mean - other.mean).pow(2)) / (2 * other_var) - 0.5
        return terms.sum(dim=-1)

    def detach(self) -> DiagGaussian:
        # clone: a detached log_std would still alias the parameter and follow in-place updates
        return DiagGaussian(self.mean.detach(), self.log_std.detach().clone())


Distribution = Categorical | DiagGaussian
