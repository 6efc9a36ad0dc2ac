"""The fast path: PPO's update for small MLP policies on a CPU as compiled kernels (pgrl.fast.kernels).

``fast_path`` (every algorithm's config; CLI ``--fast-path``): ``"auto"`` (default) uses it where
it applies and measures faster, ``"on"`` insists (a ConfigError says why it cannot apply),
``"off"`` keeps the torch path.  Two parts:

- PPO's update (all epochs and minibatches of a rollout, with GAE's values) for an MlpPolicy on
  flat Box or Discrete observations: separate actor and critic MLPs (tanh or ReLU), Discrete
  actions (with or without masks) or Gaussian Box actions without gSDE, torch's Adam, float32,
  no module hooks.
- Rollouts on pgrl's native CartPole-v1 (float32, CPU, no observation normalizer or reward
  scaler) for every algorithm that collects n_steps rollouts (PPO, A2C, TRPO, ActorCritic):
  policy, env step, resets and storage in one call.  Acting also takes a shared trunk.

``auto`` takes them there when numba is installed and the largest layer is at most
``AUTO_MAX_WIDTH`` wide; with more than one torch thread, also only for batches (minibatches,
envs) of at most ``AUTO_MAX_BATCH`` rows, since the kernels run on one core and torch's matmuls
on all (docs/speed.md, "Fast path").

The first run compiles the kernels (30-60 s) into numba's on-disk cache; later processes load
them in about a second (the Makefile's install runs ``python -m pgrl.fast`` to compile ahead).
Results equal the torch path's to float32 rounding (tests/unit/test_fast_path.py): the same
random numbers drawn the same way (minibatch orders, sampling noise, the env's resets), the same
losses, clipping and Adam, the parameters and optimizer state kept in torch's own tensors (so
checkpoints, resume and switching the path off behave as before).
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from pgrl.errors import ConfigError
from pgrl.policies import features
from pgrl.policies.networks import _global_hooks, _hooked

AUTO_MAX_WIDTH = 256
AUTO_MAX_BATCH = 1024


def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


_SCIPY_BLAS: list | None = None


@contextlib.contextmanager
def one_blas_thread():
    """scipy's OpenBLAS (what numba's np.dot calls) at one thread inside the block.  Its default,
    one thread per core, splits even a [128, 64] matmul and then waits on the other core; the
    kernels' matmuls are too small to gain from threads (measured: a 128-sample PPO minibatch
    step took about 400 µs with the default and 250 µs with one thread)."""
    global _SCIPY_BLAS
    if _SCIPY_BLAS is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library, which numba loads only on first use)
        from threadpoolctl import ThreadpoolController

        _SCIPY_BLAS = [lib for lib in ThreadpoolController().lib_controllers
                       if lib.user_api == "blas" and "scipy" in os.path.basename(os.path.dirname(lib.filepath))]
    before = [lib.get_num_threads() for lib in _SCIPY_BLAS]
    for lib in _SCIPY_BLAS:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(_SCIPY_BLAS, before, strict=True):
            lib.set_num_threads(n)


_READY = False


def _kernels():
    """pgrl.fast.kernels (imported when first needed: it imports numba)."""
    from pgrl.fast import kernels

    return kernels


def ensure_compiled() -> None:
    """Compile the kernels, or load them from numba's on-disk cache, before their first use in this
    process; say so on stderr when they have to be compiled (once per install, about 30-60 s)."""
    global _READY
    if _READY:
        return
    try:  # numba's cache index for this source; internal API, so any surprise just skips the note
        cached = bool(_kernels().ppo_epoch._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001
        cached = True
    if not cached:
        print("pgrl: compiling the fast path's kernels into numba's cache (once per install, under a minute; "
              "`python -m pgrl.fast` does it ahead, fast_path=off skips them)", file=sys.stderr, flush=True)
    warm()
    _READY = True


def warm() -> None:
    """Run every kernel once on tiny inputs of the types the fast path passes (compiling or loading them)."""
    k = _kernels()

    f32 = np.float32
    arch_pi = np.array([[2, 3, 0, 6], [3, 2, 9, 15]], np.int64)
    arch_vf = np.array([[2, 3, 17, 23], [3, 1, 26, 29]], np.int64)
    params = np.zeros(30, f32)
    obs, ints = np.zeros((4, 2), f32), np.zeros(4, np.int64)
    rows = np.zeros(4, f32)
    with one_blas_thread():
        k.ppo_epoch(params, params.copy(), params.copy(), params.copy(), 0.0, arch_pi, arch_vf, k.ACT_TANH, -1, True,
                    obs, ints, np.zeros((1, 1), f32), np.ones((1, 1), np.bool_), False, rows, rows, rows, rows,
                    np.arange(4), 2, np.zeros(k.N_HYPER), np.zeros(k.N_STATS))
        k.mlp_values(params, arch_vf, k.ACT_TANH, obs, rows.copy())
        T, N = 2, 2
        pole = np.zeros(30, f32)
        k.cartpole_rollout(pole, np.array([[4, 3, 0, 12], [3, 2, 15, 21]], np.int64), k.ACT_TANH, np.ones(k.N_CONSTS),
                           np.zeros((N, 4), f32), np.zeros(N, np.int64), 500, np.zeros((T, N, 4), f32),
                           np.full((T, N, 2), 0.5, f32), -1.0, np.zeros((T, N, 4), f32), np.zeros((T, N), np.int64),
                           np.zeros((T, N), f32), np.zeros((T, N), f32), np.zeros((T, N), np.bool_),
                           np.zeros((T, N), np.bool_), np.zeros((T, N, 4), f32), np.zeros(N, f32),
                           np.zeros(N, np.int64), np.zeros((T, N), f32), np.zeros((T, N), np.int64))
        k.backward_scan(np.zeros((T, N), f32), np.zeros((T, N), f32), np.zeros((T, N), f32))


def _layers(net: nn.Module) -> tuple[list[nn.Linear], set[type]] | None:
    """The Linear layers of an ``mlp`` Sequential and its activation types; None for anything else."""
    if not isinstance(net, nn.Sequential) or type(net) is not nn.Sequential:
        return None
    linears, acts = [], set()
    for layer in net:
        if type(layer) is nn.Linear:
            linears.append(layer)
        elif type(layer) in (nn.Tanh, nn.ReLU):
            acts.add(type(layer))
        else:
            return None
    return linears, acts


def policy_why_not(policy, update: bool = True) -> str | None:
    """None when the kernels can run ``policy`` on the CPU (``update``: train it too; acting and
    values also take one trunk shared by actor and critic); else the reason."""
    if policy.recurrent or policy.n_stacked is not None:
        return "it takes feed-forward policies (not LSTM policies or stacked seeds)"
    box = isinstance(policy.observation_space, gym.spaces.Box)
    if policy.features_extractor is not None or not (box or policy.discrete_obs):
        return "it takes MlpPolicy on flat Box or Discrete observations (no features extractor)"
    if policy.shared and update:
        return "it takes separate actor and critic networks (policy_kwargs.shared=false)"
    if not (isinstance(policy.action_space, gym.spaces.Discrete) or (policy.continuous and not policy.use_sde)):
        return "it takes Discrete actions, or Box actions without gSDE"
    nets = [_layers(policy.trunk if policy.shared else policy.pi_body),
            _layers(policy.trunk if policy.shared else policy.vf_body), _layers(policy.pi_head),
            _layers(policy.vf_head)]
    if any(n is None for n in nets) or len(nets[2][0]) != 1 or len(nets[3][0]) != 1:
        return "it takes the MLPs pgrl builds (Linear layers with tanh or ReLU)"
    if len(set().union(*(n[1] for n in nets))) > 1:
        return "actor and critic use one activation"
    if any(_hooked(m) for m in policy.modules()) or _global_hooks():
        return "a module has hooks, which only the torch path calls"
    if any(p.dtype != torch.float32 or not p.requires_grad or p.device.type != "cpu" for p in policy.parameters()):
        return "it takes float32 parameters on the CPU that all train"
    return None


def _too_big(policy, rows: int) -> str | None:
    """``auto``'s size rule (None: small enough that the kernels are faster than torch)."""
    widths = [max(m.in_features, m.out_features) for m in policy.modules() if type(m) is nn.Linear]
    if max(widths) > AUTO_MAX_WIDTH:
        return f"auto takes it for layers up to {AUTO_MAX_WIDTH} wide, where it is faster than torch"
    if rows > AUTO_MAX_BATCH and torch.get_num_threads() > 1:
        return (f"auto takes batches over {AUTO_MAX_BATCH} rows only with one torch thread: the kernels run on "
                "one core, torch's matmuls on all of them")
    return None


