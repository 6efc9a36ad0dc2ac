"""Numba kernels for small MLP actor-critics: forward, backward, PPO's loss, clipping and Adam.

Why by hand: on classic-control sized networks (64-64 MLPs, 128-sample minibatches) a PPO
minibatch step in torch is about 280 tensor ops of a few microseconds each, and the arithmetic
is a small share of that; here one compiled call runs a whole epoch of minibatches with no
dispatch in between.  The math is pgrl's torch path's (pgrl.algos.ppo.ppo_loss, the
distributions in pgrl.policies.distributions, clip_grad_norm, fused Adam) in float32, equal to
it to rounding (tests/unit/test_fast_path.py); pgrl.fast decides where it is used.

Layout.  All parameters of the policy live in one flat float32 vector ``params`` (pgrl.fast
makes the torch parameters views of it); ``grads``, ``exp_avg`` and ``exp_avg_sq`` have its
layout.  A network is an int64 array ``arch`` [L, 4] of (in, out, weight offset, bias offset)
per nn.Linear, weights row-major [out, in] as nn.Linear stores them, with the activation
(``ACT_TANH`` or ``ACT_RELU``) after every layer but the last.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

ACT_TANH, ACT_RELU = 0, 1
# reassociation lets reductions vectorize; no nnan/ninf: masks use finite -1e8 logits and the
# Python side checks the losses for NaN, as the torch path does.  error_model="numpy": no
# division-by-zero branch per division, which would keep loops from vectorizing.
_FM = {"reassoc", "contract", "nsz", "arcp"}
_JIT = {"cache": True, "fastmath": _FM, "error_model": "numpy", "nogil": True}
MASKED_LOGIT = np.float32(-1e8)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

# hyper: the float64 settings vector of ppo_epoch
H_CLIP, H_CLIP_VF, H_VF_COEF, H_ENT_COEF, H_KL_COEF, H_TARGET_KL, H_MAX_NORM = 0, 1, 2, 3, 4, 5, 6
H_LR, H_BETA1, H_BETA2, H_EPS, H_WD, H_NORM_ADV = 7, 8, 9, 10, 11, 12
N_HYPER = 13
# stats: sums over the minibatches stepped
S_POLICY, S_VALUE, S_ENTROPY, S_KL, S_CLIP_FRAC = 0, 1, 2, 3, 4
N_STATS = 5

_TANH_LIMIT = np.float32(7.90531110763549805)


@njit(**_JIT)
def tanh_(a):
    """tanh in place on a contiguous 1-d float32 array, as a rational function of x (the
    minimax approximation Eigen and XLA use for float32): within a few float32 ulps of tanh,
    and unlike libm's tanh it vectorizes (about 8x torch.tanh's speed on [128, 64])."""
    for i in range(a.shape[0]):
        x = a[i]
        x = _TANH_LIMIT if x > _TANH_LIMIT else x
        x = -_TANH_LIMIT if x < -_TANH_LIMIT else x
        x2 = x * x
        p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
        p = x2 * p + np.float32(-8.60467152213735e-11)
        p = x2 * p + np.float32(5.12229709037114e-08)
        p = x2 * p + np.float32(1.48572235717979e-05)
        p = x2 * p + np.float32(6.37261928875436e-04)
        p = x2 * p + np.float32(4.89352455891786e-03)
        q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
        q = x2 * q + np.float32(2.26843463243900e-03)
        q = x2 * q + np.float32(4.89352518554385e-03)
        a[i] = x * p / q


@njit(**_JIT)
def layer_offsets(arch, rows):
    """Offsets of a network's per-layer buffers in one flat scratch vector for up to ``rows``
    rows: [0] the input [rows, in], [l + 1] layer l's output [rows, out]; the last entry is the size."""
    n_layers = arch.shape[0]
    offsets = np.empty(n_layers + 2, np.int64)
    offsets[0] = 0
    offsets[1] = rows * arch[0, 0]
    for layer in range(n_layers):
        offsets[layer + 2] = offsets[layer + 1] + rows * arch[layer, 1]
    return offsets


@njit(**_JIT)
def _view(buf, offset, rows, width):
    return buf[offset : offset + rows * width].reshape(rows, width)


@njit(**_JIT)
def _weight(params, arch, layer):
    n_in, n_out, w_off = arch[layer, 0], arch[layer, 1], arch[layer, 2]
    return params[w_off : w_off + n_in * n_out].reshape(n_out, n_in)


