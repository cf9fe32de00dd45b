"""Reads the tensors of a PyTorch / TorchScript zip archive without torch.

A file written by ``torch.jit.save`` (or ``torch.save`` since PyTorch 1.6) is a zip
holding, under one top-level folder ``<root>/``:

* ``data.pkl``: a pickle of the module tree. TorchScript modules are pickled as
  ``__torch__.<qualified.Class>`` objects built by ``NEWOBJ`` + ``BUILD`` with a dict
  of their attributes; tensors as ``torch._utils._rebuild_tensor_v2(storage, offset,
  size, stride, requires_grad, hooks)`` whose storage is a persistent id
  ``("storage", torch.FloatStorage, key, location, numel)``; int lists as
  ``torch.jit._pickle.build_intlist([...])``.
* ``data/<key>``: the raw bytes of each storage, in the byte order of ``byteorder``
  (``"little"`` when that file is absent, as in archives written before it existed).
* ``constants.pkl``: tensor constants of the TorchScript code (storages under
  ``constants/<key>``); ``code/``: the TorchScript source; ``version``.

:func:`read_archive` unpickles ``data.pkl`` (and ``constants.pkl``) with a restricted
:class:`pickle.Unpickler` that resolves only the globals listed in
:data:`ALLOWED_GLOBALS` plus ``__torch__.*`` classes, which become inert
:class:`ScriptObject` attribute holders. Anything else (``os.system``, ``builtins.eval``,
an unknown ``torch`` function) raises :class:`pickle.UnpicklingError`: no code from
the file is ever run, and tensors come back as NumPy arrays (copied, C-contiguous).
:func:`state_dict` flattens a module tree into ``{"a.b.weight": array}`` as
``module.state_dict()`` would name them.
"""

from __future__ import annotations

import io
import os
import pickle
import posixpath
import zipfile
from typing import Any, Iterator

import numpy as np

# torch storage classes -> NumPy dtypes (little-endian unless ``byteorder`` says big).
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


def _bfloat16():
  import ml_dtypes  # pylint: disable=g-import-not-at-top  (ships with jax)
  return ml_dtypes.bfloat16


class StorageType:
  """Stands for a torch storage class (``torch.FloatStorage`` ...) in the pickle."""

  def __init__(self, name: str):
    self.name = name

  @property
  def dtype(self) -> np.dtype:
    if self.name == "BFloat16Storage":
      return np.dtype(_bfloat16())
    return np.dtype(_STORAGE_DTYPES[self.name])

  def __repr__(self):
    return f"StorageType({self.name})"


class ScriptObject:
  """A TorchScript object (``__torch__.<qualname>``) reduced to its attributes.

  Attributes are read with ``obj.attributes[name]`` or ``obj.name``; nothing of the
  class's code exists here.
  """

  qualname = "?"

  def __init__(self):  # never called by pickle (NEWOBJ uses __new__)
    self.attributes = {}

  def __setstate__(self, state):
    if not isinstance(state, dict):
      raise pickle.UnpicklingError(f"{self.qualname}: expected a dict of attributes, got"
                                   f" {type(state).__name__}.")
    self.__dict__["attributes"] = dict(state)

  def __getattr__(self, name):
    attrs = self.__dict__.get("attributes", {})
    if name in attrs:
      return attrs[name]
    raise AttributeError(f"{self.qualname} has no attribute {name!r}")

  def __repr__(self):
    return f"<{self.qualname}>"


_SCRIPT_CLASSES: dict[str, type] = {}


def _script_class(qualname: str) -> type:
  if qualname not in _SCRIPT_CLASSES:
    _SCRIPT_CLASSES[qualname] = type(qualname.rsplit(".", 1)[-1], (ScriptObject,),
                                     {"qualname": qualname, "__module__": __name__})
  return _SCRIPT_CLASSES[qualname]


def _identity_list(values):
  return list(values)


