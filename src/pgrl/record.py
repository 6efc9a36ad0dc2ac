"""`pgrl record RUN_DIR` (and `pgrl eval RUN_DIR --record`): a run's episodes as a GIF or MP4.

The episodes are ``evaluate_policy``'s, played on the run's env (its kwargs and wrappers) made
with ``render_mode="rgb_array"``: each env copy is wrapped in a ``FrameRecorder`` that keeps the
frame after its reset and after every step of its first game.  Copy i plays episode i with seed
``seed + i`` as ``pgrl eval --env-backend gymnasium`` plays it, so the returns are the same
(pgrl's native envs do not render; their episodes differ from Gymnasium's).  A clip has one frame
per step plus one per reset, each with a caption strip below it: episode, step and return so far
(the final return on the episode's last frame).  GIFs are written with Pillow, MP4 with
imageio-ffmpeg (``pip install 'pgrl[record]'``).
"""

from __future__ import annotations

import argparse
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from pgrl.errors import ConfigError, EnvError

FORMATS = ("gif", "mp4")
CAPTION_HEIGHT = 18


@dataclass
class Recording:
    """What ``record_run`` wrote: the file, every evaluated episode's return and length, and the
    number of frames of each recorded episode (its steps plus its resets)."""

    path: Path
    title: str  # "ALGO on ENV_ID"
    returns: list[float]
    lengths: list[int]
    frames: list[int] = field(default_factory=list)


class FrameRecorder(gym.Wrapper):
    """Keeps ``(frame, steps, return so far)`` from the reset before the first step until the first
    game ends (``info["game_over"]`` where an Atari env gives it, else terminated or truncated).

    Frames are downscaled to ``width`` pixels (0: as rendered) when captured, to bound memory."""

    def __init__(self, env: gym.Env, width: int = 320):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            modes = env.unwrapped.metadata.get("render_modes", [])
            raise EnvError(f"{env.spec.id if env.spec else type(env.unwrapped).__name__} has no rgb_array render "
                           f"mode (its modes: {', '.join(modes) or 'none'}), so pgrl record cannot draw its frames")
        self.width = width
        self.clip: list[tuple[np.ndarray, int, float]] = []
        self.steps, self.episode_return, self.capturing = 0, 0.0, True

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        if self.capturing:
            if self.steps == 0:  # resets before the first step: the episode starts at the last one
                self.clip.clear()
            self._capture()
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.capturing:
            self.steps += 1
            self.episode_return += float(np.float32(reward))  # as evaluate_policy sums them
            self._capture()
            if info.get("game_over", terminated or truncated):
                self.capturing = False
        return obs, reward, terminated, truncated, info

    def _capture(self) -> None:
        frame = self.env.render()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            raise EnvError(f"{self.env.spec.id if self.env.spec else 'the env'}'s render() returned "
                           f"{type(frame).__name__}, not an RGB frame; pgrl record needs rgb_array rendering")
        self.clip.append((_downscale(frame, self.width), self.steps, self.episode_return))


def _downscale(frame: np.ndarray, width: int) -> np.ndarray:
    from PIL import Image

    frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    if not width or frame.shape[1] <= width:
        return frame
    height = max(2, round(frame.shape[0] * width / frame.shape[1]))
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))


class RecordingFactory:
    """Makes the run's env with ``render_mode="rgb_array"``; the first ``n_recorded`` copies (in the
    order the vector env makes them) are wrapped in a FrameRecorder, kept in ``recorders``."""

    def __init__(self, env, n_recorded: int, width: int):
        from pgrl.envs.make import EnvFactory

        base = env if isinstance(env, EnvFactory) else EnvFactory(env)
        self.env_id = base.env_id
        probe = base()  # made as it trains, to read its render modes
        try:
            modes = list(probe.unwrapped.metadata.get("render_modes", []))
        finally:
            probe.close()
        if "rgb_array" not in modes:
            raise EnvError(f"{base.env_id} has no rgb_array render mode (its modes: {', '.join(modes) or 'none'}), "
                           "so pgrl record cannot draw its frames")
        self.factory = EnvFactory(base.env_id, {**base.env_kwargs, "render_mode": "rgb_array"}, base.wrappers)
        self.n_recorded, self.width = n_recorded, width
        self.recorders: list[FrameRecorder] = []
        self.__name__ = base.env_id

    def __call__(self) -> gym.Env:
        with warnings.catch_warnings():  # Gymnasium warns about an unknown render mode; FrameRecorder says it
            warnings.simplefilter("ignore")
            try:
                env = self.factory()
            except TypeError as exc:
                raise EnvError(f"{self.env_id} takes no render_mode ({exc}), so pgrl record cannot draw its frames") \
                    from None
        if len(self.recorders) >= self.n_recorded:
            return env
        recorder = FrameRecorder(env, self.width)
        self.recorders.append(recorder)
        return recorder


