"""Forward process, training targets and reverse steps, per frequency.

All functions are pure, jittable and batched: images are ``[B, H, W, C]``; ``t`` is an
integer scalar or ``[B]`` in ``[0, T)`` (``t = 0`` least noisy) indexing a
:class:`~fans_jax.schedules.Schedule`. For the ``white`` schedule everything runs in
pixel space and *is* textbook DDPM (Ho et al. 2020); for coloured schedules every
operator is an elementwise multiply between an ``rfft2`` and an ``irfft2``.

Notation (Fourier coordinates, one frequency ``k``): ``Y_t = a_t X_0 + sigma_{t,k} E``
with ``a_t = sqrt(abar_t)``, ``sigma2_{t,k} = (1 - abar_t) S_t(k)`` and ``E`` the DFT of
white ``eps``. The network always sees ``x_t`` and predicts, by ``objective``:

* ``eps`` (default): the white ``eps`` (unit variance at every frequency);
* ``x0``: the clean image;
* ``v``: per frequency ``cos(phi) E - sin(phi) X_0`` with ``tan(phi) = sigma / a``;
  with white noise this is Salimans & Ho's ``v = a eps - sigma x0``;
* ``flow``: the rectified-flow velocity ``eta - x0`` (``eta = A_t eps`` the coloured
  noise), the target the published FANS post trained with.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fans_jax import noise as noise_lib
from fans_jax import spectra
from fans_jax.schedules import Schedule

OBJECTIVES = ("eps", "x0", "v", "flow")


def check_objective(objective: str) -> str:
  if objective not in OBJECTIVES:
    raise ValueError(f"objective={objective!r} is not one of {OBJECTIVES}.")
  return objective


def _check_inputs(schedule: Schedule, x: jax.Array, name: str = "x") -> None:
  spectra.check_images(x, name)
  if tuple(x.shape[1:3]) != tuple(schedule.image_shape[:2]):
    raise ValueError(f"{name} has spatial size {tuple(x.shape[1:3])}, but the schedule was"
                     f" built for {tuple(schedule.image_shape[:2])}.")


def check_timesteps(t, num_timesteps: int, name: str = "t", lowest: int = 0) -> None:
  """Raises a ValueError unless every ``t`` lies in ``[lowest, T)``.

  Only concrete values are checked; inside ``jit`` (traced ``t``) nothing can be
  checked and out-of-range indices are clamped by JAX's gather (to ``T - 1`` or
  ``lowest``): pass valid steps.
  """
  if not noise_lib.is_concrete(t):
    return
  values = np.asarray(t)
  if values.size == 0:
    return
  if not np.issubdtype(values.dtype, np.integer):
    raise ValueError(f"{name} must hold integer timesteps; got dtype {values.dtype}.")
  bad = (values < lowest) | (values >= num_timesteps)
  if np.any(bad):
    raise ValueError(f"{name}={values[bad].reshape(-1)[0]} is outside [{lowest},"
                     f" {num_timesteps}) (T = {num_timesteps}; t = 0 is the least noisy step).")


def _per_example(values: jax.Array, t: jax.Array) -> jax.Array:
  """``values [T]`` at ``t`` (scalar or ``[B]``), shaped to broadcast with images."""
  check_timesteps(t, values.shape[0])
  return jnp.reshape(values[jnp.asarray(t)], (-1, 1, 1, 1))


def _per_frequency(values: jax.Array, t: jax.Array) -> jax.Array:
  """``values [T', h, w]`` at ``t`` -> ``[B or 1, h, w, 1]`` (rfft grid with channels).

  ``T' = 1`` arrays (time-invariant spectra) are indexed at 0 whatever ``t``.
  """
  index = jnp.minimum(jnp.asarray(t), values.shape[0] - 1)
  out = values[index]
  if out.ndim == 2:
    out = out[None]
  return out[..., None]


def _spectrum_grid(schedule: Schedule, t: jax.Array) -> jax.Array:
  """``S_t`` as ``[B or 1, H, Wr, 1]`` (``[1, 1, 1, 1]`` ones for white)."""
  if schedule.is_white:
    return jnp.ones((1, 1, 1, 1), schedule.spectrum.dtype)
  return _per_frequency(schedule.spectrum, t)


def _sigma_grid(schedule: Schedule, t: jax.Array) -> jax.Array:
  """``sigma_{t,k} = sqrt((1 - abar_t) S_t(k))`` as ``[B or 1, H, Wr, 1]``
  (``[B or 1, 1, 1, 1]`` for white)."""
  return jnp.sqrt((1.0 - _per_example(schedule.alphas_cumprod, t))
                  * _spectrum_grid(schedule, t))


def _standardize(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per sample and channel: ``((x - mean) / std, mean, std)`` over (H, W)."""
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  std = jnp.sqrt(jnp.mean((x - mean) ** 2, axis=(1, 2), keepdims=True) + 1e-12)
  return (x - mean) / std, mean, std


def forward_noise(schedule: Schedule, t: jax.Array, eps: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The noise ``eta_t`` that ``q_sample`` scales by ``sqrt(1 - abar_t)``.

  Args:
    schedule: the schedule; t: scalar or ``[B]``; eps: ``[B, H, W, C]`` white noise.
  Returns:
    ``(eta, eps_target)``, both ``[B, H, W, C]``: ``eta = A_t eps`` (``eps`` itself for
    white), and the white noise the network is trained to predict, with
    ``A_t eps_target = eta``. They differ from ``(A_t eps, eps)`` only for ``blog``
    with ``standardize``, where ``eta`` is the standardised noise and
    ``eps_target = (eps - mean(eps)) / std(A_t eps)`` (exactly ``A_t^-1 eta``).
  """
  if schedule.is_white:
    return eps, eps
  eta = noise_lib.apply_sqrt_spectrum(eps, jnp.sqrt(_per_frequency(schedule.spectrum, t)))
  if not schedule.standardize:
    return eta, eps
  eta, _, std = _standardize(eta)
  return eta, (eps - jnp.mean(eps, axis=(1, 2), keepdims=True)) / std


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, eps: jax.Array) -> jax.Array:
  """Samples ``q(x_t | x_0)``: ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) A_t eps``.

  Args:
    x0: ``[B, H, W, C]`` data; t: scalar or ``[B]`` ints; eps: ``[B, H, W, C]`` white.
  Returns:
    ``x_t`` ``[B, H, W, C]``.
  """
  _check_inputs(schedule, x0, "x0")
  eta, _ = forward_noise(schedule, t, eps)
  abar = schedule.alphas_cumprod
  return (jnp.sqrt(_per_example(abar, t)) * x0
          + jnp.sqrt(1.0 - _per_example(abar, t)) * eta).astype(x0.dtype)


def _linear_target_coefs(schedule: Schedule, t: jax.Array, objective: str):
  """Per-frequency ``(c_eps, c_x0)`` with ``target = c_eps E + c_x0 X_0`` (v, flow)."""
  a = jnp.sqrt(_per_example(schedule.alphas_cumprod, t))
  sigma = _sigma_grid(schedule, t)
  if objective == "v":
    r = jnp.sqrt(a**2 + sigma**2)
    return a / r, -sigma / r
  # flow: eta - x0 = sqrt(S) E - X0
  return jnp.sqrt(_spectrum_grid(schedule, t)), -jnp.ones_like(sigma)


def training_target(schedule: Schedule, x0: jax.Array, t: jax.Array, eps: jax.Array,
                    objective: str = "eps") -> jax.Array:
  """What the network should output for ``x_t = q_sample(schedule, x0, t, eps)``.

  Returns ``[B, H, W, C]``; see the module docstring for the objectives.
  """
  check_objective(objective)
  _, eps_target = forward_noise(schedule, t, eps)
  if objective == "eps":
    return eps_target
  if objective == "x0":
    return x0
  height, width = x0.shape[1:3]
  c_eps, c_x0 = _linear_target_coefs(schedule, t, objective)
  if schedule.is_white:
    return (c_eps * eps_target + c_x0 * x0).astype(x0.dtype)
  coeffs = c_eps * spectra.rfft2(eps_target) + c_x0 * spectra.rfft2(x0)
  return spectra.irfft2(coeffs, height, width).astype(x0.dtype)


def predict_eps_and_x0(schedule: Schedule, x_t: jax.Array, t: jax.Array,
                       model_output: jax.Array, objective: str = "eps"
                       ) -> tuple[jax.Array, jax.Array]:
  """Converts a network output into ``(eps_hat, x0_hat)``, both ``[B, H, W, C]``.

  ``x0_hat = (x_t - sqrt(1 - abar_t) A_t eps_hat) / sqrt(abar_t)`` (docs/method.md §4).
  """
  check_objective(objective)
  height, width = x_t.shape[1:3]
  a = jnp.sqrt(_per_example(schedule.alphas_cumprod, t))
  if schedule.is_white:
    s = jnp.sqrt(1.0 - _per_example(schedule.alphas_cumprod, t))
    if objective == "eps":
      return model_output, (x_t - s * model_output) / a
    if objective == "x0":
      return (x_t - a * model_output) / s, model_output
    c_eps, c_x0 = _linear_target_coefs(schedule, t, objective)
    det = a * c_eps - s * c_x0
    return ((a * model_output - c_x0 * x_t) / det, (c_eps * x_t - s * model_output) / det)
  sigma = _sigma_grid(schedule, t)
  y_t = spectra.rfft2(x_t)
  out = spectra.rfft2(model_output)
  # The output itself is returned as is, not as irfft2(rfft2(output)): that saves an
  # FFT pair, and XLA:CPU (jax 0.10.2) fails with a layout RET_CHECK on an
  # irfft2(rfft2(x)) chain when x is sharded over several devices.
  if objective == "eps":
    return model_output, spectra.irfft2((y_t - sigma * out) / a, height, width)
  if objective == "x0":
    return spectra.irfft2((y_t - a * out) / sigma, height, width), model_output
  c_eps, c_x0 = _linear_target_coefs(schedule, t, objective)
  det = a * c_eps - sigma * c_x0
  e, y0 = (a * out - c_x0 * y_t) / det, (c_eps * y_t - sigma * out) / det
  return spectra.irfft2(e, height, width), spectra.irfft2(y0, height, width)


def loss_per_example(schedule: Schedule, model_output: jax.Array, x0: jax.Array,
                     t: jax.Array, eps: jax.Array, objective: str = "eps") -> jax.Array:
  """Mean squared error between ``model_output`` and the objective's target, ``[B]``.

  With ``objective="eps"`` this is DDPM's ``||eps - eps_theta(x_t, t)||^2`` (mean over
  pixels and channels).
  """
  target = training_target(schedule, x0, t, eps, objective)
  err = (model_output.astype(jnp.float32) - target.astype(jnp.float32)) ** 2
  return jnp.mean(err, axis=(1, 2, 3))


def x0_from_eps(schedule: Schedule, x_t: jax.Array, t: jax.Array, eps_hat: jax.Array) -> jax.Array:
  """``x0_hat = (x_t - sqrt(1 - abar_t) A_t eps_hat) / sqrt(abar_t)``, ``[B, H, W, C]``."""
  return predict_eps_and_x0(schedule, x_t, t, eps_hat, "eps")[1]


def prior_sample(schedule: Schedule, key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """``x_T = sqrt(1 - abar_T) eta_T``, the start of sampling, ``shape = (B, H, W, C)``."""
  eps = jax.random.normal(key, shape, dtype)
  t_last = schedule.num_timesteps - 1
  eta, _ = forward_noise(schedule, jnp.full((shape[0],), t_last), eps)
  return jnp.sqrt(1.0 - schedule.alphas_cumprod[t_last]).astype(dtype) * eta


def posterior_mean_variance(schedule: Schedule, x_t: jax.Array, x0: jax.Array,
                            t: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean and variance of ``q(x_{t-1} | x_t, x_0)``, per frequency.

  For white schedules returns pixel-space ``([B, H, W, C], [B or 1, 1, 1, 1])`` as in
  Ho et al. eq. 6-7. For coloured ones returns the *Fourier* mean ``[B, H, Wr, C]``
  (complex) and per-frequency variance ``[B or 1, H, Wr, 1]``.
  """
  c_xt = _per_frequency(schedule.post_coef_xt, t)
  c_x0 = _per_frequency(schedule.post_coef_x0, t)
  var = _per_frequency(schedule.post_std, t) ** 2
  if schedule.is_white:
    return c_xt * x_t + c_x0 * x0, var
  return c_xt * spectra.rfft2(x_t) + c_x0 * spectra.rfft2(x0), var


