"""Input pipeline: sharding, per-epoch shuffling, exact resumption, normalisation."""

import json

import numpy as np
import pytest

import fans_jax.data as data
from fans_jax.data import base


class IndexSource(base.ImageSource):
  """Image ``i`` encodes ``i`` in its first two channels (``i % 256``, ``i // 256``)."""

  name = "index"
  image_shape = (2, 2, 3)

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def get_batch(self, indices, epoch=0):
    idx = self._check_indices(indices)
    out = np.zeros((idx.size, 2, 2, 3), np.uint8)
    out[..., 0] = (idx % 256)[:, None, None]
    out[..., 1] = (idx // 256)[:, None, None]
    out[..., 2] = epoch % 256
    return out

  def fingerprint(self):
    return {"name": self.name, "n": self.n}


def decode(batch):
  return batch[:, 0, 0, 0].astype(int) + 256 * batch[:, 0, 0, 1].astype(int)


def take(it, k):
  return [next(it) for _ in range(k)]


def test_two_processes_see_each_example_once_per_epoch():
  n, g = 1000, 64
  src = IndexSource(n)
  its = [data.make_iterator(src, g, seed=3, process_index=p, process_count=2) for p in range(2)]
  ref = data.make_iterator(src, g, seed=3, process_index=0, process_count=1)
  steps = n // g
  assert its[0].steps_per_epoch == steps and its[0].local_batch_size == g // 2
  epochs = []
  for _ in range(2):
    seen = []
    for _ in range(steps):
      a, b = (decode(next(it)) for it in its)
      assert a.size == b.size == g // 2 and not set(a) & set(b)  # disjoint shards
      np.testing.assert_array_equal(np.r_[a, b], decode(next(ref)))  # same global batch
      seen.append(np.r_[a, b])
    seen = np.concatenate(seen)
    assert np.unique(seen).size == seen.size == steps * g  # each example at most once
    epochs.append(seen)
  # Epochs are reshuffled: different orders and different dropped tails.
  assert not np.array_equal(epochs[0], epochs[1])
  assert set(range(n)) - set(epochs[0]) != set(range(n)) - set(epochs[1])


def test_drop_remainder_false_covers_every_example_exactly_once():
  n, g = 100, 16
  src = IndexSource(n)
  its = [data.make_iterator(src, g, seed=0, process_index=p, process_count=2,
                            drop_remainder=False) for p in range(2)]
  steps = its[0].steps_per_epoch
  assert steps == 7
  for _ in range(2):
    seen = np.concatenate([decode(next(it)) for _ in range(steps) for it in its])
    np.testing.assert_array_equal(np.sort(seen), np.arange(n))


def test_shuffle_is_deterministic_from_seed_and_epoch():
  src = IndexSource(300)
  a = np.concatenate([decode(b) for b in take(data.make_iterator(src, 30, seed=1), 10)])
  b = np.concatenate([decode(b) for b in take(data.make_iterator(src, 30, seed=1), 10)])
  c = np.concatenate([decode(b) for b in take(data.make_iterator(src, 30, seed=2), 10)])
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  ordered = np.concatenate([decode(b) for b in take(
      data.make_iterator(src, 30, shuffle=False), 10)])
  np.testing.assert_array_equal(ordered, np.arange(300))


@pytest.mark.parametrize("num_threads", [0, 2])
@pytest.mark.parametrize("consumed", [3, 7, 9])  # 9 batches of 32 > one epoch of 8
def test_restored_iterator_continues_with_the_same_batches(num_threads, consumed):
  src = IndexSource(270)
  it = data.make_iterator(src, 32, seed=5, num_threads=num_threads)
  take(it, consumed)
  state = json.loads(json.dumps(it.get_state()))  # what a checkpoint stores
  expected = take(it, 12)  # crosses at least one epoch boundary (8 steps per epoch)
  it2 = data.make_iterator(src, 32, seed=5, num_threads=num_threads)
  next(it2)  # a restored iterator may already have run (and prefetched)
  it2.set_state(state)
  for want, got in zip(expected, take(it2, 12)):
    np.testing.assert_array_equal(want, got)  # includes the epoch channel (random crops)
  assert state["next_batch"] == consumed and state["epoch"] == consumed // 8


def test_state_restores_under_another_process_count():
  src = IndexSource(512)
  single = data.make_iterator(src, 64, seed=0, process_count=1, process_index=0)
  take(single, 5)
  state = single.get_state()
  expected = decode(next(single))
  halves = []
  for p in range(2):
    it = data.make_iterator(src, 64, seed=0, process_index=p, process_count=2)
    it.set_state(state)
    halves.append(decode(next(it)))
  np.testing.assert_array_equal(np.concatenate(halves), expected)


def test_state_of_another_order_is_refused():
  src = IndexSource(200)
  state = data.make_iterator(src, 20, seed=0).get_state()
  for kwargs in ({"global_batch_size": 10}, {"seed": 1}, {"shuffle": False}):
    args = {"global_batch_size": 20, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match="does not match"):
      data.make_iterator(src, **args).set_state(state)
  with pytest.raises(ValueError, match="does not match"):
    data.make_iterator(IndexSource(201), 20, seed=0).set_state(state)


def test_bad_iterator_arguments():
  src = IndexSource(10)
  with pytest.raises(ValueError, match="not divisible"):
    data.make_iterator(src, 5, process_index=0, process_count=2)
  with pytest.raises(ValueError, match="fewer than one global batch"):
    data.make_iterator(src, 16)
  with pytest.raises(ValueError, match="process_index"):
    data.make_iterator(src, 4, process_index=2, process_count=2)


def test_iterator_over_a_real_source_yields_uint8_batches():
  cfg = data.with_overrides(name="pltb", image_size=8, channels=2, num_examples=40)
  it = data.make_iterator(data.get_source(cfg), 16, seed=0, process_index=1, process_count=2)
  batch = next(it)
  assert batch.dtype == np.uint8 and batch.shape == (8, 8, 8, 2)


def test_to_model_input_and_back():
  u = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  x = data.to_model_input(u)
  assert x.dtype == np.float32
  np.testing.assert_allclose(np.asarray(x), u / 127.5 - 1.0, atol=1e-6)
  assert float(x.min()) == -1.0 and float(x.max()) == 1.0
  np.testing.assert_array_equal(data.from_model_input(x), u)
  np.testing.assert_array_equal(data.from_model_input(np.array([-3.0, 3.0])), [0, 255])