def why_not(algo, batch_size: int) -> str | None:
    """None when PPO's fast update applies to ``algo`` and pays off; else the reason, as a sentence's end."""
    policy, optimizer = algo.policy, getattr(algo, "optimizer", None)
    if not numba_available():
        return "numba is not installed (pip install numba scipy)"
    if algo.device.type != "cpu":
        return f"it runs on the CPU and this run is on {algo.device}"
    reason = policy_why_not(policy)
    if reason is not None:
        return reason
    if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
        return "it steps torch's Adam (optimizer=adam)"
    group = optimizer.param_groups[0]
    if group["amsgrad"] or group["maximize"] or group.get("capturable") or group.get("differentiable") \
            or group.get("decoupled_weight_decay") or isinstance(group["lr"], torch.Tensor):
        return "it takes Adam without amsgrad, maximize, capturable or a tensor learning rate"
    if {id(p) for p in group["params"]} != {id(p) for p in policy.parameters()}:
        return "the optimizer steps exactly the policy's parameters"
    return _too_big(policy, batch_size) if algo.config.fast_path == "auto" else None


def check_setting(algo) -> None:
    """ConfigError for fast_path="on" on an algorithm whose update has no fast path."""
    if algo.config.fast_path == "on" and not algo.capabilities.fast_update:
        takers = ", ".join(name for name, cls in type(algo).registry.items() if cls.capabilities.fast_update)
        raise ConfigError(f"fast_path=on: {algo.name} has no fast update ({takers} do); its rollouts on the native "
                          "CartPole take the fast path under fast_path=auto")