# Below this many rows or columns a matmul runs as vector loops: BLAS's fixed cost per call (and
# its slow paths for a 4-wide operand) is several times the work of a [128, 64] x [64, 4] product.
_SMALL = 16


@njit(**_JIT)
def _rows_times(a, m, out):
    """out = a @ m for a [B, k] with k small, m [k, n] contiguous: each row of out as k n-wide
    multiply-adds (vector ops), not one short dot product per entry."""
    for b in range(a.shape[0]):
        ob = out[b]
        ob[:] = 0.0
        for j in range(m.shape[0]):
            aj = a[b, j]
            mj = m[j]
            for o in range(m.shape[1]):
                ob[o] += aj * mj[o]


@njit(**_JIT)
def _matmul_wt(x, w, y):
    """y = x @ w.T for x [B, in], w [out, in] (nn.Linear's layout)."""
    n_out, n_in = w.shape
    if n_in <= _SMALL:
        _rows_times(x, np.ascontiguousarray(w.T), y)
    elif n_out <= _SMALL:  # one in-wide dot product per output
        for b in range(x.shape[0]):
            xb = x[b]
            for o in range(n_out):
                wo = w[o]
                acc = np.float32(0.0)
                for i in range(n_in):
                    acc += xb[i] * wo[i]
                y[b, o] = acc
    else:
        np.dot(x, w.T, y)  # BLAS sgemm


@njit(**_JIT)
def _weight_grad(dz, x, gw):
    """gw = dz.T @ x for dz [B, out], x [B, in] (gw [out, in])."""
    n_out, n_in = gw.shape
    if n_in <= _SMALL:
        gwt = np.zeros((n_in, n_out), np.float32)
        for b in range(dz.shape[0]):
            dzb = dz[b]
            for i in range(n_in):
                xi = x[b, i]
                gi = gwt[i]
                for o in range(n_out):
                    gi[o] += xi * dzb[o]
        gw[:, :] = gwt.T
    elif n_out <= _SMALL:
        gw[:, :] = 0.0
        for b in range(dz.shape[0]):
            xb = x[b]
            for o in range(n_out):
                g = dz[b, o]
                go = gw[o]
                for i in range(n_in):
                    go[i] += g * xb[i]
    else:
        np.dot(dz.T, x, gw)


@njit(**_JIT)
def _input_grad(dz, w, dx):
    """dx = dz @ w for dz [B, out], w [out, in]."""
    if w.shape[0] <= _SMALL:
        _rows_times(dz, w, dx)
    else:
        np.dot(dz, w, dx)


@njit(**_JIT)
def forward(arch, act, params, rows, h, offsets):
    """Run the network on its input (the first rows of buffer 0 of ``h``, laid out by
    ``layer_offsets``); every layer's output, after its activation, stays in ``h`` for backward."""
    n_layers = arch.shape[0]
    for layer in range(n_layers):
        n_in, n_out, b_off = arch[layer, 0], arch[layer, 1], arch[layer, 3]
        x = _view(h, offsets[layer], rows, n_in)
        y = _view(h, offsets[layer + 1], rows, n_out)
        _matmul_wt(x, _weight(params, arch, layer), y)
        bias = params[b_off : b_off + n_out]
        for b in range(rows):
            yb = y[b]
            for o in range(n_out):
                yb[o] += bias[o]
        if layer < n_layers - 1:
            flat = h[offsets[layer + 1] : offsets[layer + 1] + rows * n_out]
            if act == ACT_TANH:
                tanh_(flat)
            else:
                for i in range(flat.shape[0]):
                    if flat[i] < 0.0:
                        flat[i] = 0.0


