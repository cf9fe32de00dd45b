"""Train-step benchmarks: throughput, noise-shaping share, JAX against PyTorch and
diffusers, host-device scaling (``devices``: 1-8 emulated devices at the study's batch,
16x16 and 32x32, with CPU seconds per step), XLA:CPU flags and conv layouts.

    python benchmarks/bench_train.py            # everything (tens of minutes on 2 cores)
    python benchmarks/bench_train.py --quick    # tiny sizes, a smoke run
    python benchmarks/bench_train.py --sections=frameworks --models=tiny --rounds=3 \
        --output=benchmarks/results/train

Every number comes from a child process started with an explicit device count
(``--xla_force_host_platform_device_count``) and XLA flags, so that runs do not share
thread pools or compiled state. ``frameworks`` runs each candidate (JAX on 1 and 2
emulated devices, ``benchmarks/torch_unet.py`` and diffusers' ``UNet2DModel``, NCHW
and channels_last) in its own process through ``benchmarks/harness.py``, alternating
over ``--rounds`` rounds, and so does ``xla_flags`` (each XLA:CPU flag set on 2 devices,
after a first run that leaves out a flag this jaxlib rejects); the ``noise`` section's
white-vs-FANS pair (same framework, same compiled model) alternates inside one child. A
child times ``--repeats`` steps after a warm-up and reports the median.

What a "step" is, in every framework: draw t and the noise, noise the batch, forward,
MSE loss, backward, clip the gradient norm at 1, Adam, EMA update. The PyTorch networks
have the JAX UNet's parameter count (printed beside the table). PyTorch and diffusers
are optional: ``pip install torch==2.13.0 diffusers``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import harness  # noqa: E402  (candidates alternating in separate processes)
import model_configs  # noqa: E402  (configs/base.py's tiny variant and Ho et al.'s UNet)

MODELS = {name: model_configs.architecture(name) for name in model_configs.NAMES}
XLA_VARIANTS = {
    "default": "",
    "no multi-thread Eigen": "--xla_cpu_multi_thread_eigen=false",
    "concurrency-optimised scheduler": "--xla_cpu_enable_concurrency_optimized_scheduler=true",
    "fast math": "--xla_cpu_enable_fast_math=true",
    "oneDNN": "--xla_cpu_use_onednn=true",
    "XNNPACK": "--xla_cpu_use_xnnpack=true",
    "no fusion emitters": "--xla_cpu_use_fusion_emitters=false",
}


# ----------------------------------------------------------------------------------
# Child side (imports JAX after XLA_FLAGS is set)
# ----------------------------------------------------------------------------------


def _median_alternating(fns: dict, repeats: int) -> dict:
  """Median seconds per call of each zero-argument function, alternating in this
  process after a warm-up (``harness.alternate``)."""
  return harness.seconds(harness.alternate(fns, repeats))


def _jax_step(model: str, noise: str, batch: int, size: int):
  """A zero-argument function running one jitted train step (blocking), and the
  parameter count: ``benchmarks/train_steps.build_step``, as bench_gpu times it."""
  import train_steps  # pylint: disable=import-outside-toplevel  (imports JAX: child only)
  run, info = train_steps.build_step(MODELS[model], batch=batch, size=size, noise=noise)
  return (lambda: run(1)), info["params"]


def _torch_net(model: str, size: int, which: str):
  """``which="torch"``: benchmarks/torch_unet.py; ``"diffusers"``: diffusers'
  ``UNet2DModel`` configured to the same widths, blocks, attention (one head), GroupNorm
  and time embedding (the frameworks table flags a parameter count that differs)."""
  import torch  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  arch = MODELS[model]
  if which == "torch":
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import torch_unet  # pylint: disable=import-outside-toplevel
    return torch_unet.UNet(image_size=size, **arch), lambda out: out
  from diffusers import UNet2DModel  # pylint: disable=import-outside-toplevel
  widths = [arch["channels"] * m for m in arch["channel_mult"]]
  attn = [size // 2**level in arch["attention_resolutions"] for level in range(len(widths))]
  heads_dim = {w for w, a in zip(widths, attn) if a} | {widths[-1]}
  if len(heads_dim) != 1:
    raise SystemExit(f"attention at widths {sorted(heads_dim)}: UNet2DModel takes one"
                     " attention_head_dim, so one head everywhere is not expressible.")
  net = UNet2DModel(
      sample_size=size, in_channels=3, out_channels=3, block_out_channels=tuple(widths),
      layers_per_block=arch["num_res_blocks"],
      down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
      up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
      norm_num_groups=arch["num_groups"], norm_eps=1e-6, attention_head_dim=heads_dim.pop(),
      dropout=arch["dropout"], flip_sin_to_cos=False, freq_shift=1)
  return net, lambda out: out.sample


def _torch_step(model: str, batch: int, size: int, channels_last: bool, which: str = "torch"):
  import torch  # pylint: disable=import-outside-toplevel

  net, output = _torch_net(model, size, which)
  ema = [p.detach().clone() for p in net.parameters()]
  opt = torch.optim.Adam(net.parameters(), lr=2e-4)
  x0 = torch.rand(batch, 3, size, size) * 2 - 1
  abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)
  if channels_last:
    net = net.to(memory_format=torch.channels_last)
    x0 = x0.contiguous(memory_format=torch.channels_last)

  def run():
    t = torch.randint(0, 1000, (batch,))
    eps = torch.randn_like(x0)
    a = abar[t][:, None, None, None]
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    loss = torch.mean((output(net(x_t, t)) - eps) ** 2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
      torch._foreach_lerp_(ema, list(net.parameters()), 1e-4)  # pylint: disable=protected-access

  params = sum(p.numel() for p in net.parameters())
  return run, params, torch.__version__, torch.get_num_threads()


def _conv_layouts(batch: int, size: int, channels: int):
  """fwd+bwd of one 3x3 conv, NHWC vs NCHW (XLA:CPU's native layout is NHWC)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  fns = {}
  for layout in ("NHWC", "NCHW"):
    shape = (batch, size, size, channels) if layout == "NHWC" else (batch, channels, size, size)
    x = jax.random.normal(jax.random.key(0), shape)
    w = 0.1 * jax.random.normal(jax.random.key(1), (3, 3, channels, channels))

    def loss(x, w, layout=layout):
      y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                       dimension_numbers=(layout, "HWIO", layout))
      return jnp.sum(y ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    fns[layout] = (lambda grad=grad, x=x, w=w: jax.block_until_ready(grad(x, w)))
  return fns


def _cpu_seconds() -> float:
  """User + system CPU seconds of this process so far (all threads)."""
  import resource  # pylint: disable=import-outside-toplevel  (POSIX only)
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def child(args) -> dict:
  """Runs one measurement; returns a JSON-able dict."""
  out = {"devices": args.devices, "xla_flags": os.environ.get("XLA_FLAGS", "")}
  if args.child == "step":
    fns = {}
    jax_run, out["params"] = _jax_step(args.model, args.noise, args.batch, args.size)
    fns["jax"] = jax_run
    out.update(_median_alternating(fns, args.repeats))
  elif args.child == "framework":  # one framework per process (benchmarks/harness.py)
    if args.framework == "jax":
      run, out["params"] = _jax_step(args.model, "white", args.batch, args.size)
    else:
      run, out["params"], out["torch_version"], out["torch_threads"] = _torch_step(
          args.model, args.batch, args.size, args.channels_last, args.framework)
    cpu_before = _cpu_seconds()
    sec = _median_alternating({"step": run}, args.repeats)["step"]
    # CPU seconds (user + system, every thread) per step, warm-up call included: a
    # candidate that only wins a larger share of a loaded machine shows no gain here.
    cpu = (_cpu_seconds() - cpu_before) / (args.repeats + 1)
    out.update(ms_per_step=sec * 1e3, img_per_s=args.batch / sec, cpu_ms_per_step=cpu * 1e3)
  elif args.child == "noise":
    white, out["params"] = _jax_step(args.model, "white", args.batch, args.size)
    fans, _ = _jax_step(args.model, "fans", args.batch, args.size)
    out.update(_median_alternating({"white": white, "fans": fans}, args.repeats))
  elif args.child == "layout":
    out.update(_median_alternating(_conv_layouts(args.batch, args.size, args.channels),
                                   args.repeats))
  return out


# ----------------------------------------------------------------------------------
# Parent side
# ----------------------------------------------------------------------------------


def child_command(kind: str, devices: int = 1, xla_flags: str = "",
                  **kw) -> tuple[list[str], dict[str, str]]:
  """The argv of one child process and the environment variables it needs (its
  emulated device count and XLA flags)."""
  env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices} {xla_flags}".strip(),
         "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
  cmd = [sys.executable, os.path.abspath(__file__), f"--child={kind}", f"--devices={devices}"]
  for key, value in kw.items():
    if isinstance(value, bool):
      cmd.append(f"--{key}" if value else f"--no{key}")
    else:
      cmd.append(f"--{key}={value}")
  return cmd, env


