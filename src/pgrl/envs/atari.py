"""Atari 2600 games (the ALE, ``pip install 'pgrl[atari]'``), preprocessed as rl-zoo / SB3 train them.

``AtariFactory(env_id)()`` is one game, built from Gymnasium's own wrappers where it has them:

  gym.make(env_id, frameskip=1)       sticky actions as the id registers them: 0.25 for ALE/...-v5
                                      (and -v0), none for ...NoFrameskip-v4 / -v4
  AtariPreprocessing                  up to 30 no-ops on reset, repeat each action 4 frames and max-pool
                                      the last two (Atari sprites flicker), 84x84 grayscale uint8
  EpisodicLife (here, by hand)        a lost life ends the learner's episode, not the game
  FireReset (here, by hand)           press FIRE after each reset, for games that wait for it
  FrameStackObservation(4)            the last 4 frames: obs uint8 (4, 84, 84)

so one env step is 4 emulator frames (rl-zoo's n_timesteps: 1e7 steps = 4e7 frames).

Every step's info carries ``game_over``: True only when the real game ended (its last life
lost, or the ALE's own termination / truncation at 108,000 frames), never on a lost life.
pgrl's vector-env adapter ends reported episodes there, so episode returns are whole games.
(In Gymnasium's SAME_STEP autoreset the ending step's info is ``info["final_info"]``; the reset
that follows reports ``game_over`` False.)

Rewards are not clipped here: ``clip_reward: 1.0`` in the presets clamps what the learner sees
to [-1, 1], which for the ALE's integer rewards is exactly SB3's sign clipping, while episode
returns stay the raw game score.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from pgrl.errors import EnvError

INSTALL_HINT = "install it with pip install 'pgrl[atari]'"
# The ids ale-py registers: ALE/<Game>-v5, <Game>-v0/-v4, <Game>NoFrameskip-v0/-v4, <Game>Deterministic-v0/-v4.
_OLD_SUFFIXES = ("NoFrameskip-v4", "NoFrameskip-v0", "Deterministic-v4", "Deterministic-v0")


def register_atari_envs() -> bool:
    """Import ale_py (which registers its ids with Gymnasium); False when it is not installed."""
    try:
        import ale_py
    except ImportError:
        return False
    gym.register_envs(ale_py)  # a no-op that names the import's purpose: importing registered the ids
    return True


def looks_like_atari_id(env_id: str) -> bool:
    """Whether an id is spelled as ale-py's ids are, for the install hint when ale-py is missing."""
    return env_id.startswith("ALE/") or env_id.endswith(_OLD_SUFFIXES)


def is_atari_id(env_id: str) -> bool:
    """Whether ``env_id`` is one of ale-py's games (registering them first when ale-py is installed)."""
    spec = gym.registry.get(env_id)
    if spec is None and register_atari_envs():
        spec = gym.registry.get(env_id)
    return spec is not None and str(getattr(spec, "entry_point", "")).startswith("ale_py")


def is_image_atari(env_id: str, env_kwargs: dict | None = None) -> bool:
    """An Atari id whose observations are screens (not obs_type="ram", which stays a plain env)."""
    if not is_atari_id(env_id):
        return False
    obs_type = (env_kwargs or {}).get("obs_type", gym.registry[env_id].kwargs.get("obs_type", "rgb"))
    return obs_type != "ram"


# -- the two wrappers Gymnasium has no equivalent of ---------------------------------------------


class GameOverInfo(gym.Wrapper):
    """Adds ``info["game_over"]`` (the game really ended) when lives do not end episodes (evaluation)."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "game_over": bool(terminated or truncated)}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "game_over": False}


class EpisodicLife(gym.Wrapper):
    """A lost life is the end of an episode for the learner (terminated=True), not of the game.

    Written by hand because Gymnasium has nothing that keeps the game going:
    ``AtariPreprocessing(terminal_on_life_loss=True)`` also terminates on a lost life, but the
    vector env's autoreset then calls ``reset()``, which restarts the whole game, so an agent
    would never see its later lives.  Here ``reset()`` after a lost life only takes one NOOP
    step (the game goes on from where it was); a real reset happens only when the game is over
    or when ``reset`` is given a seed or non-empty options (an explicit new start).  The same semantics as
    SB3's EpisodicLifeEnv.  A life lost down to 0 lives is left to the game's own termination.

    Every step's info gets ``game_over``: True only when the game itself terminated or was
    truncated.  (Should the NOOP step of a reset end the game, which needs the 108,000-frame
    truncation to fall on it, the game is reset without a step to report it, as in SB3.)
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = bool(terminated or truncated)
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, {**info, "game_over": self.game_over}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        # options={} is what a vector env's masked partial reset passes on: not an explicit new start.
        if self.game_over or seed is not None or options:
            obs, info = self.env.reset(seed=seed, options=options)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)  # NOOP, from the state the life was lost in
            if terminated or truncated:
                obs, info = self.env.reset()
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, {**info, "game_over": False}


