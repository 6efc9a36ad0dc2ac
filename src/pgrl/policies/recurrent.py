"""LSTM actor-critic policies: MlpLstmPolicy, CnnLstmPolicy, MultiInputLstmPolicy (sb3-contrib's names).

The features (as in ActorCriticPolicy: flatten, Nature CNN, one extractor per Dict key) go
through an LSTM, then through the MLP bodies (``net_arch``) and the heads.  The critic's memory:

| enable_critic_lstm | shared_lstm | the critic reads                                          |
|--------------------|-------------|-----------------------------------------------------------|
| True (default)     | False       | an LSTM of its own                                        |
| False              | True        | the actor's LSTM outputs, detached (its loss does not train that LSTM) |
| False              | False       | a linear layer of the features (no memory)                |

A batch row's recurrent state is one tensor row of width ``state_size`` = R x 2 x n_lstm_layers x
lstm_hidden_size: the (h, c) pairs of the R LSTMs, the actor's first.  States are zeroed where an
episode starts.

| method                                   | for                                              |
|------------------------------------------|--------------------------------------------------|
| step(obs, state, episode_starts)         | acting: one LSTM step of B envs -> actions, log-probs, values, next state |
| state_value(obs, state)                  | V(obs) from a state (a truncated step's bootstrap value)  |
| evaluate(obs, actions, masks, sequences) | the update: B rows that form ``Sequences``        |

In the update the rows of a minibatch are cut into sequences (``Sequences.of``): a new one
wherever the env changes, the step is not the previous one's successor, or an episode starts.
They are scattered into one padded [L, S, features] batch that each LSTM runs in a single call
from the states stored while acting, so gradients flow through time inside each sequence and
the log-probabilities equal those computed while acting (to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pgrl.errors import ConfigError, EnvError
from pgrl.policies.actor_critic import ActorCriticPolicy

#: nn.LSTM arguments that would change the state's or the outputs' shape pgrl keeps
_SHAPE_ARGS = ("batch_first", "bidirectional", "proj_size", "input_size", "hidden_size", "num_layers")


@dataclass(frozen=True)
class Sequences:
    """How B rows of a minibatch form S sequences: row j is step ``pos[j]`` of sequence ``seq_id[j]``."""

    seq_id: torch.Tensor  # [B] int64
    pos: torch.Tensor  # [B] int64
    length: int  # L, the longest sequence
    initial_state: torch.Tensor  # [S, state_size]: each sequence's state before its first row

    @classmethod
    def of(cls, idx: torch.Tensor, num_envs: int, episode_starts: torch.Tensor, states: torch.Tensor) -> Sequences:
        """The sequences that rows ``idx`` (indices into a time-major [T*N] flattening) form, in that order.

        ``episode_starts`` [T*N] bool and ``states`` [T*N, state_size] are the rollout's, flattened
        the same way; a state is stored as the step used it (already zeroed at episode starts).
        """
        t, env = idx // num_envs, idx % num_envs
        new = episode_starts[idx].clone()
        new[0] = True
        new[1:] |= (env[1:] != env[:-1]) | (t[1:] != t[:-1] + 1)
        seq_id = torch.cumsum(new, 0) - 1
        first = new.nonzero().squeeze(1)
        pos = torch.arange(idx.shape[0], device=idx.device) - first[seq_id]
        return cls(seq_id, pos, int(pos.max()) + 1, states[idx[first]])


class RecurrentActorCriticPolicy(ActorCriticPolicy):
    recurrent = True

    def __init__(self, observation_space, action_space, lstm_hidden_size: int = 256, n_lstm_layers: int = 1,
                 shared_lstm: bool = False, enable_critic_lstm: bool = True, lstm_kwargs: dict | None = None,
                 **kwargs: Any):
        if shared_lstm and enable_critic_lstm:
            raise ConfigError("shared_lstm=true and enable_critic_lstm=true both give the critic a memory; "
                              "set enable_critic_lstm=false to share the actor's LSTM")
        if kwargs.get("shared"):
            raise ConfigError("policy_kwargs.shared=true (one MLP trunk) is not for LSTM policies; set "
                              "shared_lstm=true to let the critic read the actor's LSTM")
        lstm_kwargs = dict(lstm_kwargs or {})
        fixed = sorted(set(lstm_kwargs) & set(_SHAPE_ARGS))
        if fixed:
            raise ConfigError(f"lstm_kwargs {', '.join(fixed)} would change the LSTM's shapes pgrl keeps; "
                              "set lstm_hidden_size / n_lstm_layers instead (lstm_kwargs takes dropout and bias)")
        # Read by _memory, which the base constructor calls once the features' width is known.
        self._lstm_args = (int(lstm_hidden_size), int(n_lstm_layers), bool(shared_lstm), bool(enable_critic_lstm),
                           lstm_kwargs)
        super().__init__(observation_space, action_space, **kwargs)

    def _memory(self, features_dim: int) -> int:
        hidden, layers, shared_lstm, critic_lstm, extra = self._lstm_args
        self.lstm_hidden_size, self.n_lstm_layers, self.shared_lstm = hidden, layers, shared_lstm
        try:
            self.lstm_actor = nn.LSTM(features_dim, hidden, layers, **extra)
            self.lstm_critic = nn.LSTM(features_dim, hidden, layers, **extra) if critic_lstm else None
        except TypeError as exc:
            raise ConfigError(f"lstm_kwargs {extra} are not torch.nn.LSTM arguments ({exc})") from None
        self.critic_linear = None if critic_lstm or shared_lstm else nn.Linear(features_dim, hidden)
        self.n_memories = 2 if critic_lstm else 1
        #: width of one row's recurrent state
        self.state_size = self.n_memories * 2 * layers * hidden
        return hidden

    # -- states ---------------------------------------------------------------------------------
    def initial_state(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Zero states for n rows ([n, state_size])."""
        return torch.zeros((n, self.state_size), device=device or self.lstm_actor.weight_ih_l0.device)

    def _split(self, state: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[B, state_size] -> one (h, c) pair per LSTM, each [n_lstm_layers, B, hidden] as nn.LSTM takes them."""
        parts = state.view(state.shape[0], self.n_memories, 2, self.n_lstm_layers, self.lstm_hidden_size)
        parts = parts.permute(1, 2, 3, 0, 4)
        return [(parts[r, 0].contiguous(), parts[r, 1].contiguous()) for r in range(self.n_memories)]

    @staticmethod
    def _join(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        stacked = torch.stack([torch.stack(pair) for pair in pairs])  # [R, 2, layers, B, hidden]
        return stacked.permute(3, 0, 1, 2, 4).reshape(stacked.shape[3], -1)

    def user_state(self, state: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The actor's (h, c), each [n_lstm_layers, B, hidden] numpy: the state ``predict`` returns (sb3-contrib's)."""
        h, c = self._split(state)[0]
        return h.cpu().numpy(), c.cpu().numpy()

    def state_from_user(self, state: Any, n: int) -> torch.Tensor:
        """``predict``'s state argument (None, or the (h, c) it returned) as [n, state_size] rows."""
        if state is None:
            return self.initial_state(n)
        shape = (self.n_lstm_layers, n, self.lstm_hidden_size)
        if not (isinstance(state, tuple | list) and len(state) == 2
                and all(tuple(np.shape(part)) == shape for part in state)):
            got = [tuple(np.shape(part)) for part in state] if isinstance(state, tuple | list) else type(state).__name__
            raise EnvError(f"predict's state must be None or the (h, c) pair the previous predict returned, each of "
                           f"shape {shape} for {n} observation(s); got {got}")
        device = self.lstm_actor.weight_ih_l0.device
        h, c = (torch.as_tensor(np.asarray(part), dtype=torch.float32, device=device) for part in state)
        zeros = torch.zeros_like(h)
        return self._join([(h, c)] + [(zeros, zeros)] * (self.n_memories - 1))

    # -- forward passes -------------------------------------------------------------------------
    def _remember(self, features: tuple[torch.Tensor, torch.Tensor], state: torch.Tensor):
        """(actor, critic) features [L, S, F] from states [S, state_size] -> latents [L, S, hidden] and the
        states after the last step."""
        pi_features, vf_features = features
        pairs = self._split(state)
        pi, pi_state = self.lstm_actor(pi_features, pairs[0])
        after = [pi_state]
        if self.lstm_critic is not None:
            vf, vf_state = self.lstm_critic(vf_features, pairs[1])
            after.append(vf_state)
        elif self.shared_lstm:
            vf = pi.detach()
        else:
            vf = self.critic_linear(vf_features)
        return (pi, vf), self._join(after)

    def _one_step(self, obs, state: torch.Tensor):
        pi, vf = self._features(obs)
        (pi, vf), after = self._remember((pi[None], vf[None]), state)
        return (pi[0], vf[0]), after

    def step(self, obs, state: torch.Tensor, episode_starts: torch.Tensor | None = None,
             deterministic: bool = False, action_masks: torch.Tensor | None = None):
        """One step of B envs: (actions, log_probs, values, next state); ``state`` [B, state_size] is
        zeroed first where ``episode_starts`` [B] is True."""
        if episode_starts is not None:
            state = state.masked_fill(episode_starts.unsqueeze(1), 0.0)
        latents, after = self._one_step(obs, state)
        actions, log_probs = self._sample(latents, deterministic, action_masks)
        return actions, log_probs, self._value(latents), after

    def state_value(self, obs, state: torch.Tensor) -> torch.Tensor:
        """V(obs) [B] for observations seen from ``state`` (no episode start)."""
        latents, _ = self._one_step(obs, state)
        return self._value(latents)

    def evaluate(self, obs, actions: torch.Tensor, action_masks: torch.Tensor | None = None,
                 sequences: Sequences | None = None):
        if sequences is None:
            raise ConfigError("an LSTM policy evaluates whole sequences: pass sequences (pgrl.policies.recurrent."
                              "Sequences.of), as pgrl's PPO and A2C do")
        pi, vf = self._features(obs)
        index = (sequences.pos, sequences.seq_id)
        shape = (sequences.length, sequences.initial_state.shape[0])

        def padded(x: torch.Tensor) -> torch.Tensor:
            return x.new_zeros((*shape, x.shape[-1])).index_put(index, x)

        pi_padded = padded(pi)
        (pi, vf), _ = self._remember((pi_padded, pi_padded if vf is pi else padded(vf)), sequences.initial_state)
        latents = (pi[index], vf[index])
        dist = self._dist(latents, action_masks)
        return dist.log_prob(actions), dist.entropy(), self._value(latents)

    def act(self, obs, deterministic: bool = False, action_masks: torch.Tensor | None = None):
        raise ConfigError("an LSTM policy acts with a recurrent state: use policy.step(obs, state, episode_starts), "
                          "or model.predict(obs, state, episode_start)")

    def value(self, obs) -> torch.Tensor:
        raise ConfigError("an LSTM policy's values depend on its recurrent state: use policy.state_value(obs, state)")