@njit(**_JIT)
def backward(arch, act, params, grads, rows, h, d, offsets):
    """Write into ``grads`` (this network's entries) the gradient of a loss whose gradient with
    respect to the network's output is in ``d``'s last buffer ([rows, out]); ``h`` is forward's,
    ``d`` has its layout and is scratch for the other layers."""
    n_layers = arch.shape[0]
    for layer in range(n_layers - 1, -1, -1):
        n_in, n_out, w_off, b_off = arch[layer, 0], arch[layer, 1], arch[layer, 2], arch[layer, 3]
        dz = _view(d, offsets[layer + 1], rows, n_out)
        x = _view(h, offsets[layer], rows, n_in)
        _weight_grad(dz, x, grads[w_off : w_off + n_in * n_out].reshape(n_out, n_in))
        gb = np.zeros(n_out, np.float32)
        for b in range(rows):
            dzb = dz[b]
            for o in range(n_out):
                gb[o] += dzb[o]
        grads[b_off : b_off + n_out] = gb
        if layer == 0:
            break
        _input_grad(dz, _weight(params, arch, layer), _view(d, offsets[layer], rows, n_in))
        flat_dx = d[offsets[layer] : offsets[layer] + rows * n_in]
        flat_x = h[offsets[layer] : offsets[layer] + rows * n_in]
        if act == ACT_TANH:  # through the activation that produced x: 1 - y^2 for tanh, y > 0 for ReLU
            for i in range(flat_dx.shape[0]):
                flat_dx[i] *= np.float32(1.0) - flat_x[i] * flat_x[i]
        else:
            for i in range(flat_dx.shape[0]):
                if flat_x[i] <= 0.0:
                    flat_dx[i] = 0.0


@njit(**_JIT)
def mlp_values(params, arch, act, x, out):
    """out [M] = the critic network's output on x [M, in]."""
    rows = x.shape[0]
    offsets = layer_offsets(arch, rows)
    h = np.empty(offsets[-1], np.float32)
    _view(h, 0, rows, x.shape[1])[:, :] = x
    forward(arch, act, params, rows, h, offsets)
    out[:] = _view(h, offsets[arch.shape[0]], rows, 1)[:, 0]


@njit(cache=True)  # no fastmath: the same float32 operations in the same order as the torch loop
def backward_scan(x, decay, out):
    """out[t] = x[t] + decay[t] * out[t + 1] (out[T] = 0) over the leading dim of [T, K] arrays."""
    running = np.zeros(x.shape[1], x.dtype)
    for t in range(x.shape[0] - 1, -1, -1):
        for k in range(x.shape[1]):
            running[k] = x[t, k] + decay[t, k] * running[k]
            out[t, k] = running[k]


@njit(**_JIT)
def _log_softmax(z, mask, row, n, out):
    """out[:n] = log_softmax(z[:n]) with masked-out entries at MASKED_LOGIT first (mask row ``row``; -1: none)."""
    top = -np.inf
    for j in range(n):
        v = z[j]
        if row >= 0 and not mask[row, j]:
            v = MASKED_LOGIT
        out[j] = v
        if v > top:
            top = v
    total = 0.0
    for j in range(n):
        total += math.exp(out[j] - top)
    lse = top + math.log(total)
    for j in range(n):
        out[j] = out[j] - lse


@njit(**_JIT)
def clip_and_adam(params, grads, exp_avg, exp_avg_sq, step, hyper):
    """clip_grad_norm (global 2-norm, scale min(1, max / (norm + 1e-6))) then one fused-Adam step
    (torch.optim.Adam's math: L2 weight decay, lerp first moment, bias corrections); ``step`` is
    the step being taken (1 for the first).  Returns the pre-clip norm."""
    total = 0.0
    for k in range(grads.shape[0]):
        total += grads[k] * grads[k]
    norm = math.sqrt(total)
    scale = 1.0
    if hyper[H_MAX_NORM] >= 0.0:
        scale = min(hyper[H_MAX_NORM] / (norm + 1e-6), 1.0)
    lr, beta1, beta2, eps, wd = hyper[H_LR], hyper[H_BETA1], hyper[H_BETA2], hyper[H_EPS], hyper[H_WD]
    bias1 = 1.0 - beta1**step
    bias2_sqrt = math.sqrt(1.0 - beta2**step)
    step_size = np.float32(lr / bias1)
    scale32, one_b1, b2, one_b2 = np.float32(scale), np.float32(1.0 - beta1), np.float32(beta2), np.float32(1.0 - beta2)
    b2s, eps32, wd32 = np.float32(bias2_sqrt), np.float32(eps), np.float32(wd)
    for k in range(params.shape[0]):
        g = grads[k] * scale32
        if wd != 0.0:
            g += wd32 * params[k]
        m = exp_avg[k] + one_b1 * (g - exp_avg[k])
        v = b2 * exp_avg_sq[k] + one_b2 * g * g
        exp_avg[k] = m
        exp_avg_sq[k] = v
        params[k] -= step_size * m / (math.sqrt(v) / b2s + eps32)
    return norm


