"""fans_jax: Frequency-Adaptive Noise Shaping (FANS) for diffusion models in JAX.

Modules: :mod:`spectra` (dataset spectral statistics), :mod:`noise` (coloured Gaussian
noise), :mod:`schedules` (beta schedules x noise spectra), :mod:`diffusion` (forward
process, targets, reverse steps), :mod:`samplers` (jitted sampling loops).
"""

from fans_jax import diffusion, noise, samplers, schedules, spectra

__version__ = "0.1.0"
__all__ = ["diffusion", "noise", "samplers", "schedules", "spectra"]