def ppo_fast_path(algo, batch_size: int) -> PPOKernel | None:
    """The PPOKernel for ``algo`` when its fast_path setting and policy allow, else None
    (ConfigError for ``fast_path="on"`` when it cannot apply)."""
    if algo.config.fast_path == "off":
        return None
    reason = why_not(algo, batch_size)
    if reason is not None and algo.config.fast_path == "on":
        raise ConfigError(f"fast_path=on cannot apply to this {algo.name} run's update: {reason}; "
                          "use fast_path=auto or off")
    return PPOKernel(algo.policy, algo.optimizer) if reason is None else None


def rollout_why_not(algo, collector) -> str | None:
    """None when the fused native-env rollout applies to ``algo``'s collector; else the reason."""
    from pgrl.envs.native.cartpole import CartPole

    env = collector.env
    if not numba_available():
        return "numba is not installed (pip install numba scipy)"
    if type(env) is not CartPole or env.device.type != "cpu" or env.dtype != torch.float32 \
            or env.group_generators is not None:
        return "its rollouts run on pgrl's native CartPole-v1 (env_backend=native, float32, CPU)"
    if collector.obs_normalizer is not None or collector.reward_scaler is not None or collector.stack:
        return "its rollouts take no observation normalizer or reward scaler (normalize=false, normalize_reward=false)"
    reason = policy_why_not(collector.policy, update=False)
    if reason is None and collector.policy.continuous:
        reason = "its rollouts take Discrete actions"
    if reason is None and algo.config.fast_path == "auto":
        reason = _too_big(collector.policy, env.num_envs)
    return reason


def rollout_fast_path(algo, collector) -> CartPoleRollout | None:
    """The fused rollout for ``algo``'s collector when its fast_path setting allows and it applies,
    else None (never an error: rollouts elsewhere take the step-by-step collector)."""
    if algo.config.fast_path == "off" or rollout_why_not(algo, collector) is not None:
        return None
    return CartPoleRollout(collector)