@njit(**_JIT)
def ppo_epoch(params, grads, exp_avg, exp_avg_sq, step, arch_pi, arch_vf, act, log_std_off, discrete,
              obs, actions_i, actions_f, masks, has_masks, old_log_probs, old_values, advantages, returns,
              perm, batch_size, hyper, stats):
    """One PPO epoch over the rollout's samples in ``perm``'s order, a minibatch step per
    batch_size rows, as pgrl.algos.ppo.PPO.update's loop does with the torch path.

    Discrete actions: actions_i [M] with logits from the actor (masks [M, n] bool when
    has_masks); Box: actions_f [M, d], Gaussian with the state-independent log_std at
    params[log_std_off:].  hyper: the H_* settings (clip_vf, target_kl, max_grad_norm < 0: off).
    stats [N_STATS] (float64) accumulates per-minibatch losses.  Returns (minibatches stepped,
    whether the target-KL check stopped the epoch); ``step`` is Adam's count before the epoch.
    """
    n_samples = perm.shape[0]
    n_pi, n_vf = arch_pi.shape[0], arch_vf.shape[0]
    n_act = arch_pi[n_pi - 1, 1]
    n_obs = obs.shape[1]
    off_pi, off_vf = layer_offsets(arch_pi, batch_size), layer_offsets(arch_vf, batch_size)
    h_pi, d_pi_buf = np.empty(off_pi[-1], np.float32), np.empty(off_pi[-1], np.float32)
    h_vf, d_vf_buf = np.empty(off_vf[-1], np.float32), np.empty(off_vf[-1], np.float32)
    logp_row = np.empty(n_act, np.float32)
    log_probs = np.empty(batch_size, np.float32)
    entropies = np.empty(batch_size, np.float32)
    adv = np.empty(batch_size, np.float32)
    zs = np.empty((batch_size, max(n_act, 1)), np.float32)
    d_log_std = np.empty(n_act, np.float32)
    clip, clip_vf = hyper[H_CLIP], hyper[H_CLIP_VF]
    vf_coef, ent_coef = np.float32(hyper[H_VF_COEF]), np.float32(hyper[H_ENT_COEF])
    kl_coef = np.float32(hyper[H_KL_COEF])
    n_done = 0
    for start in range(0, n_samples, batch_size):
        n = min(batch_size, n_samples - start)
        x_pi, x_vf = _view(h_pi, 0, n, n_obs), _view(h_vf, 0, n, n_obs)
        for b in range(n):
            x_pi[b] = obs[perm[start + b]]
            x_vf[b] = x_pi[b]
        forward(arch_pi, act, params, n, h_pi, off_pi)
        forward(arch_vf, act, params, n, h_vf, off_vf)
        out_pi, d_pi = _view(h_pi, off_pi[n_pi], n, n_act), _view(d_pi_buf, off_pi[n_pi], n, n_act)
        out_vf, d_vf = _view(h_vf, off_vf[n_vf], n, 1), _view(d_vf_buf, off_vf[n_vf], n, 1)
        # advantages, normalized over the minibatch (torch's std: n - 1 in the denominator)
        mean = 0.0
        for b in range(n):
            adv[b] = advantages[perm[start + b]]
            mean += adv[b]
        mean /= n
        if hyper[H_NORM_ADV] != 0.0:
            var = 0.0
            for b in range(n):
                var += (adv[b] - mean) ** 2
            if n > 1:
                std = math.sqrt(var / (n - 1))
                for b in range(n):
                    adv[b] = (adv[b] - mean) / (std + 1e-8)
            else:
                adv[0] = adv[0] - mean
        # log-probs and entropies of the stored actions
        for b in range(n):
            k = perm[start + b]
            if discrete:
                _log_softmax(out_pi[b], masks, k if has_masks else -1, n_act, logp_row)
                ent = 0.0
                for j in range(n_act):
                    p = math.exp(logp_row[j])
                    ent -= p * logp_row[j]
                    zs[b, j] = logp_row[j]
                entropies[b] = ent
                log_probs[b] = logp_row[actions_i[k]]
            else:
                lp = 0.0
                ent = 0.0
                for j in range(n_act):
                    ls = params[log_std_off + j]
                    z = (actions_f[k, j] - out_pi[b, j]) * math.exp(-ls)
                    zs[b, j] = z
                    lp += -0.5 * z * z - ls - _HALF_LOG_2PI
                    ent += ls + 0.5 + _HALF_LOG_2PI
                log_probs[b] = lp
                entropies[b] = ent
        # the loss terms and the gradients of the loss with respect to log-probs and values
        pg_sum, vf_sum, ent_sum, kl_sum, clipped = 0.0, 0.0, 0.0, 0.0, 0.0
        d_log_std[:] = 0.0
        inv_n = 1.0 / n
        for b in range(n):
            k = perm[start + b]
            log_ratio = log_probs[b] - old_log_probs[k]
            ratio = math.exp(log_ratio)
            unclipped = ratio * adv[b]
            r_clip = min(max(ratio, 1.0 - clip), 1.0 + clip)
            clipped_obj = r_clip * adv[b]
            pg_sum += min(unclipped, clipped_obj)
            kl_sum += (ratio - 1.0) - log_ratio
            ent_sum += entropies[b]
            if abs(ratio - 1.0) > clip:
                clipped += 1.0
            g_u = 1.0 if unclipped < clipped_obj else (0.5 if unclipped == clipped_obj else 0.0)
            g_c = 1.0 - g_u if unclipped != clipped_obj else 0.5
            in_range = 1.0 if (1.0 - clip) <= ratio <= (1.0 + clip) else 0.0
            d_logp = (-adv[b] * (g_u + g_c * in_range) * ratio + kl_coef * (ratio - 1.0)) * inv_n
            d_ent = -ent_coef * inv_n
            # value
            v = out_vf[b, 0]
            err = returns[k] - v
            if clip_vf < 0.0:
                vf_sum += err * err
                d_v = -2.0 * err
            else:
                delta = v - old_values[k]
                v_clip = old_values[k] + min(max(delta, -clip_vf), clip_vf)
                err_c = returns[k] - v_clip
                a, c = err * err, err_c * err_c
                vf_sum += max(a, c)
                g_a = 1.0 if a > c else (0.5 if a == c else 0.0)
                g_c2 = 1.0 - g_a if a != c else 0.5
                inside = 1.0 if -clip_vf <= delta <= clip_vf else 0.0
                d_v = g_a * (-2.0 * err) + g_c2 * inside * (-2.0 * err_c)
            d_vf[b, 0] = vf_coef * d_v * inv_n
            # into the actor's outputs
            if discrete:
                a_k = actions_i[k]
                ent_b = entropies[b]
                for j in range(n_act):
                    if has_masks and not masks[k, j]:
                        d_pi[b, j] = 0.0
                        continue
                    p = math.exp(zs[b, j])
                    g = d_logp * ((1.0 if j == a_k else 0.0) - p) + d_ent * (-p * (zs[b, j] + ent_b))
                    d_pi[b, j] = g
            else:
                for j in range(n_act):
                    z = zs[b, j]
                    inv_std = math.exp(-params[log_std_off + j])
                    d_pi[b, j] = d_logp * z * inv_std
                    d_log_std[j] += d_logp * (z * z - 1.0) + d_ent
        pg_loss = -pg_sum * inv_n
        kl = kl_sum * inv_n
        if hyper[H_TARGET_KL] > 0.0 and kl > 1.5 * hyper[H_TARGET_KL]:
            return n_done, True
        if not discrete:
            grads[log_std_off : log_std_off + n_act] = d_log_std
        backward(arch_pi, act, params, grads, n, h_pi, d_pi_buf, off_pi)  # every other entry of grads
        backward(arch_vf, act, params, grads, n, h_vf, d_vf_buf, off_vf)
        clip_and_adam(params, grads, exp_avg, exp_avg_sq, step + n_done + 1, hyper)
        n_done += 1
        stats[S_POLICY] += pg_loss
        stats[S_VALUE] += vf_sum * inv_n
        stats[S_ENTROPY] += -ent_sum * inv_n
        stats[S_KL] += kl
        stats[S_CLIP_FRAC] += clipped * inv_n
    return n_done, False