def caption(frame: np.ndarray, text: str, width: int | None = None) -> np.ndarray:
    """``frame`` with a black strip below it holding ``text`` in white, on a canvas ``width`` wide
    (default: the frame's; a wider one keeps the whole caption, so no two frames look the same)."""
    from PIL import Image, ImageDraw

    height = frame.shape[0]
    image = Image.new("RGB", (max(width or 0, frame.shape[1]), height + CAPTION_HEIGHT))
    image.paste(Image.fromarray(frame), ((image.width - frame.shape[1]) // 2, 0))
    ImageDraw.Draw(image).text((4, height + 2), text, fill=(255, 255, 255), font=_font())
    return np.asarray(image)


def caption_width(texts: list[str]) -> int:
    """Pixels the longest caption needs."""
    return int(max(_font().getlength(text) for text in texts)) + 8


def _font():
    from PIL import ImageFont

    return ImageFont.load_default(size=12)


def record_run(
    path: str | Path,
    episodes: int = 3,
    out: str | Path | None = None,
    fmt: str | None = None,
    seed: int | None = None,
    deterministic: bool = True,
    record_episodes: int | None = None,
    fps: int = 30,
    width: int = 320,
    max_steps: int = 100_000,
    device: str = "auto",
) -> Recording:
    """Play ``episodes`` episodes of the model in ``path`` (a run folder or model file) and write
    the first ``record_episodes`` (default: all) to ``out`` (default RUN_DIR/episodes.FMT).

    ``fmt`` is "gif" or "mp4" (default: from ``out``'s suffix, else gif); ``max_steps`` cuts each
    episode short (evaluate_policy's cap: the returns are then those of the cut episodes)."""
    from pgrl.evaluation import evaluate_policy
    from pgrl.runs import load_run_model, run_env

    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")
    n_recorded = episodes if record_episodes is None else record_episodes
    if not 1 <= n_recorded <= episodes:
        raise ConfigError(f"--record-episodes must be between 1 and --episodes ({episodes}), got {n_recorded}")
    if fps < 1:
        raise ConfigError(f"--fps must be at least 1, got {fps}")
    if max_steps < 1:
        raise ConfigError(f"--max-steps must be at least 1, got {max_steps}")
    if width < 0:
        raise ConfigError(f"--width must be 0 (as rendered) or a number of pixels, got {width}")
    out, fmt = _out_path(path, out, fmt)
    for name in ("SDL_VIDEODRIVER", "SDL_AUDIODRIVER"):  # pygame draws off-screen; no display or sound needed
        os.environ.setdefault(name, "dummy")
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo's default (GLFW) needs a display; EGL renders headless
    model = load_run_model(path, device=device)
    factory = RecordingFactory(run_env(path, model), n_recorded, width)
    returns, lengths = evaluate_policy(model, factory, episodes, deterministic=deterministic, seed=seed,
                                       backend="gymnasium", return_episode_rewards=True, max_steps=max_steps)
    captioned: list[tuple[np.ndarray, str]] = []
    counts = []
    for k, (recorder, final, length) in enumerate(zip(factory.recorders, returns, lengths, strict=False)):
        clip = _episode(recorder.clip, length)
        counts.append(len(clip))
        captioned += [(frame, f"episode {k + 1}/{n_recorded}  step {step}  "
                              f"return {final if step == length else so_far:.1f}") for frame, step, so_far in clip]
    canvas = caption_width([text for _, text in captioned])
    write_video([caption(frame, text, canvas) for frame, text in captioned], out, fmt, fps)
    return Recording(out, f"{model.name} on {model.env_id}", [float(r) for r in returns], [int(n) for n in lengths],
                     counts)


def _episode(clip: list[tuple[np.ndarray, int, float]], length: int) -> list[tuple[np.ndarray, int, float]]:
    """The frames of an episode of ``length`` steps: up to its last step's (a capped episode ends early)."""
    last = next((i for i, (_, step, _) in enumerate(clip) if step == length), len(clip) - 1)
    return clip[: last + 1]


def _out_path(path: str | Path, out: str | Path | None, fmt: str | None) -> tuple[Path, str]:
    if fmt is None:
        fmt = Path(out).suffix.lower().lstrip(".") if out is not None and Path(out).suffix else "gif"
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be gif or mp4, got '{fmt}'")
    if out is None:
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        out = folder / f"episodes.{fmt}"
    out = Path(out)
    if out.suffix.lower() != f".{fmt}":
        raise ConfigError(f"-o {out} does not end in .{fmt}; name the file FILE.{fmt} or pass --format")
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of -o {out} does not exist; create it or choose another -o")
    return out, fmt


def write_video(frames: list[np.ndarray], out: Path, fmt: str, fps: int) -> None:
    """Frames (all one size, uint8 RGB) to a looping GIF or an H.264 MP4, written atomically.

    A GIF's frames share one 256-colour palette, made from a few of them (Pillow's per-frame
    quantization would take most of the time): rendered scenes have few colours."""
    tmp = out.with_name(f".{out.stem}.tmp.{fmt}")
    try:
        if fmt == "gif":
            _write_gif(frames, tmp, fps)
        else:
            try:
                import imageio_ffmpeg  # noqa: F401
            except ImportError:
                raise ConfigError("MP4 needs imageio-ffmpeg; install it with pip install 'pgrl[record]', "
                                  "or pass --format gif") from None
            import imageio.v2 as imageio

            even = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames]  # H.264 wants even sizes
            imageio.mimwrite(tmp, even, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=2)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def _write_gif(frames: list[np.ndarray], path: Path, fps: int) -> None:
    from PIL import Image

    picks = [frames[i] for i in np.linspace(0, len(frames) - 1, min(len(frames), 8)).astype(int)]
    palette = Image.fromarray(np.concatenate(picks, axis=0)).quantize(256)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def clip_section(runs: dict[str, Path], folder: Path, max_steps: int = 200, width: int = 160):
    """A report section with one short greedy clip (GIF) per group: ``runs`` maps a group's name to
    one of its run folders; the clips go to ``folder``.  A group whose env cannot be rendered is
    named in the section's text instead (the report is still written)."""
    from pgrl.errors import PGRLError
    from pgrl.report_html import Section

    folder.mkdir(parents=True, exist_ok=True)
    images, notes = [], []
    for group, run_dir in runs.items():
        try:
            recording = record_run(run_dir, 1, folder / f"{group}.gif", max_steps=max_steps, width=width)
        except PGRLError as exc:
            notes.append(f"{group}: no clip ({exc})")
            continue
        images.append(recording.path)
        notes.append(f"{group} ({run_dir.name}): return {recording.returns[0]:.1f} in {recording.lengths[0]} steps")
    text = (f"One greedy episode per group, from its first seed's model (at most {max_steps} steps), in the order "
            "listed:\n" + "\n".join(notes))
    return Section("Episodes", text=text, images=images)


# -- the command line ------------------------------------------------------------------------------


def add_record_options(parser: argparse.ArgumentParser, default_format: str | None = None) -> None:
    """The video flags `pgrl record` and `pgrl eval --record` share."""
    parser.add_argument("-o", "--out", default=None, metavar="FILE",
                        help="video file (default RUN_DIR/episodes.gif or .mp4)")
    parser.add_argument("--format", default=default_format, choices=FORMATS,
                        help="gif or mp4 (default: from -o's suffix, else gif)")
    parser.add_argument("--fps", type=int, default=30, help="frames per second (default 30)")
    parser.add_argument("--width", type=int, default=320,
                        help="frame width in pixels, downscaled keeping the aspect ratio (0: as rendered; "
                             "default 320); a narrow frame is centred on a canvas as wide as its caption")


def add_record_parser(subparsers) -> argparse.ArgumentParser:
    """Add `record` to the `pgrl` sub-parsers and the --record flags to `eval` (when it is there)."""
    rec = subparsers.add_parser("record", help="render greedy episodes of a run folder to a GIF or MP4")
    rec.add_argument("run_dir", help="run folder or model file")
    rec.add_argument("--episodes", type=int, default=3, help="episodes to play and record (default 3)")
    rec.add_argument("--seed", type=int, default=None,
                     help="seed of the first episode (default: pgrl eval's, 10**6 + the run's seed)")
    rec.add_argument("--max-steps", type=int, default=100_000, metavar="N",
                     help="end each episode after N steps (short clips of long episodes)")
    rec.add_argument("--device", default="auto")
    add_record_options(rec)
    ev = subparsers.choices.get("eval")
    if ev is not None:
        ev.add_argument("--record", action="store_true",
                        help="also write a video of the episodes (Gymnasium's env, as --env-backend gymnasium)")
        ev.add_argument("--record-episodes", type=int, default=3, metavar="K",
                        help="with --record: the first K episodes go in the video (default 3)")
        add_record_options(ev)
    return rec


def run_record(args: argparse.Namespace) -> int:
    """`pgrl record` or `pgrl eval --record`: play, write the video, print the returns."""
    evaluating = args.command == "eval"
    if evaluating and args.env_backend == "native":
        raise ConfigError("pgrl eval --record renders Gymnasium's env; pgrl's native envs do not render: "
                          "drop --env-backend native")
    recording = record_run(
        args.run_dir, args.episodes, args.out, args.format, args.seed,
        deterministic=args.deterministic if evaluating else True,
        record_episodes=min(args.record_episodes, args.episodes) if evaluating else None,
        fps=args.fps, width=args.width, max_steps=getattr(args, "max_steps", 100_000), device=args.device,
    )
    returns = np.asarray(recording.returns)
    if evaluating:
        kind = "greedy" if args.deterministic else "stochastic"
        print(f"{recording.title}: {kind} return over {args.episodes} episodes: "
              f"{returns.mean():.1f} ± {returns.std():.1f}")
    shown = ", ".join(f"{r:.1f}" for r in recording.returns[: len(recording.frames)])
    print(f"recorded {len(recording.frames)} episode(s) ({sum(recording.frames)} frames), returns {shown}: "
          f"{recording.path}")
    return 0