def working_domain(schedule: Schedule, height: int, width: int):
  """``(to, back)``: the domain where a schedule's reverse maths is elementwise.

  Coloured schedules work on the orthonormal rfft grid (``rfft2`` / ``irfft2``); white
  ones in pixel space (identity maps), so white sampling never pays for an FFT.
  """
  if schedule.is_white:
    return (lambda x: x), (lambda y: y)
  return spectra.rfft2, (lambda y: spectra.irfft2(y, height, width))


def _check_ancestral(schedule: Schedule) -> None:
  if schedule.ddim_only:
    raise ValueError(f"schedule {schedule.name!r} breaks the forward chain and was built"
                     " with ddim_only=True: sample it with ddim_step (eta = 0).")


def ancestral_update(schedule: Schedule, y_t: jax.Array, t: jax.Array, e_hat: jax.Array,
                     z: jax.Array, image_size: tuple[int, int], clip_x0: bool = False,
                     clip_range: tuple[float, float] = (-1.0, 1.0)) -> jax.Array:
  """The ancestral step in the working domain (see :func:`working_domain`).

  ``Y_{t-1} = c_xt Y_t + c_x0 Y0_hat + sqrt(var) Z`` per frequency (docs/method.md §5),
  ``Y0_hat = (Y_t - sigma_t E_hat) / a_t``. Arguments are ``x_t``, ``eps_hat`` and the
  white noise already mapped to the domain: ``[B, H, Wr, C]`` complex (coloured) or
  ``[B, H, W, C]`` (white). Used by :func:`reverse_step` and by the samplers, which
  keep ``Y_t`` between steps and so save two FFTs per step.
  """
  _check_ancestral(schedule)
  to, back = working_domain(schedule, *image_size)
  z = _without_dc_if_standardized(schedule, z)
  y0 = (y_t - _sigma_grid(schedule, t) * e_hat) / jnp.sqrt(
      _per_example(schedule.alphas_cumprod, t))
  if clip_x0:
    y0 = to(jnp.clip(back(y0), *clip_range))
  return (_per_frequency(schedule.post_coef_xt, t) * y_t
          + _per_frequency(schedule.post_coef_x0, t) * y0
          + _per_frequency(schedule.post_std, t) * z)