class _Storage:
  """A lazily read storage: ``key`` in the archive, its dtype and element count."""

  def __init__(self, archive: "_Archive", folder: str, key: str, dtype: np.dtype, numel: int):
    self.archive, self.folder, self.key, self.dtype, self.numel = archive, folder, key, dtype, numel

  def array(self) -> np.ndarray:
    return self.archive.storage(self.folder, self.key, self.dtype, self.numel)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  """NumPy version of ``torch._utils._rebuild_tensor_v2``: a strided view, copied."""
  del requires_grad, backward_hooks, metadata
  if not isinstance(storage, _Storage):
    raise pickle.UnpicklingError(f"_rebuild_tensor_v2 got {type(storage).__name__}, not a"
                                 " storage.")
  size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(storage_offset)
  if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size + stride):
    raise pickle.UnpicklingError(f"bad tensor geometry: size {size}, stride {stride},"
                                 f" offset {offset}.")
  flat = storage.array()
  if any(s == 0 for s in size):
    return np.zeros(size, flat.dtype)
  last = offset + sum((n - 1) * st for n, st in zip(size, stride))
  if last >= flat.size:
    raise pickle.UnpicklingError(
        f"tensor of size {size}, stride {stride} at offset {offset} reaches element {last}"
        f" of a storage of {flat.size}.")
  view = np.lib.stride_tricks.as_strided(
      flat[offset:], shape=size, strides=tuple(st * flat.itemsize for st in stride),
      writeable=False)
  return np.array(view, copy=True, order="C")


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
  del requires_grad, backward_hooks
  return data


# (module, name) -> what the restricted unpickler returns for it.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): dict,
    ("torch.jit._pickle", "build_intlist"): _identity_list,
    ("torch.jit._pickle", "build_doublelist"): _identity_list,
    ("torch.jit._pickle", "build_boollist"): _identity_list,
    ("torch.jit._pickle", "build_tensorlist"): _identity_list,
    ("torch.jit._pickle", "build_strlist"): _identity_list,
    **{("torch", name): StorageType(name) for name in (*_STORAGE_DTYPES, "BFloat16Storage")},
}


class RestrictedUnpickler(pickle.Unpickler):
  """Unpickles tensors and TorchScript attribute trees only.

  ``find_class`` resolves :data:`ALLOWED_GLOBALS` and ``__torch__.*`` classes (as
  :class:`ScriptObject` subclasses); every other global raises
  :class:`pickle.UnpicklingError` naming it. Persistent ids must be storage tuples.
  """

  def __init__(self, file, archive: "_Archive", storage_folder: str):
    super().__init__(file)
    self._archive = archive
    self._folder = storage_folder

  def find_class(self, module: str, name: str):
    if module == "__torch__" or module.startswith("__torch__."):
      return _script_class(f"{module}.{name}")
    try:
      return ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(
          f"refusing to load global {module}.{name}: only tensors and TorchScript"
          " attributes are read from this archive.") from None

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}.")
    _, storage_type, key, _location, numel = pid
    if not isinstance(storage_type, StorageType):
      raise pickle.UnpicklingError(f"persistent id with storage type {storage_type!r}.")
    return _Storage(self._archive, self._folder, str(key), storage_type.dtype, int(numel))


class _Archive:
  """The zip, its top-level folder and its byte order."""

  def __init__(self, zf: zipfile.ZipFile):
    self.zf = zf
    names = zf.namelist()
    pkls = [n for n in names if posixpath.basename(n) == "data.pkl" and n.count("/") == 1]
    if len(pkls) != 1:
      raise ValueError(f"not a PyTorch zip archive: expected one <root>/data.pkl, found {pkls}.")
    self.root = pkls[0].split("/")[0]
    self.names = set(names)
    order = self.read_text("byteorder", default="little").strip()
    if order not in ("little", "big"):
      raise ValueError(f"unknown byteorder {order!r} in the archive.")
    self.byteorder = "<" if order == "little" else ">"
    self._cache: dict[tuple[str, str], np.ndarray] = {}

  def path(self, name: str) -> str:
    return f"{self.root}/{name}"

  def has(self, name: str) -> bool:
    return self.path(name) in self.names

  def read_text(self, name: str, default: str | None = None) -> str:
    if not self.has(name):
      if default is None:
        raise KeyError(name)
      return default
    return self.zf.read(self.path(name)).decode("utf-8")

  def storage(self, folder: str, key: str, dtype: np.dtype, numel: int) -> np.ndarray:
    cache_key = (folder, key)
    if cache_key not in self._cache:
      name = f"{folder}/{key}"
      if not self.has(name):
        raise pickle.UnpicklingError(f"storage {name} is missing from the archive.")
      raw = self.zf.read(self.path(name))
      dt = np.dtype(dtype).newbyteorder(self.byteorder) if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
      if len(raw) < numel * dt.itemsize:
        raise pickle.UnpicklingError(f"storage {name} holds {len(raw)} bytes, fewer than"
                                     f" {numel} x {dt.itemsize}.")
      arr = np.frombuffer(raw, dtype=dt, count=numel)
      self._cache[cache_key] = arr.astype(np.dtype(dtype).newbyteorder("="), copy=False)
    return self._cache[cache_key]

  def unpickle(self, name: str, storage_folder: str):
    with self.zf.open(self.path(name)) as f:
      return RestrictedUnpickler(io.BytesIO(f.read()), self, storage_folder).load()


