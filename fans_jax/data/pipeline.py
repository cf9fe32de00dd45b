"""One input pipeline for every dataset: sharded, shuffled, prefetched, resumable.

Built on grain: a ``grain.MapDataset`` whose element ``k`` is this process's slice of
global batch ``k`` (a ``uint8 [B_local, H, W, C]`` array), read ahead by grain's
thread prefetch (``to_iter_dataset(ReadOptions(num_threads, prefetch_buffer_size))``).
Grain's thread prefetch checkpoints the index of the next batch *returned* (not the
next one read), so prefetching never breaks exact resumption. No worker processes:
they would need absl flags parsed and a ``__main__`` guard in every caller, and the
per-batch work here is NumPy that releases the GIL for most of its time.

Order. Epoch ``e`` uses the permutation ``perm_e`` of ``range(N)`` drawn by
``np.random.default_rng(SeedSequence([seed, e]))`` (identity when ``shuffle=False``).
Global batch ``j`` of epoch ``e`` holds ``perm_e[j G : (j + 1) G]`` (``G`` the global
batch size) and process ``p`` of ``P`` takes the ``p``-th contiguous ``G / P`` of it.
So the global batches do not depend on the number of processes, the processes' slices
are disjoint, and together they see every example exactly once per epoch.
``drop_remainder=True`` drops the last ``N mod G`` examples of each epoch's
permutation (different ones each epoch); ``False`` keeps them in a last, smaller
global batch split as evenly as possible (some processes may get fewer, or none).

State. ``get_state()`` is a JSON-serialisable dict with the index of the next global
batch and the settings that define the order; ``set_state`` checks those settings and
continues with exactly the batch that would have come next. A state restored with a
different number of processes continues the same global sequence.
"""

from __future__ import annotations

import collections
import sys
import threading
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from fans_jax.data import base
from fans_jax.utils import images as image_utils

STATE_VERSION = 1


class _EpochPermutations:
  """``perm_e`` for epoch ``e``, computed once and kept for the last few epochs."""

  def __init__(self, n: int, seed: int, shuffle: bool, keep: int = 3):
    self.n, self.seed, self.shuffle, self.keep = n, seed, shuffle, keep
    self._cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
    self._lock = threading.Lock()

  def __call__(self, epoch: int) -> np.ndarray:
    with self._lock:
      if epoch in self._cache:
        return self._cache[epoch]
    if self.shuffle:
      perm = np.random.default_rng(np.random.SeedSequence([self.seed, epoch])).permutation(self.n)
    else:
      perm = np.arange(self.n)
    with self._lock:
      self._cache[epoch] = perm
      while len(self._cache) > self.keep:
        self._cache.popitem(last=False)
    return perm


