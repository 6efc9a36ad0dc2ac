"""pgrl's optimizer step (common.optimizer_step: clip_grad_norm + adam_step) equals torch's own
zero_grad / clip_grad_norm_ / Adam.step bit for bit, and the one-hot encoding equals F.one_hot."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pgrl.algos.common import adam_step, clip_grad_norm, make_optimizer, optimizer_step
from pgrl.policies.features import one_hot


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


def _loss(net: nn.Module, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(step)
    x, y = torch.randn(32, 5, generator=g), torch.randn(32, 3, generator=g)
    return ((net(x) - y) ** 2).mean() * 50.0  # large enough that clipping at 0.5 acts


@pytest.mark.parametrize("max_grad_norm", [None, 0.5, 1e6])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_optimizer_step_equals_torch(max_grad_norm, weight_decay):
    ours, theirs = _net(0), _net(0)
    opt_ours = make_optimizer(ours.parameters(), 1e-2, "adam")
    opt_theirs = copy.deepcopy(opt_ours)  # same settings, then pointed at the other network's parameters
    opt_theirs.param_groups[0]["params"] = list(theirs.parameters())
    for opt in (opt_ours, opt_theirs):
        opt.param_groups[0]["weight_decay"] = weight_decay
    for step in range(6):
        norm = optimizer_step(opt_ours, _loss(ours, step), max_grad_norm=max_grad_norm)
        opt_theirs.zero_grad(set_to_none=True)
        _loss(theirs, step).backward()
        expected = nn.utils.clip_grad_norm_(list(theirs.parameters()), max_grad_norm, foreach=True) \
            if max_grad_norm is not None else None
        opt_theirs.step()
        if max_grad_norm is not None:
            assert torch.equal(norm, expected)
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(a, b)
    state_ours, state_theirs = opt_ours.state_dict()["state"], opt_theirs.state_dict()["state"]
    for key in state_theirs:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(state_ours[key][name], state_theirs[key][name])


def test_clip_grad_norm_scales_like_torch():
    net = _net(1)
    _loss(net, 0).backward()
    grads = [p.grad.clone() for p in net.parameters()]
    total = clip_grad_norm(list(net.parameters()), 0.1)
    assert float(total) > 0.1  # the clipping really acts here
    twin = _net(1)
    for p, g in zip(twin.parameters(), grads, strict=True):
        p.grad = g
    assert torch.equal(total, nn.utils.clip_grad_norm_(list(twin.parameters()), 0.1, foreach=True))
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


def test_adam_step_falls_back_for_other_optimizers():
    net = _net(2)
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in net.parameters()]
    _loss(net, 0).backward()
    adam_step(opt)  # not Adam: torch's own step runs
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_one_hot_equals_torch():
    index = torch.tensor([[0, 3], [2, 1]])
    assert torch.equal(one_hot(index, 4), nn.functional.one_hot(index, 4).float())
    with pytest.raises(RuntimeError):
        one_hot(torch.tensor([4]), 4)


def test_run_equals_calling_the_network_and_respects_hooks():
    from pgrl.policies.networks import mlp, run

    torch.manual_seed(0)
    for activation in ("tanh", "relu", "elu"):
        net = mlp(6, [16, 16], 3, activation)
        x = torch.randn(5, 6, requires_grad=True)
        out = run(net, x)
        assert torch.equal(out, net(x))
        (grad,) = torch.autograd.grad(out.sum(), x)
        (expected,) = torch.autograd.grad(net(x).sum(), x)
        assert torch.equal(grad, expected)
    seen = []
    net[0].register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    run(net, torch.randn(2, 6))
    assert seen == [torch.Size([2, 16])]  # a hooked layer is called as a module, so its hook runs


def test_backward_scan_on_the_cpu_equals_the_torch_loop():
    from pgrl.returns import backward_scan

    g = torch.Generator().manual_seed(0)
    x, decay = torch.randn(64, 5, generator=g), torch.rand(64, 5, generator=g) * 0.99
    expected, running = torch.empty_like(x), torch.zeros(5)
    for t in range(63, -1, -1):
        running = x[t] + decay[t] * running
        expected[t] = running
    assert torch.equal(backward_scan(x, decay), expected)
    graded = backward_scan(x.clone().requires_grad_(), decay)  # the torch path keeps the graph
    assert graded.requires_grad and torch.equal(graded.detach(), expected)