class Archive(dict):
  """What :func:`read_archive` returns: ``data`` (the unpickled ``data.pkl``),
  ``constants`` (``constants.pkl`` or ``()``), ``code`` (``{path: TorchScript source}``),
  ``version``, ``root`` and ``byteorder``."""

  def __getattr__(self, name):
    try:
      return self[name]
    except KeyError:
      raise AttributeError(name) from None


def read_archive(path) -> Archive:
  """Unpickles a TorchScript / ``torch.save`` zip without torch (tensors as NumPy).

  ``path``: a file name or a seekable binary file object.

  Raises:
    ValueError: not a PyTorch zip archive.
    pickle.UnpicklingError: the pickle references anything but tensors, plain
      containers and TorchScript attribute holders.
  """
  with zipfile.ZipFile(path if hasattr(path, "read") else os.fspath(path)) as zf:
    archive = _Archive(zf)
    data = archive.unpickle("data.pkl", "data")
    constants = archive.unpickle("constants.pkl", "constants") if archive.has("constants.pkl") else ()
    code = {n[len(archive.root) + 1:]: zf.read(n).decode("utf-8")
            for n in sorted(archive.names)
            if n.startswith(archive.path("code/")) and n.endswith(".py")}
    return Archive(data=data, constants=constants, code=code,
                   version=archive.read_text("version", default="").strip(),
                   root=archive.root, byteorder=archive.byteorder)


def iter_tensors(obj, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
  """``(dotted name, array)`` for every tensor in a module tree, depth first, in the
  order the attributes were pickled (the order of ``module.state_dict()``)."""
  if isinstance(obj, np.ndarray):
    yield prefix, obj
  elif isinstance(obj, ScriptObject):
    for name, value in obj.attributes.items():
      yield from iter_tensors(value, f"{prefix}.{name}" if prefix else name)
  elif isinstance(obj, dict):
    for name, value in obj.items():
      yield from iter_tensors(value, f"{prefix}.{name}" if prefix else str(name))


def state_dict(obj) -> dict[str, np.ndarray]:
  """The tensors of a module tree under ``state_dict()``-style dotted names."""
  out = {}
  for name, arr in iter_tensors(obj):
    if name in out:
      raise ValueError(f"tensor name {name!r} occurs twice.")
    out[name] = arr
  return out


def find(obj: ScriptObject, dotted: str):
  """The object at ``dotted`` (``"net.layers.mixed_4.tower.conv_1"``) in a module tree."""
  for part in dotted.split("."):
    if not isinstance(obj, ScriptObject) or part not in obj.attributes:
      raise KeyError(f"{dotted}: no attribute {part!r} in {obj!r}")
    obj = obj.attributes[part]
  return obj


def torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """The same as :func:`state_dict` of :func:`read_archive`, but read by
  ``torch.jit.load`` (needs torch; a cross-check of the reader)."""
  import torch  # pylint: disable=g-import-not-at-top
  module = torch.jit.load(os.fspath(path), map_location="cpu")
  return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


__all__ = ["ALLOWED_GLOBALS", "Archive", "RestrictedUnpickler", "ScriptObject", "StorageType",
           "find", "iter_tensors", "read_archive", "state_dict", "torch_state_dict"]