def reverse_step(schedule: Schedule, x_t: jax.Array, t: jax.Array, eps_hat: jax.Array,
                 noise: jax.Array, clip_x0: bool = False,
                 clip_range: tuple[float, float] = (-1.0, 1.0)) -> jax.Array:
  """One ancestral step ``x_t -> x_{t-1}`` with the per-frequency posterior.

  Per frequency (docs/method.md §5): ``Y_{t-1} = c_xt Y_t + c_x0 Y0_hat +
  sqrt(var) Z`` with ``Y0_hat`` from ``eps_hat``. At ``t = 0`` it returns ``x0_hat``.
  For white schedules this is Ho et al.'s Algorithm 2 step.
  Args:
    x_t: ``[B, H, W, C]``; t: scalar or ``[B]``; eps_hat: ``[B, H, W, C]`` predicted
      white noise; noise: ``[B, H, W, C]`` white ``N(0, I)`` (passed in, so the step
      is a pure function); clip_x0: clip ``x0_hat`` to ``clip_range`` first.
  Returns:
    ``x_{t-1}`` ``[B, H, W, C]``.
  """
  _check_ancestral(schedule)
  _check_inputs(schedule, x_t, "x_t")
  size = tuple(x_t.shape[1:3])
  to, back = working_domain(schedule, *size)
  y_s = ancestral_update(schedule, to(x_t), t, to(eps_hat), to(noise), size, clip_x0,
                         clip_range)
  return back(y_s).astype(x_t.dtype)