def run_child(kind: str, devices: int = 1, xla_flags: str = "", timeout: float = 3600,
              **kw) -> dict:
  cmd, extra = child_command(kind, devices, xla_flags, **kw)
  env = {**os.environ, **extra}
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                        cwd=ROOT)
  if proc.returncode != 0:
    raise RuntimeError(f"child {cmd} failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def table(header: list[str], rows: list[list]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def have_diffusers() -> bool:
  try:
    import diffusers  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    return True
  except ImportError:
    return False


def _framework_notes(result: dict) -> str:
  """Parameter counts and torch threads, from the candidates' own reports."""
  params = {n: int(v["params"][0]) for n, v in result["values"].items() if "params" in v}
  threads = {int(v["torch_threads"][0]) for v in result["values"].values()
             if "torch_threads" in v}
  note = "Parameters: " + ", ".join(f"{n} {p:,}" for n, p in params.items()) + "."
  if len(set(params.values())) > 1:
    note += " **The parameter counts differ: these are not the same network.**"
  if threads:
    note += f" torch threads: {sorted(threads)} (torch.get_num_threads())."
  return note


def have_torch() -> bool:
  try:
    import torch  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    return True
  except ImportError:
    return False


def main(args) -> None:
  quick = args.quick
  size = 16 if quick else 32
  batches = {"tiny": 8 if quick else 128, "cifar": 4 if quick else 128}
  if args.batch_size:
    batches = {k: args.batch_size for k in batches}
  model_list = args.models.split(",") if args.models else (["tiny"] if quick else
                                                            ["tiny", "cifar"])
  device_counts = [1] if quick else [1, 2, 4]
  rep = dict(repeats=args.repeats)
  sections = args.sections.split(",")
  print(f"# bench_train ({'quick' if quick else 'full'}), {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} CPUs, python {platform.python_version()}\n")

  if "throughput" in sections:
    rows = []
    for model in model_list:
      for devices in device_counts:
        r = run_child("step", devices, model=model, noise="fans", batch=batches[model],
                      size=size, **rep)
        rows.append([model, f"{r['params']:,}", batches[model], devices,
                     f"{r['jax'] * 1e3:.0f}", f"{batches[model] / r['jax']:.0f}"])
    print("## Train step throughput (FANS noise), by emulated host devices\n")
    print(table(["model", "params", "batch", "devices", "ms/step", "images/s"], rows), "\n")

  if "noise" in sections:
    rows = []
    for devices in device_counts[:2]:
      r = run_child("noise", devices, model="tiny", batch=batches["tiny"], size=size, **rep)
      share = 1.0 - r["white"] / r["fans"]
      rows.append(["tiny", batches["tiny"], devices, f"{r['white'] * 1e3:.1f}",
                   f"{r['fans'] * 1e3:.1f}", f"{100 * share:+.1f}%"])
    print("## Share of the step spent on noise shaping (white vs annealed FANS, alternating)\n")
    print(table(["model", "batch", "devices", "white ms", "FANS ms", "FANS overhead"], rows))
    print()

  if "frameworks" in sections:
    if not have_torch():
      print("## Frameworks: skipped (pip install torch==2.13.0 diffusers)\n")
    for model in (model_list if have_torch() else []):
      candidates, envs = {}, {}
      one_thread = "--xla_cpu_multi_thread_eigen=false"
      rows = [("JAX, 1 device", "jax", 1, False, ""), ("JAX, 2 devices", "jax", 2, False, ""),
              (f"JAX, 2 devices, {one_thread}", "jax", 2, False, one_thread),
              ("torch_unet, NCHW", "torch", 1, False, ""),
              ("torch_unet, channels_last", "torch", 1, True, "")]
      if have_diffusers():
        rows += [("diffusers UNet2DModel, NCHW", "diffusers", 1, False, ""),
                 ("diffusers UNet2DModel, channels_last", "diffusers", 1, True, "")]
      for name, framework, devices, channels_last, xla_flags in rows:
        candidates[name], envs[name] = child_command(
            "framework", devices, xla_flags, framework=framework, model=model,
            batch=batches[model], size=size, channels_last=channels_last, **rep)
      result = harness.measure(candidates, rounds=args.rounds, candidate_env=envs)
      print(f"## Train step by framework, {model} UNet, batch {batches[model]}, {size}x{size},"
            " white DDPM step (each candidate its own process, alternating rounds)\n")
      print(harness.markdown(result, "img_per_s"))
      print(_framework_notes(result), "\n")
      if args.output:
        path = f"{args.output}_frameworks_{model}.json"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
          json.dump(result, f, indent=1)

  if "devices" in sections:  # emulated device count at the study's batch, 16x16 and 32x32
    for model in model_list:
      for side in ([size] if quick else [16, 32]):
        candidates, envs = {}, {}
        for devices in ([1, 2] if quick else [2, 1, 4, 8]):
          if batches[model] % devices:
            continue
          name = f"JAX, {devices} device(s)"
          candidates[name], envs[name] = child_command(
              "framework", devices, framework="jax", model=model, batch=batches[model],
              size=side, **rep)
        result = harness.measure(candidates, rounds=args.rounds, candidate_env=envs)
        print(f"## Emulated host devices, {model} UNet, batch {batches[model]}, {side}x{side},"
              " white DDPM step (each count its own process, alternating rounds)\n")
        print(harness.markdown(result, "img_per_s"))
        print(harness.markdown(result, "cpu_ms_per_step"), "\n")
        if args.output:
          path = f"{args.output}_devices_{model}_{side}px.json"
          os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
          with open(path, "w") as f:
            json.dump(result, f, indent=1)

  if "xla_flags" in sections:  # each flag set its own process, 2 devices (the training default)
    variants = dict(list(XLA_VARIANTS.items())[:2]) if quick else XLA_VARIANTS
    devices = 1 if quick else 2
    candidates, envs, errors = {}, {}, {}
    for name, flags in variants.items():
      argv, env = child_command("framework", devices, flags, framework="jax", model="tiny",
                                batch=batches["tiny"], size=size, **rep)
      try:  # a flag this jaxlib does not know aborts XLA: leave it out, say why
        harness.run_once(argv, env, timeout=1800)
      except harness.CandidateError as e:
        errors[name] = str(e)[-160:].replace("\n", " ")
        continue
      candidates[name], envs[name] = argv, env
    result = harness.measure(candidates, rounds=args.rounds, candidate_env=envs)
    result["failed"] = errors
    print(f"## XLA:CPU flags, tiny UNet, batch {batches['tiny']}, {devices} device(s), white"
          " DDPM step (each flag set its own process, alternating rounds)\n")
    print(harness.markdown(result, "img_per_s"))
    for name, error in errors.items():
      print(f"- {name} ({variants[name]}): failed: {error}")
    print()
    if args.output:
      path = f"{args.output}_xla_flags.json"
      os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
      with open(path, "w") as f:
        json.dump(result, f, indent=1)

  if "layout" in sections:
    r = run_child("layout", 1, batch=32 if quick else 128, size=size, channels=32, **rep)
    print("## One 3x3 conv (32 channels), forward + backward, by layout\n")
    print(table(["layout", "ms"], [[k, f"{r[k] * 1e3:.1f}"] for k in ("NHWC", "NCHW")]), "\n")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
  p.add_argument("--sections", default="throughput,noise,frameworks,devices,xla_flags,layout",
                 help="comma-separated: throughput, noise, frameworks (JAX, torch_unet and"
                 " diffusers' UNet2DModel, each in its own process via benchmarks/harness.py),"
                 " devices (1-8 emulated devices at one batch, with CPU seconds per step),"
                 " xla_flags, layout")
  p.add_argument("--output", default=None,
                 help="path prefix: the frameworks section writes <output>_frameworks_<model>.json")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--rounds", type=int, default=None, help="round-robin rounds (xla_flags)")
  p.add_argument("--models", default=None, help="comma-separated: tiny,cifar")
  p.add_argument("--batch_size", type=int, default=None, help="override every batch size")
  # Child-only arguments.
  p.add_argument("--child", default=None, help=argparse.SUPPRESS)
  p.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
  p.add_argument("--model", default="tiny", help=argparse.SUPPRESS)
  p.add_argument("--noise", default="fans", help=argparse.SUPPRESS)
  p.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
  p.add_argument("--size", type=int, default=32, help=argparse.SUPPRESS)
  p.add_argument("--channels", type=int, default=32, help=argparse.SUPPRESS)
  p.add_argument("--framework", default="jax", choices=("jax", "torch", "diffusers"),
                 help=argparse.SUPPRESS)
  p.add_argument("--channels_last", dest="channels_last", action="store_true",
                 help=argparse.SUPPRESS)
  p.add_argument("--nochannels_last", dest="channels_last", action="store_false",
                 help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.repeats is None:
    args.repeats = 3 if args.quick else 7
  if args.rounds is None:
    args.rounds = 1 if args.quick else 3
  return args


if __name__ == "__main__":
  ARGS = parse_args()
  if ARGS.child:
    sys.path.insert(0, ROOT)
    print(json.dumps(child(ARGS)))
  else:
    main(ARGS)
