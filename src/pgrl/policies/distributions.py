"""Action distributions, chosen from the action space.

Written by hand rather than with torch.distributions: these classes do only what the
algorithms need (sample, log_prob, entropy, mode, kl) without argument validation or
broadcasting machinery, which is a measurable share of a small-network step on a CPU.

Shapes (B = batch; any leading dims work the same, e.g. [K, B] for K stacked seeds):

| distribution | params                 | actions        | log_prob / entropy |
|--------------|------------------------|----------------|--------------------|
| Categorical  | logits [B, n]          | [B] int64      | [B]                |
| DiagGaussian | mean [B, d], log_std [d] or [B, d] | [B, d] float | [B] (summed over d) |
| MultiCategorical | logits [B, sum(nvec)] | [B, d] int64 | [B] (summed over d)        |
| Bernoulli    | logits [B, d]          | [B, d] float 0/1 | [B] (summed over d)      |

``sample(generators)`` with K generators draws block k of the noise (leading dim k) from
generators[k], exactly what a lone run's ``sample()`` draws for that block from the global
stream when its state equals generators[k]'s; without, the global stream draws everything.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as nn_functional

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def per_seed_noise(out: torch.Tensor, generators: list[torch.Generator], kind: str) -> torch.Tensor:
    """Fill out[k] from generators[k] with "uniform" [0, 1) or "normal" noise; returns out."""
    for block, generator in zip(out.unbind(0), generators, strict=True):
        if kind == "uniform":
            block.uniform_(generator=generator)
        else:
            block.normal_(generator=generator)
    return out


#: the logit of an invalid action: finite, so gradients stay finite, yet its probability is exactly 0
MASKED_LOGIT = -1e8


class Categorical:
    """``mask`` (bool, the logits' shape): False marks invalid actions, which get probability 0,
    are never sampled or chosen greedily, and add nothing to the entropy."""

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is not None:
            logits = logits.masked_fill(~mask, MASKED_LOGIT)
        self.logits = torch.log_softmax(logits, dim=-1)
        self.masked = mask is not None

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    def sample(self, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        # Gumbel-max: one fused pass, no host sync (torch.multinomial is slower for small n).
        if generators is None:
            u = torch.rand_like(self.logits)
        else:
            u = per_seed_noise(torch.empty_like(self.logits), generators, "uniform")
        gumbel = u.clamp_(min=1e-20).log_().neg_().log_()  # log(-log u), in place: no new tensors per op
        return (self.logits - gumbel).argmax(dim=-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(dim=-1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        if self.masked:  # p log p with the finite log p of masked actions: 0 * -1e8 = 0, finite gradients
            return -(self.probs * self.logits).sum(dim=-1)
        # xlogy gives 0 * log 0 = 0, so a probability that underflows to 0 does not turn the entropy into NaN
        return -torch.special.xlogy(self.probs, self.probs).sum(dim=-1)

    def kl(self, other: Categorical) -> torch.Tensor:
        """KL(self || other), [B]; actions self never takes contribute 0."""
        p = self.probs
        return torch.where(p > 0, p * (self.logits - other.logits), 0.0).sum(dim=-1)

    def detach(self) -> Categorical:
        out = Categorical(self.logits.detach())
        out.masked = self.masked
        return out


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


class MultiCategorical:
    """Independent categoricals, one per entry of a MultiDiscrete space (log-probs and entropies summed).

    The d heads' logits are laid into one [B, d, max n] tensor, padded where a head has fewer
    choices, so sampling, log-probs and entropies are one Categorical pass over all heads.  The
    padding is a finite -1e4, not -inf: its probability is exactly 0 in float32 and is never
    sampled (Gumbel noise stays far below 1e4), while the entropy's and KL's gradients stay finite.
    """

    PAD = -1e4

    def __init__(self, logits: torch.Tensor, nvec: tuple[int, ...], mask: torch.Tensor | None = None,
                 _padded: Categorical | None = None):
        """``mask`` [B, sum(nvec)] (bool): False marks an invalid choice of its entry."""
        self.nvec = nvec
        if _padded is not None:
            self.inner = _padded
            return
        if mask is not None:
            logits = logits.masked_fill(~mask, MASKED_LOGIT)
        width = max(nvec)
        if all(n == width for n in nvec):
            padded = logits.unflatten(-1, (len(nvec), width))
        else:
            valid = torch.zeros(len(nvec), width, dtype=torch.bool, device=logits.device)
            for i, n in enumerate(nvec):
                valid[i, :n] = True
            padded = logits.new_full((*logits.shape[:-1], len(nvec), width), self.PAD)
            padded = padded.masked_scatter(valid, logits)
        self.inner = Categorical(padded)

    def sample(self, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        return self.inner.sample(generators)

    def mode(self) -> torch.Tensor:
        return self.inner.mode()

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.inner.log_prob(actions).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        # p log p with finite log p: padded entries give 0 * -1e4 = 0 (xlogy's gradient at p = 0 is nan)
        return -(self.inner.probs * self.inner.logits).sum(dim=-1).sum(dim=-1)

    def kl(self, other: MultiCategorical) -> torch.Tensor:
        return self.inner.kl(other.inner).sum(dim=-1)

    def detach(self) -> MultiCategorical:
        return MultiCategorical(None, self.nvec, _padded=self.inner.detach())


class Bernoulli:
    """Independent 0/1 draws, one per entry of a MultiBinary space, from logits."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    def sample(self, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        if generators is None:
            u = torch.rand_like(self.logits)
        else:
            u = per_seed_noise(torch.empty_like(self.logits), generators, "uniform")
        return (u < torch.sigmoid(self.logits)).float()

    def mode(self) -> torch.Tensor:
        return (self.logits > 0).float()

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        # log p(a) = a log s(l) + (1 - a) log s(-l) = -softplus(-l) - (1 - a) l
        return (-nn_functional.softplus(-self.logits) - (1.0 - actions) * self.logits).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        p = torch.sigmoid(self.logits)
        return (nn_functional.softplus(-self.logits) + (1.0 - p) * self.logits).sum(dim=-1)

    def kl(self, other: Bernoulli) -> torch.Tensor:
        p = torch.sigmoid(self.logits)
        log_p, log_q = nn_functional.logsigmoid(self.logits), nn_functional.logsigmoid(other.logits)
        log_1p, log_1q = nn_functional.logsigmoid(-self.logits), nn_functional.logsigmoid(-other.logits)
        return (p * (log_p - log_q) + (1.0 - p) * (log_1p - log_1q)).sum(dim=-1)

    def detach(self) -> Bernoulli:
        return Bernoulli(self.logits.detach())


Distribution = Categorical | DiagGaussian | MultiCategorical | Bernoulli