class BatchPlan:
  """Which source indices process ``p`` reads for global batch ``k`` (pure arithmetic)."""

  def __init__(self, num_examples: int, global_batch_size: int, seed: int,
               process_index: int, process_count: int, shuffle: bool, drop_remainder: bool):
    if global_batch_size < 1:
      raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}.")
    if process_count < 1 or not 0 <= process_index < process_count:
      raise ValueError(f"need 0 <= process_index < process_count, got {process_index} of"
                       f" {process_count}.")
    if global_batch_size % process_count:
      raise ValueError(f"global_batch_size={global_batch_size} is not divisible by"
                       f" process_count={process_count}.")
    if drop_remainder and num_examples < global_batch_size:
      raise ValueError(f"the dataset has {num_examples} examples, fewer than one global batch"
                       f" of {global_batch_size} (use a smaller batch or drop_remainder=False).")
    if not 0 <= seed < 2**63:
      raise ValueError(f"seed must be a non-negative integer, got {seed}.")
    self.n, self.g, self.seed = num_examples, global_batch_size, seed
    self.p, self.pc = process_index, process_count
    self.shuffle, self.drop_remainder = shuffle, drop_remainder
    self.local_batch_size = global_batch_size // process_count
    self.steps_per_epoch = (num_examples // global_batch_size if drop_remainder
                            else -(-num_examples // global_batch_size))
    self.perms = _EpochPermutations(num_examples, seed, shuffle)

  def epoch_and_step(self, k: int) -> tuple[int, int]:
    return divmod(int(k), self.steps_per_epoch)

  def local_indices(self, k: int) -> np.ndarray:
    """Source indices of this process's slice of global batch ``k``, ``int64 [b]``."""
    epoch, j = self.epoch_and_step(k)
    start = j * self.g
    size = min(self.g, self.n - start)
    if size == self.g:
      lo = start + self.p * self.local_batch_size
      hi = lo + self.local_batch_size
    else:  # the last, partial batch (drop_remainder=False): near-even contiguous split
      bounds = start + (np.arange(self.pc + 1) * size) // self.pc
      lo, hi = bounds[self.p], bounds[self.p + 1]
    return self.perms(epoch)[lo:hi]

  def settings(self) -> dict[str, Any]:
    return {"num_examples": self.n, "global_batch_size": self.g, "seed": self.seed,
            "shuffle": self.shuffle, "drop_remainder": self.drop_remainder}


class DataIterator:
  """Infinite iterator of ``uint8 [B_local, H, W, C]`` batches (see the module doc).

  ``get_state()`` / ``set_state(state)`` save and restore the position; ``close()``
  stops the prefetch threads.
  """

  def __init__(self, source: base.ImageSource, plan: BatchPlan, num_threads: int,
               prefetch_buffer_size: int):
    self.source, self.plan = source, plan
    shape = tuple(source.image_shape)

    def read(k: int) -> np.ndarray:
      epoch, _ = plan.epoch_and_step(k)
      batch = source.get_batch(plan.local_indices(k), epoch=epoch)
      return base.check_uint8_batch(batch, shape, source.name)

    ds = grain.MapDataset.range(sys.maxsize).map(read)
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch_buffer_size)
    self._dataset = ds.to_iter_dataset(options)
    self._it = iter(self._dataset)

  @property
  def local_batch_size(self) -> int:
    return self.plan.local_batch_size

  @property
  def steps_per_epoch(self) -> int:
    return self.plan.steps_per_epoch

  def __iter__(self) -> "DataIterator":
    return self

  def __next__(self) -> np.ndarray:
    return next(self._it)

  def get_state(self) -> dict[str, Any]:
    """JSON-serialisable position: ``{'version', 'next_batch', 'epoch', ...settings}``."""
    k = int(self._it.get_state()["next_index"])
    state = {"version": STATE_VERSION, "next_batch": k,
             "epoch": k // self.plan.steps_per_epoch, "dataset": self.source.name,
             "process_count": self.plan.pc}
    state.update(self.plan.settings())
    return state

  def set_state(self, state: dict[str, Any]) -> None:
    """Continues from ``state`` (from :meth:`get_state` of an identically built iterator).

    Raises:
      ValueError: if the state was saved for another order (dataset size, batch size,
        seed, shuffle or drop_remainder differ) or another dataset.
    """
    if state.get("version") != STATE_VERSION:
      raise ValueError(f"iterator state version {state.get('version')!r} is not"
                       f" {STATE_VERSION}.")
    mine = dict(self.plan.settings(), dataset=self.source.name)
    diff = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
    if diff:
      raise ValueError("iterator state does not match this iterator; (saved, current): "
                       + ", ".join(f"{k}={a!r} vs {b!r}" for k, (a, b) in diff.items()))
    self._it.set_state({"next_index": int(state["next_batch"])})

  def close(self) -> None:
    close = getattr(self._it, "close", None)
    if close is not None:
      close()


def make_iterator(source: base.ImageSource, global_batch_size: int, seed: int = 0,
                  process_index: int | None = None, process_count: int | None = None,
                  shuffle: bool = True, drop_remainder: bool = True, num_threads: int = 2,
                  prefetch_buffer_size: int = 4) -> DataIterator:
  """An infinite, sharded, shuffled, prefetched iterator over ``source``.

  Args:
    source: an :class:`~fans_jax.data.base.ImageSource` (from ``get_source``).
    global_batch_size: examples per step over all processes (divisible by
      ``process_count``).
    seed: shuffling seed; epoch ``e`` is shuffled by ``(seed, e)``.
    process_index, process_count: this process's shard; ``None`` ->
      ``jax.process_index()`` / ``jax.process_count()``.
    shuffle: reshuffle every epoch (else the source order).
    drop_remainder: drop the last partial global batch of every epoch.
    num_threads: grain prefetch threads (0 reads in the calling thread).
    prefetch_buffer_size: batches read ahead.
  Returns:
    A :class:`DataIterator` of ``uint8 [global_batch_size // process_count, H, W, C]``.
  """
  plan = BatchPlan(len(source), int(global_batch_size), int(seed),
                   jax.process_index() if process_index is None else int(process_index),
                   jax.process_count() if process_count is None else int(process_count),
                   bool(shuffle), bool(drop_remainder))
  return DataIterator(source, plan, int(num_threads), int(prefetch_buffer_size))


@jax.jit
def to_model_input(batch: jax.Array) -> jax.Array:
  """uint8 ``[..., H, W, C]`` -> float32 in [-1, 1]: ``x = u / 127.5 - 1`` (on device).

  Call it inside the jitted train step (or on the device array): the uint8 batch is
  what crosses from host to device. The clip only removes float rounding (XLA
  multiplies by ``1 / 127.5``, which can give ``1 + 1e-7`` for ``u = 255``).
  """
  return jnp.clip(batch.astype(jnp.float32) / 127.5 - 1.0, -1.0, 1.0)


def from_model_input(x) -> np.ndarray:
  """Inverse of :func:`to_model_input` for saving samples: clip to [-1, 1], round to
  uint8 ``u = floor(127.5 (x + 1) + 0.5)`` (host NumPy)."""
  return image_utils.to_uint8(x)