class FireReset(gym.Wrapper):
    """Press FIRE (then action 2) after every reset, for games that stand still until FIRE (Breakout).

    Outside EpisodicLife, so it also serves the start of each new life.  The two steps'
    rewards are dropped, as in SB3's FireResetEnv (they are 0 in the games that need it).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise EnvError(f"FireReset needs FIRE as action 1 and at least 3 actions, got {meanings}; "
                           "build the AtariFactory with fire_reset=False")

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, {**info, "game_over": False}


# -- the factory ---------------------------------------------------------------------------------


class AtariFactory:
    """Makes one preprocessed Atari game (see the module docstring); picklable, not a closure.

    ``env_kwargs`` go to ``gym.make`` (e.g. ``repeat_action_probability``, ``full_action_space``,
    ``mode``); ``frameskip`` is always 1 there since AtariPreprocessing does the frame skipping.
    ``episodic_life`` and ``fire_reset`` are on for training; evaluation of whole games can turn
    episodic_life off (fire_reset then still starts each game; FIRE only where the game has it).
    """

    def __init__(self, env_id: str, env_kwargs: dict | None = None, *, episodic_life: bool = True,
                 fire_reset: bool = True, noop_max: int = 30, frame_skip: int = 4, screen_size: int = 84,
                 frame_stack: int = 4):
        if not is_atari_id(env_id):
            hint = INSTALL_HINT if looks_like_atari_id(env_id) and not register_atari_envs() else \
                "use an ALE id such as ALE/Breakout-v5 or BreakoutNoFrameskip-v4"
            raise EnvError(f"'{env_id}' is not an Atari game id of ale-py; {hint}")
        env_kwargs = dict(env_kwargs or {})
        if env_kwargs.get("frameskip", 1) != 1:
            raise EnvError(f"env_kwargs frameskip={env_kwargs['frameskip']!r} for {env_id}: pgrl's Atari "
                           "preprocessing skips frames itself (frame_skip=4, max-pooled); drop frameskip")
        if env_kwargs.get("obs_type", "rgb") == "ram":
            raise EnvError(f"AtariFactory preprocesses screens; {env_id} with obs_type='ram' needs no factory")
        for name, value, low in (("noop_max", noop_max, 0), ("frame_skip", frame_skip, 1),
                                 ("screen_size", screen_size, 1), ("frame_stack", frame_stack, 1)):
            if not isinstance(value, int) or value < low:
                raise EnvError(f"AtariFactory {name} must be an integer of at least {low}, got {value!r}")
        self.env_id, self.env_kwargs = env_id, {**env_kwargs, "frameskip": 1}
        self.episodic_life, self.fire_reset = bool(episodic_life), bool(fire_reset)
        self.noop_max, self.frame_skip, self.screen_size, self.frame_stack = noop_max, frame_skip, screen_size, \
            frame_stack

    def __call__(self) -> gym.Env:
        register_atari_envs()  # in a fresh worker process
        env = gym.make(self.env_id, **self.env_kwargs)
        env = gym.wrappers.AtariPreprocessing(
            env, noop_max=self.noop_max, frame_skip=self.frame_skip, screen_size=self.screen_size,
            terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False,
        )
        env = EpisodicLife(env) if self.episodic_life else GameOverInfo(env)
        if self.fire_reset and "FIRE" in env.unwrapped.get_action_meanings():
            env = FireReset(env)
        return gym.wrappers.FrameStackObservation(env, self.frame_stack)

    def options(self) -> dict[str, Any]:
        return {"episodic_life": self.episodic_life, "fire_reset": self.fire_reset, "noop_max": self.noop_max,
                "frame_skip": self.frame_skip, "screen_size": self.screen_size, "frame_stack": self.frame_stack}

    def __getstate__(self) -> dict:
        return {"env_id": self.env_id, "env_kwargs": self.env_kwargs, **self.options()}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        self.__init__(state.pop("env_id"), state.pop("env_kwargs"), **state)

    def __repr__(self) -> str:
        return f"AtariFactory({self.env_id!r}, {self.env_kwargs!r}, {self.options()!r})"