def _without_dc_if_standardized(schedule: Schedule, z):
  """Step noise on the rfft grid with DC zeroed for standardised schedules.

  Per-sample standardisation (``blog`` with ``standardize=True``) removes the mean of
  every forward noise draw, so the forward process never noises DC; the reverse
  process must not add noise there either (it would inject DC noise the network was
  never trained to remove). Other schedules: ``z`` unchanged.
  """
  if z is None or not schedule.standardize:
    return z
  return z.at[:, 0, 0, :].set(0)


def _check_ddim(schedule: Schedule, eta: float, has_noise: bool) -> float:
  eta = float(eta)
  if not 0.0 <= eta <= 1.0:
    raise ValueError(f"eta={eta} must lie in [0, 1].")
  if eta > 0 and not has_noise:
    raise ValueError("ddim_step with eta > 0 needs noise.")
  if eta > 0 and schedule.ddim_only:
    raise ValueError(f"schedule {schedule.name!r} breaks the forward chain: DDIM needs eta = 0.")
  return eta


def ddim_update(schedule: Schedule, y_t: jax.Array, t: jax.Array, s: jax.Array,
                e_hat: jax.Array, z: jax.Array | None, eta: float,
                image_size: tuple[int, int], clip_x0: bool = False,
                clip_range: tuple[float, float] = (-1.0, 1.0)) -> jax.Array:
  """The DDIM step of :func:`ddim_step` in the working domain (arguments as in
  :func:`ancestral_update`; ``z`` may be None when ``eta = 0``)."""
  eta = _check_ddim(schedule, eta, z is not None)
  to, back = working_domain(schedule, *image_size)
  z = _without_dc_if_standardized(schedule, z)
  abar = schedule.alphas_cumprod
  s = jnp.asarray(s)
  s_idx = jnp.maximum(s, 0)
  a_t = jnp.sqrt(_per_example(abar, t))
  abar_s = jnp.where(jnp.reshape(s, (-1, 1, 1, 1)) >= 0, _per_example(abar, s_idx), 1.0)
  a_s = jnp.sqrt(abar_s)
  sig2_t = _sigma_grid(schedule, t) ** 2
  sig2_s = (1.0 - abar_s) * _spectrum_grid(schedule, s_idx)
  y0 = (y_t - jnp.sqrt(sig2_t) * e_hat) / a_t
  if clip_x0:
    y0 = to(jnp.clip(back(y0), *clip_range))
    e_hat = (y_t - a_t * y0) / jnp.sqrt(sig2_t)
  if eta == 0:
    return a_s * y0 + jnp.sqrt(sig2_s) * e_hat
  cond = jnp.maximum(sig2_t - (a_t / a_s) ** 2 * sig2_s, 0.0)
  c2 = eta**2 * cond * sig2_s / sig2_t
  return a_s * y0 + jnp.sqrt(jnp.maximum(sig2_s - c2, 0.0)) * e_hat + jnp.sqrt(c2) * z


