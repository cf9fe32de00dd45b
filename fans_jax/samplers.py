"""Samplers: the whole reverse process inside one ``lax.scan``.

A sampler is chosen by name (``ddpm``: ancestral, every step; ``ddim``: strided,
``eta`` in [0, 1]) and runs ``model_fn(params, x_t, t) -> output`` at every step,
converting the output with the training objective. Randomness: one key, folded with
the step index inside the scan, so a sample is a pure function of ``(params, key)``.

Example::

    sample = jax.jit(functools.partial(
        samplers.sample, apply_fn, schedule=schedule, shape=(64, 32, 32, 3),
        sampler="ddim", num_steps=50))
    images = sample(params, key)
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fans_jax import diffusion
from fans_jax import noise as noise_lib
from fans_jax.schedules import Schedule

ModelFn = Callable[[Any, jax.Array, jax.Array], jax.Array]
SAMPLERS = ("ddpm", "ddim")


def check_sampler(name: str) -> str:
  if name not in SAMPLERS:
    raise ValueError(f"sampler={name!r} is not one of {SAMPLERS}.")
  return name


def ddim_timesteps(num_timesteps: int, num_steps: int, spacing: str = "uniform") -> np.ndarray:
  """Decreasing timesteps ``[num_steps]`` from ``T - 1`` down to 0 (inclusive).

  ``uniform``: evenly spaced in ``t`` (rounded); ``quadratic``: denser near ``t = 0``
  (Song et al. 2021).
  """
  if not 1 <= int(num_steps) <= num_timesteps:
    raise ValueError(f"num_steps={num_steps} must lie in [1, T={num_timesteps}].")
  if spacing == "uniform":
    steps = np.linspace(0, num_timesteps - 1, int(num_steps))
  elif spacing == "quadratic":
    steps = np.linspace(0, np.sqrt(num_timesteps - 1), int(num_steps)) ** 2
  else:
    raise ValueError(f"spacing={spacing!r} is not 'uniform' or 'quadratic'.")
  steps = np.unique(np.round(steps).astype(np.int32))
  if steps.size != int(num_steps):
    raise ValueError(f"{num_steps} {spacing} steps over T={num_timesteps} collide after"
                     " rounding; use fewer steps or uniform spacing.")
  return steps[::-1].copy()


def sample(model_fn: ModelFn, params: Any, key: jax.Array, *, schedule: Schedule,
           shape: tuple[int, int, int, int], sampler: str = "ddpm",
           num_steps: int | None = None, eta: float = 0.0, objective: str = "eps",
           clip_x0: bool = False, clip_range: tuple[float, float] = (-1.0, 1.0),
           spacing: str = "uniform", dtype=jnp.float32) -> jax.Array:
  """Draws ``shape[0]`` samples; jit it with everything but ``params``/``key`` static.

  Args:
    model_fn: ``(params, x_t [B, H, W, C], t [B] int32) -> output`` in the units of
      ``objective``.
    params: network parameters (a pytree).
    key: PRNG key.
    schedule: the noise schedule the network was trained with.
    shape: ``(B, H, W, C)``.
    sampler: ``ddpm`` (ancestral over all ``T`` steps) or ``ddim``.
    num_steps: DDIM steps (default ``T``); ignored by ``ddpm``.
    eta: DDIM stochasticity in [0, 1].
    objective: the network's training objective.
    clip_x0: clip ``x0_hat`` to ``clip_range`` at every step.
  Returns:
    ``[B, H, W, C]`` samples (not clipped).
  """
  check_sampler(sampler)
  diffusion.check_objective(objective)
  batch = shape[0]
  size = tuple(shape[1:3])
  T = schedule.num_timesteps
  key_prior, key_steps = jax.random.split(key)
  x_T = diffusion.prior_sample(schedule, key_prior, shape, dtype)
  to, back = diffusion.working_domain(schedule, *size)
  # Coloured schedules carry Y_t = rfft2(x_t) and draw the step noise on the rfft grid,
  # so a step costs two FFTs (x_t for the network, eps_hat back) instead of four.
  draw = noise_lib.white_noise if schedule.is_white else noise_lib.fourier_white_noise

  def eps_hat_at(x, t):
    tt = jnp.full((batch,), t, jnp.int32)
    out = model_fn(params, x, tt).astype(dtype)
    return diffusion.predict_eps_and_x0(schedule, x, tt, out, objective)[0]

  if sampler == "ddpm":
    if schedule.ddim_only:
      raise ValueError(f"schedule {schedule.name!r} was built with ddim_only=True (it breaks"
                       " the forward chain); use sampler='ddim' with eta=0.")

    def ddpm_body(y, t):
      x = back(y).astype(dtype)
      z = draw(jax.random.fold_in(key_steps, t), shape, dtype)
      return diffusion.ancestral_update(schedule, y, t, to(eps_hat_at(x, t)), z, size,
                                        clip_x0, clip_range), None

    y0, _ = jax.lax.scan(ddpm_body, to(x_T), jnp.arange(T - 1, -1, -1, dtype=jnp.int32))
    return back(y0).astype(dtype)

  steps = ddim_timesteps(T, T if num_steps is None else num_steps, spacing)
  pairs = np.stack([steps, np.append(steps[1:], -1)], axis=1).astype(np.int32)

  def ddim_body(y, ts):
    t, s = ts[0], ts[1]
    x = back(y).astype(dtype)
    z = draw(jax.random.fold_in(key_steps, t), shape, dtype) if eta > 0 else None
    return diffusion.ddim_update(schedule, y, t, s, to(eps_hat_at(x, t)), z, eta, size,
                                 clip_x0, clip_range), None

  y0, _ = jax.lax.scan(ddim_body, to(x_T), jnp.asarray(pairs))
  return back(y0).astype(dtype)


__all__ = ["SAMPLERS", "check_sampler", "ddim_timesteps", "sample"]