# -- rollouts on the native CartPole -------------------------------------------------------------

# consts: CartPole's physics as pgrl.envs.native.cartpole.CartPole defines it
C_GRAVITY, C_MASSPOLE, C_TOTAL_MASS, C_LENGTH, C_POLEMASS_LENGTH, C_FORCE_MAG, C_TAU, C_THETA_MAX, C_X_MAX = range(9)
N_CONSTS = 9


@njit(**_JIT)
def cartpole_step(consts, state, action, out):
    """One CartPole-v1 step of one copy (the native env's expressions, in float64); returns terminated."""
    x, x_dot, theta, theta_dot = float(state[0]), float(state[1]), float(state[2]), float(state[3])
    force = consts[C_FORCE_MAG] if action == 1 else -consts[C_FORCE_MAG]
    costheta, sintheta = math.cos(theta), math.sin(theta)
    temp = (force + consts[C_POLEMASS_LENGTH] * theta_dot * theta_dot * sintheta) / consts[C_TOTAL_MASS]
    thetaacc = (consts[C_GRAVITY] * sintheta - costheta * temp) / (
        consts[C_LENGTH] * (4.0 / 3.0 - consts[C_MASSPOLE] * costheta * costheta / consts[C_TOTAL_MASS]))
    xacc = temp - consts[C_POLEMASS_LENGTH] * thetaacc * costheta / consts[C_TOTAL_MASS]
    tau = consts[C_TAU]
    out[0] = x + tau * x_dot
    out[1] = x_dot + tau * xacc
    out[2] = theta + tau * theta_dot
    out[3] = theta_dot + tau * thetaacc
    return abs(out[0]) > consts[C_X_MAX] or abs(out[2]) > consts[C_THETA_MAX]