def ddim_step(schedule: Schedule, x_t: jax.Array, t: jax.Array, s: jax.Array,
              eps_hat: jax.Array, noise: jax.Array | None = None, eta: float = 0.0,
              clip_x0: bool = False, clip_range: tuple[float, float] = (-1.0, 1.0)
              ) -> jax.Array:
  """One DDIM step ``x_t -> x_s`` (``s < t``, strided allowed; ``s = -1`` gives ``x0_hat``).

  Per frequency: ``Y_s = a_s Y0_hat + sqrt(sigma2_s - c^2) E_hat + c Z`` with
  ``c^2 = eta^2 sigma2_{t|s} sigma2_s / sigma2_t``. ``eta = 1`` with ``s = t - 1`` is
  the ancestral step; ``eta = 0`` is deterministic and needs no forward chain.
  Args:
    x_t: ``[B, H, W, C]``; t, s: scalars or ``[B]``; eps_hat: ``[B, H, W, C]``;
    noise: white ``[B, H, W, C]`` (needed when ``eta > 0``); eta: Python float in [0, 1].
  """
  _check_ddim(schedule, eta, noise is not None)
  _check_inputs(schedule, x_t, "x_t")
  check_timesteps(t, schedule.num_timesteps, "t")
  check_timesteps(s, schedule.num_timesteps, "s", lowest=-1)
  if noise_lib.is_concrete(t) and noise_lib.is_concrete(s) and np.any(
      np.asarray(s) >= np.asarray(t)):
    raise ValueError(f"ddim_step needs s < t (it steps towards the data); got t={t}, s={s}.")
  size = tuple(x_t.shape[1:3])
  to, back = working_domain(schedule, *size)
  z = None if (noise is None or float(eta) == 0) else to(noise)
  y_s = ddim_update(schedule, to(x_t), t, s, to(eps_hat), z, eta, size, clip_x0, clip_range)
  return back(y_s).astype(x_t.dtype)


__all__ = [
    "OBJECTIVES", "ancestral_update", "check_timesteps", "ddim_step", "ddim_update", "working_domain", "forward_noise", "loss_per_example", "posterior_mean_variance",
    "predict_eps_and_x0", "prior_sample", "q_sample", "reverse_step", "training_target",
    "x0_from_eps",
]