class PolicyKernel:
    """A policy's parameters as one flat float32 buffer the kernels read and update in place.

    The torch parameters become views of it, so every other reader (predict, checkpoints, the
    torch path) sees the kernels' updates.  Anything that replaces a parameter's tensor
    (``.data`` assignment, a load that swaps storage) is noticed on the next call and the
    buffer is rebuilt from the new tensors.
    """

    def __init__(self, policy):
        kernels = _kernels()
        ensure_compiled()
        self.policy = policy
        self.params = list(policy.parameters())
        offsets, total = {}, 0
        for p in self.params:
            offsets[id(p)] = total
            total += p.numel()
        self.total = total
        self.offsets = [offsets[id(p)] for p in self.params]  # by position: a deep copy's parameters have new ids
        self._byte_offsets = [4 * off for off in self.offsets]
        act = {nn.Tanh: kernels.ACT_TANH, nn.ReLU: kernels.ACT_RELU}
        pi_body, vf_body = (policy.trunk, policy.trunk) if policy.shared else (policy.pi_body, policy.vf_body)
        types = {type(m) for m in (*pi_body, *vf_body) if type(m) is not nn.Linear}
        self.act = act[types.pop()] if types else kernels.ACT_TANH
        self.arch_pi = self._arch([*_layers(pi_body)[0], *_layers(policy.pi_head)[0]], offsets)
        self.arch_vf = self._arch([*_layers(vf_body)[0], *_layers(policy.vf_head)[0]], offsets)
        self.n_inputs = int(policy.observation_space.n) if policy.discrete_obs else None
        self.discrete = not policy.continuous
        self.log_std_off = -1 if self.discrete else offsets[id(policy.log_std)]
        self._flat: torch.Tensor | None = None

    @staticmethod
    def _arch(linears: list[nn.Linear], offsets: dict[int, int]) -> np.ndarray:
        return np.array([[layer.in_features, layer.out_features, offsets[id(layer.weight)], offsets[id(layer.bias)]]
                         for layer in linears], dtype=np.int64)

    def viewing(self, buffer: torch.Tensor | None, tensors: list[torch.Tensor]) -> bool:
        """Whether every tensor is still the view of ``buffer`` at its parameter's offset."""
        if buffer is None:
            return False
        base = buffer.data_ptr()
        return [t.data_ptr() - base for t in tensors] == self._byte_offsets

    def regroup(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """A flat copy of ``tensors`` (laid out as the parameters) and views of it shaped as they are."""
        flat = torch.empty(self.total, dtype=torch.float32)
        views = []
        with torch.no_grad():
            for p, t, off in zip(self.params, tensors, self.offsets, strict=True):
                n = p.numel()
                flat[off : off + n].copy_(t.reshape(-1))
                views.append(flat[off : off + n].view_as(p))
        return flat, views

    def inputs(self, obs: torch.Tensor) -> np.ndarray:
        """The networks' float32 inputs [M, in] of a batch of observations (Discrete: one-hot)."""
        if self.n_inputs is not None:
            return features.one_hot(obs.reshape(-1), self.n_inputs).float().numpy()
        return obs.reshape(obs.shape[0], -1).float().contiguous().numpy()

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """policy.value(obs) [M] of a batch of observations, by the kernels."""
        x = self.inputs(obs)
        out = np.empty(x.shape[0], dtype=np.float32)
        with one_blas_thread():
            _kernels().mlp_values(self.flat_params(), self.arch_vf, self.act, x, out)
        return torch.from_numpy(out)

    def flat_params(self) -> np.ndarray:
        """The parameters as one flat array, the torch parameters re-pointed at it if needed."""
        if not self.viewing(self._flat, self.params):
            self._flat, views = self.regroup(self.params)
            for p, view in zip(self.params, views, strict=True):
                p.data = view
        return self._flat.numpy()


_KERNELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def policy_kernel(policy) -> PolicyKernel:
    """The one PolicyKernel of ``policy`` (the update and the rollouts share its flat buffer)."""
    kernel = _KERNELS.get(policy)
    if kernel is None:
        kernel = _KERNELS[policy] = PolicyKernel(policy)
    return kernel


class PPOKernel:
    """PPO's update on a policy's PolicyKernel plus Adam's state: exp_avg and exp_avg_sq become
    views of flat buffers of the parameters' layout, kept in the optimizer's own state (so
    checkpoints, resume and switching the path off behave as before); a load_state_dict that
    replaces them is noticed likewise."""

    def __init__(self, policy, optimizer: torch.optim.Optimizer):
        self.layout = layout = policy_kernel(policy)
        self.params, self.optimizer = layout.params, optimizer
        self._moments: tuple[torch.Tensor, torch.Tensor] | None = None
        self.grads = np.zeros(layout.total, dtype=np.float32)

    def _state(self, p: nn.Parameter) -> dict:
        state = self.optimizer.state[p]
        if not state:  # what torch's Adam creates at its first step
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def flat_moments(self) -> tuple[np.ndarray, np.ndarray]:
        states = [self._state(p) for p in self.params]
        out = []
        for i, key in enumerate(("exp_avg", "exp_avg_sq")):
            buffer = self._moments[i] if self._moments is not None else None
            tensors = [s[key] for s in states]
            if not self.layout.viewing(buffer, tensors):
                buffer, views = self.layout.regroup(tensors)
                for s, view in zip(states, views, strict=True):
                    s[key] = view
            out.append(buffer)
        self._moments = (out[0], out[1])
        return out[0].numpy(), out[1].numpy()

    def hyper(self, c, clip: float, clip_vf: float | None, kl_coef: float | None) -> np.ndarray:
        k = _kernels()
        group = self.optimizer.param_groups[0]
        h = np.zeros(k.N_HYPER, dtype=np.float64)
        h[k.H_CLIP], h[k.H_CLIP_VF] = clip, -1.0 if clip_vf is None else clip_vf
        h[k.H_VF_COEF], h[k.H_ENT_COEF], h[k.H_KL_COEF] = c.vf_coef, c.ent_coef, kl_coef or 0.0
        h[k.H_TARGET_KL] = -1.0 if c.target_kl is None else c.target_kl
        h[k.H_MAX_NORM] = -1.0 if c.max_grad_norm is None else c.max_grad_norm
        h[k.H_LR], (h[k.H_BETA1], h[k.H_BETA2]) = group["lr"], group["betas"]
        h[k.H_EPS], h[k.H_WD], h[k.H_NORM_ADV] = group["eps"], group["weight_decay"], float(c.normalize_advantage)
        return h

    def update(self, c, obs, actions, masks, old_log_probs, values, advantages, returns, clip, clip_vf,
               kl_coef) -> tuple[dict[str, torch.Tensor], int, bool]:
        """PPO's epochs over one rollout's flat [M, ...] tensors: (the losses summed over the minibatches
        stepped, as the torch path's metrics sums, how many were stepped, whether target_kl stopped them)."""
        k, layout = _kernels(), self.layout
        flat = layout.flat_params()
        m, v = self.flat_moments()
        n = obs.shape[0]
        obs_np = layout.inputs(obs)
        if layout.discrete:
            acts_i, acts_f = actions.reshape(n).to(torch.int64).contiguous().numpy(), np.zeros((1, 1), np.float32)
        else:
            acts_i, acts_f = np.zeros(1, np.int64), actions.reshape(n, -1).float().contiguous().numpy()
        masks_np = masks.reshape(n, -1).contiguous().numpy() if masks is not None else np.ones((1, 1), bool)
        arrays = [t.contiguous().numpy() for t in (old_log_probs, values, advantages, returns)]
        hyper = self.hyper(c, clip, clip_vf, kl_coef)
        stats = np.zeros(k.N_STATS, dtype=np.float64)
        step_tensors = [self.optimizer.state[p]["step"] for p in self.params]
        step = float(step_tensors[0])
        n_updates, stopped = 0, False
        with one_blas_thread():
            for _ in range(c.n_epochs):
                perm = torch.randperm(n).numpy()  # the draw pgrl.algos.common.minibatches makes per epoch
                done, stopped = k.ppo_epoch(flat, self.grads, m, v, step + n_updates, layout.arch_pi,
                                            layout.arch_vf, layout.act, layout.log_std_off, layout.discrete,
                                            obs_np, acts_i, acts_f, masks_np, masks is not None, *arrays, perm,
                                            c.batch_size, hyper, stats)
                n_updates += done
                if stopped:
                    break
        for s in step_tensors:
            s += n_updates
        sums = {"loss/policy": stats[k.S_POLICY], "loss/value": stats[k.S_VALUE], "loss/entropy": stats[k.S_ENTROPY],
                "stats/approx_kl": stats[k.S_KL], "stats/clip_frac": stats[k.S_CLIP_FRAC]}
        if not n_updates:  # as the torch path: no minibatch stepped, no losses to report
            return {}, 0, stopped
        return {key: torch.tensor(float(value)) for key, value in sums.items()}, n_updates, stopped


class CartPoleRollout:
    """A Collector's rollouts on the native CartPole in one kernel call (kernels.cartpole_rollout).

    The random numbers are torch's, drawn as the step-by-step path draws them: the env's initial
    states for every row and step from its generator (one [T*N, 4] draw equals T draws of
    [N, 4]), the sampling uniforms from the global stream (one [T, N, A] draw).
    """

    def __init__(self, collector):
        self.collector = collector
        self.layout = policy_kernel(collector.policy)
        self.consts = self.physics()

    @staticmethod
    def physics() -> np.ndarray:
        """CartPole's constants, read from the native env's class (kernels.C_* order)."""
        from pgrl.envs.native.cartpole import CartPole

        k = _kernels()
        consts = np.zeros(k.N_CONSTS)
        consts[k.C_GRAVITY], consts[k.C_MASSPOLE], consts[k.C_TOTAL_MASS] = (
            CartPole.gravity, CartPole.masspole, CartPole.total_mass)
        consts[k.C_LENGTH], consts[k.C_POLEMASS_LENGTH], consts[k.C_FORCE_MAG] = (
            CartPole.length, CartPole.polemass_length, CartPole.force_mag)
        consts[k.C_TAU], consts[k.C_THETA_MAX], consts[k.C_X_MAX] = (
            CartPole.tau, CartPole.theta_threshold_radians, CartPole.x_threshold)
        return consts

    def collect(self, rollout, finished_returns: torch.Tensor, finished_lengths: torch.Tensor) -> None:
        """Fill ``rollout`` (the collector's storage) for its n_steps; the env, the collector's obs,
        episode sums and last_step end as the step-by-step path leaves them."""
        from pgrl.envs.base import Step

        c, k = self.collector, _kernels()
        env = c.env
        T, N = rollout.n_steps, env.num_envs
        resets = env._sample_initial_state(T * N).reshape(T, N, 4)
        noise = torch.rand((T, N, int(env.single_action_space.n)))
        state, elapsed = env.state.clone(), env.elapsed_steps.clone()
        clip = -1.0 if c.clip_reward is None else float(c.clip_reward)
        with one_blas_thread():
            k.cartpole_rollout(self.layout.flat_params(), self.layout.arch_pi, self.layout.act, self.consts,
                               state.numpy(), elapsed.numpy(), env.max_episode_steps, resets.numpy(), noise.numpy(),
                               clip, rollout.obs.numpy(), rollout.actions.numpy(), rollout.log_probs.numpy(),
                               rollout.rewards.numpy(), rollout.terminated.numpy(), rollout.truncated.numpy(),
                               rollout.next_obs.numpy(), c.episode_return.numpy(), c.episode_length.numpy(),
                               finished_returns.numpy(), finished_lengths.numpy())
        env.state, env.elapsed_steps = state, elapsed
        c.obs = state.clone()
        last = T - 1
        rewards = torch.ones(N)  # what the env returned on the last step, before clip_reward
        c.last_step = Step(obs=c.obs, rewards=rewards, terminated=rollout.terminated[last].clone(),
                           truncated=rollout.truncated[last].clone(), final_obs=rollout.next_obs[last].clone())