@njit(**_JIT)
def sample_categorical(logits, mask, row, uniform, log_probs_row):
    """Gumbel-max as pgrl.policies.distributions.Categorical.sample: argmax(log_softmax(logits) -
    log(-log u)) with u the given uniforms (first maximum on ties, as torch.argmax); the
    log-softmax row lands in log_probs_row.  Returns the action."""
    n = logits.shape[0]
    _log_softmax(logits, mask, row, n, log_probs_row)
    best, best_score = 0, -np.inf
    for j in range(n):
        u = max(uniform[j], np.float32(1e-20))
        score = log_probs_row[j] - math.log(-math.log(u))
        if score > best_score:
            best, best_score = j, score
    return best


@njit(**_JIT)
def cartpole_rollout(params, arch_pi, act, consts, state, elapsed, max_steps, resets, noise, clip_reward,
                     obs_out, actions_out, log_probs_out, rewards_out, terminated_out, truncated_out,
                     final_obs_out, episode_return, episode_length, finished_returns, finished_lengths):
    """T steps of N native CartPoles driven by a Categorical MLP policy: what pgrl.rollout.Collector
    does step by step (act, env step, automatic reset, episode sums, storage), in one call.

    state [N, 4] float32 and elapsed [N] int64 are updated in place; resets [T, N, 4] are the
    initial states the env draws on every step (kept where an episode ended); noise [T, N, A]
    the uniforms of Categorical.sample.  clip_reward < 0: off.  Outputs are [T, N(, ...)]
    as in pgrl.rollout.storage.Rollout; finished_returns is nan where no episode ended.
    """
    n_steps, n_envs, n_act = noise.shape[0], noise.shape[1], noise.shape[2]
    n_layers = arch_pi.shape[0]
    offsets = layer_offsets(arch_pi, n_envs)
    h = np.empty(offsets[-1], np.float32)
    log_probs_row = np.empty(n_act, np.float32)
    no_mask = np.ones((1, 1), np.bool_)
    nxt = np.empty(4, np.float32)
    for t in range(n_steps):
        x = _view(h, 0, n_envs, 4)
        x[:, :] = state
        obs_out[t] = state
        forward(arch_pi, act, params, n_envs, h, offsets)
        logits = _view(h, offsets[n_layers], n_envs, n_act)
        for i in range(n_envs):
            a = sample_categorical(logits[i], no_mask, -1, noise[t, i], log_probs_row)
            actions_out[t, i] = a
            log_probs_out[t, i] = log_probs_row[a]
            terminated = cartpole_step(consts, state[i], a, nxt)
            elapsed[i] += 1
            truncated = elapsed[i] >= max_steps
            final_obs_out[t, i] = nxt
            reward = np.float32(1.0)
            rewards_out[t, i] = min(max(reward, -clip_reward), clip_reward) if clip_reward >= 0 else reward
            terminated_out[t, i], truncated_out[t, i] = terminated, truncated
            episode_return[i] += reward
            episode_length[i] += 1
            if terminated or truncated:
                finished_returns[t, i], finished_lengths[t, i] = episode_return[i], episode_length[i]
                episode_return[i], episode_length[i] = 0.0, 0
                state[i] = resets[t, i]
                elapsed[i] = 0
            else:
                finished_returns[t, i], finished_lengths[t, i] = np.nan, 0
                state[i] = nxt
