"""``results.md``: the table in the published post's format beside the post's
numbers, slope MAE, learning curves, every run, failures, machine and times."""

from __future__ import annotations

import os
import pathlib

import ml_collections
import numpy as np

from fans_jax import evaluation
from fans_jax.study.planning import (FRECHET_METRICS, TABLE_METRICS, RunSpec,
                                     planned_metrics, read_record, sample_size_warnings)
from fans_jax.study.published import PUBLISHED, PUBLISHED_SLOPE_MAE, PUBLISHED_SOURCE
from fans_jax.study.stats import hms


def _fmt_stat(stat: dict | None, digits: int, show_n: int | None = None) -> str:
  if stat is None:
    return "—"
  text = f"{stat['mean']:.{digits}f}"
  if stat["std"] is not None:
    text += f" ± {stat['std']:.{digits}f}"
  if show_n is not None and stat["n"] != show_n:
    text += f" (n={stat['n']})"
  return text


def _published_value(published: str, key: str, variant_cfg) -> str:
  row = PUBLISHED.get(published, {})
  column = variant_cfg.published_as
  value = row.get(key, {}).get(column) if column else None
  return "" if value is None else f"{value:g}"


def main_table(study: ml_collections.ConfigDict, results: dict) -> str:
  """The post's table: dataset | data slope | each metric for each variant; under each
  dataset, the post's numbers in the columns of the variants that stand for its FANS and
  DDPM (``published_as``)."""
  variants, seeds = results["variants"], results["seeds"]
  header = ["dataset", "data slope"]
  for _, label, _ in TABLE_METRICS:
    header += [f"{label} {v}" for v in variants]
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  for d in results["datasets"]:
    entry = results["table"][d]
    cells = [f"{entry['label']} {entry['resolution'] or ''}".strip(),
             _fmt_stat(entry["data_slope"], 3)]
    for key, _, digits in TABLE_METRICS:
      for v in variants:
        stat = entry["variants"][v][key]
        if stat is None and key == "fd_resnet20" and entry["variants"][v]["notes"]:
          cells.append("n/a")
        else:
          cells.append(_fmt_stat(stat, digits, show_n=len(seeds)))
    lines.append("| " + " | ".join(cells) + " |")
    published = entry["published"]
    if published in PUBLISHED:
      row = PUBLISHED[published]
      cells = [f"↳ post: {published}", f"{row['slope_ref']:g}"]
      for key, _, _ in TABLE_METRICS:
        cells += [_published_value(published, key, study.variants[v]) for v in variants]
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def frechet_table(study: ml_collections.ConfigDict, results: dict) -> str:
  """FID and KID per dataset and variant, for the datasets where any run computed them
  ('' when none did); the post's FID beside the variants standing for its DDPM / FANS."""
  variants, seeds = results["variants"], results["seeds"]
  lines = []
  for d in results["datasets"]:
    entry = results["table"][d]
    if not any(entry["variants"][v].get(k) for v in variants for k, _, _ in FRECHET_METRICS):
      continue
    if not lines:
      lines = ["| dataset | variant | " + " | ".join(l for _, l, _ in FRECHET_METRICS)
               + " | post's FID |", "|---|---|" + "---|" * (len(FRECHET_METRICS) + 1)]
    for v in variants:
      cells = [_fmt_stat(entry["variants"][v].get(k), digits, show_n=len(seeds))
               for k, _, digits in FRECHET_METRICS]
      post = _published_value(entry["published"], "fid", study.variants[v])
      lines.append(f"| {entry['label']} | {v} | " + " | ".join(cells) + f" | {post} |")
  return "\n".join(lines) + "\n" if lines else ""


def _mae_table(study, results: dict) -> str:
  lines = ["| variant | stands for (post) | slope MAE (ours) | slope MAE (post) |"
           " paired t-test vs " + str(study.baseline) + " (ours) |", "|---|---|---|---|---|"]
  for v in results["variants"]:
    column = study.variants[v].published_as
    post = PUBLISHED_SLOPE_MAE.get(column)
    test = results["paired_tests"].get(v)
    test_text = (f"t = {test['t']:.2f}, p = {test['p']:.3g} (n = {test['n']} datasets)"
                 if test else ("—" if v == study.baseline else "n/a (fewer than 2 datasets)"))
    lines.append(f"| {v} | {column or '—'} | {_fmt_stat(results['slope_mae'][v], 4)} |"
                 f" {'' if post is None else post} | {test_text} |")
  return "\n".join(lines) + "\n"


def _paired_markdown(study, results: dict) -> list[str]:
  """Per dataset: each variant minus the baseline, paired over seeds."""
  paired = results.get("paired_over_seeds") or {}
  if not paired:
    return []
  out = [f"## Each variant against {study.baseline}, paired over seeds", "",
         f"Mean over seeds of (variant - {study.baseline}) for the same seed, with a two-sided"
         " paired t-test (scipy `ttest_rel`; with 3 seeds it has 2 degrees of freedom, so"
         " only large, consistent differences reach p < 0.05). For |slope error|, band JSD,"
         " LSD, FD-ResNet20, FID and KID negative is better; for band corr. positive is"
         " better.", ""]
  labels = {"slope_abs_error": "\\|slope error\\|", "band_jsd": "band JSD",
            "band_corr": "band corr.", "lsd": "LSD", "fd_resnet20": "FD-ResNet20",
            "fid": "FID", "kid": "KID"}
  for d, by_v in paired.items():
    keys = [k for k in labels if any(k in m for m in by_v.values())]
    out += [f"{d}:", "", "| variant | " + " | ".join(labels[k] for k in keys) + " |",
            "|---|" + "---|" * len(keys)]
    for v, metrics in by_v.items():
      cells = []
      for k in keys:
        m = metrics.get(k)
        if m is None:
          cells.append("—")
          continue
        text = f"{m['diff']:+.4g}"
        if m["p"] is not None:
          text += f" (t = {m['t']:.2f}, p = {m['p']:.3g}, n = {m['n']})"
        else:
          text += f" (n = {m['n']})"
        cells.append(text)
      out.append(f"| {v} | " + " | ".join(cells) + " |")
    out.append("")
  return out


def _timing_table(results: dict, outdir: pathlib.Path) -> tuple[str, float]:
  lines = ["| run | status | train (s) | steps trained | s / step | sample (s) |"
           " ms / (image x step) | evaluate (s) | total (s) |",
           "|---|---|---|---|---|---|---|---|---|"]
  total = 0.0
  for r in results["runs"]:
    spec = RunSpec(r["dataset"], r["variant"], r["seed"])
    record = read_record(spec, outdir) or {}
    t = dict(record.get("timing", {}))
    total += float(t.get("total_s", 0.0))
    if t.get("trained_steps"):
      t["per_step"] = t["train_s"] / t["trained_steps"]
    row = r.get("row")
    if row and "sample_s" in t and not t.get("samples_reused"):
      t["per_image_step"] = 1e3 * t["sample_s"] / (row["num_samples"] * int(row["steps"]))
    cells = [spec.name, r["status"]] + [
        f"{t[k]:.{3 if k.startswith('per') else 1}f}" if isinstance(t.get(k), float)
        else str(t.get(k, "—"))
        for k in ("train_s", "trained_steps", "per_step", "sample_s", "per_image_step",
                  "evaluate_s", "total_s")]
    lines.append("| " + " | ".join(cells) + " |")
  notes = ("\nTimes include start-up and compilation (s / step and ms / (image x step) are"
           " upper bounds of the steady-state costs; docs/study_design.md).\n")
  return "\n".join(lines) + "\n" + notes, total


def results_markdown(study, results: dict, record: dict, figures: dict,
                     outdir: pathlib.Path) -> str:
  """``results.md``: the main table, slope MAE, notes, every run, failures, figures,
  machine and times."""
  seeds, variants = results["seeds"], results["variants"]
  run = study.run
  ev = study.evaluation
  steps = "all T" if str(ev.sampler) == "ddpm" or not int(ev.num_steps) else str(ev.num_steps)
  done = [r for r in results["runs"] if r["status"] == "done"]
  failed = [r for r in results["runs"] if r["status"] == "failed"]
  missing = [r for r in results["runs"] if r["status"] == "missing"]
  notes = sorted({n for d in results["table"].values() for v in d["variants"].values()
                  for n in v["notes"]})
  ref_counts = ", ".join(f"{d} {results['table'][d]['num_reference'] or '—'}"
                         for d in results["datasets"])
  out = [
      "# FANS study results", "",
      f"{len(results['datasets'])} dataset(s) x {len(variants)} variant(s) x {len(seeds)}"
      f" seed(s) ({', '.join(map(str, seeds))}): {len(done)} run(s) finished,"
      f" {len(failed)} failed, {len(missing)} not run.", "",
      "Budget, identical for every run: model"
      f" `{run.model.name}` channels {run.model.channels} x {tuple(run.model.channel_mult)},"
      f" {run.model.num_res_blocks} res block(s); {run.train.num_train_steps} steps of batch"
      f" {run.train.batch_size}, {run.optim.name} lr {run.optim.learning_rate:g}"
      f" ({run.optim.warmup_steps} warm-up, {run.optim.decay} decay), EMA"
      f" {run.train.ema_decay:g}; T = {run.noise.num_timesteps}, {run.noise.beta_schedule}"
      f" betas, {run.noise.objective} objective. Evaluation: {ev.num_samples} samples per run,"
      f" {ev.sampler} sampler ({steps} steps"
      f"{', eta ' + format(float(ev.eta), 'g') if str(ev.sampler) == 'ddim' else ''}),"
      + (" against every image of each dataset." if not int(ev.num_reference) else
         f" against {ev.num_reference} images spread evenly over each dataset (at most all).")
      + f" Reference images per dataset: {ref_counts}.", "",
      "Variants: " + "; ".join(
          f"`{v}` = {study.variants[v].family} ({study.variants[v].description})"
          for v in variants) + ".", "",
      "## Main table (the published post's format)", "",
      main_table(study, results),
      f"Cells: mean ± sample standard deviation over the {len(seeds)} seed(s) (n shown when"
      " fewer runs finished); a single seed shows its value. Slopes: alpha of"
      " P(f) ∝ f^-alpha fitted to the radially averaged PSD; band JSD in nats over"
      f" {ev.num_bands} {ev.band_spacing} bands (DC excluded); band corr.: Pearson"
      " correlation of the band-power vectors; LSD: mean |log10 P_gen - log10 P_data| over"
      " radial bins (decades). FD-ResNet20 is a Fréchet distance on CIFAR-10 ResNet-20"
      " features, not FID (n/a: not CIFAR-10).",
      "",
      "Rows \"↳ post\" are the published numbers (" + PUBLISHED_SOURCE + "), placed in the"
      " columns of the variant that stands for the post's DDPM ("
      + ", ".join(v for v in variants if study.variants[v].published_as == "DDPM")
      + ") and FANS (" + ", ".join(v for v in variants if study.variants[v].published_as
                                   == "FANS") + ")."
      " They are not like-for-like: the post used 512x512 synthetic images, Multimodal"
      " Universe cutouts (not Galaxy Zoo), an unnamed texture set, its own band count and"
      " log base; here images are 32x32 (or 16x16) and CIFAR-10 is a JPEG re-encoded 10k"
      " subset.", "",
  ]
  frechet = frechet_table(study, results)
  if frechet:
    out += ["## FID and KID (Inception-v3 pool features)", "", frechet,
            f"Reference images: {ref_counts}. KID: mean over subsets of its unbiased"
            " estimate. Cells as in the main table. The post's FID is at 1000 training"
            " steps of its own model with an unstated sample count: not like-for-like.", ""]
  too_few = sample_size_warnings(int(ev.num_samples), planned_metrics(study))
  if too_few:
    out += ["**Warning: too few samples to rank.** " + "; ".join(too_few) + ".", ""]
  if notes:
    out += ["Not computed: " + "; ".join(f"`{n}`" for n in notes) + ".", ""]
  fids = [f"{name}: DDPM {row['fid']['DDPM']:g}, FANS {row['fid']['FANS']:g}"
          for name, row in PUBLISHED.items() if "fid" in row]
  out += ["The post's FID (Inception, sample count not stated; CIFAR-10 at 1000 steps),"
          " not comparable with FD-ResNet20: " + "; ".join(fids) + ".", ""]
  published_test = results["published"]["t_test_recomputed"]
  out += [
      "## Slope MAE over datasets", "",
      _mae_table(study, results),
      "Ours: per seed, the mean over datasets of |slope samples - slope data| (seeds with"
      " every dataset finished), then mean ± std over seeds. The post reports FANS 0.3165 vs"
      " DDPM 1.5197 and a paired t-test t = -4.92, p < 0.01; the same test on the post's own"
      " five rows gives "
      + (f"t = {published_test['t']:.2f}, p = {published_test['p']:.3f}"
         if published_test else "nothing") + ".", "",
  ]
  out += _paired_markdown(study, results)
  out += _curves_markdown(study, results, figures, outdir)
  out += [
      "## Every run", "",
      evaluation.markdown_table([r["row"] for r in done]) if done else "(none finished)\n",
  ]
  if failed or missing:
    out += ["## Failed and missing runs", ""]
    out += [f"- `{RunSpec(r['dataset'], r['variant'], r['seed']).name}`: failed while"
            f" {r['phase']}: {r['error']}" for r in failed]
    out += [f"- `{RunSpec(r['dataset'], r['variant'], r['seed']).name}`: not run yet"
            for r in missing]
    out += [""]
  imported = {}  # run name -> the results.json it was imported from
  for r in done:
    spec = RunSpec(r["dataset"], r["variant"], r["seed"])
    source = (read_record(spec, outdir) or {}).get("imported_from")
    if source:
      imported[spec.name] = source
  if imported:
    sources = sorted(set(imported.values()))
    out += [f"{len(imported)} finished run(s) were imported from an earlier study directory's"
            f" results ({', '.join(f'`{s}`' for s in sources)}; same run keys, checked): "
            + ", ".join(f"`{name}`" for name in imported)
            + ". Their metrics are in every table; their samples are not on disk, so the"
            " figures show only the runs executed in this directory.", ""]
  if figures:
    out += ["## Figures", ""]
    for name, path in figures.items():
      out.append(f"- {name}: [{os.path.relpath(path, outdir)}]({os.path.relpath(path, outdir)})")
    out += [""]
  timing, total = _timing_table(results, outdir)
  invocations = record.get("invocations", [])
  out += ["## Machine and time", ""]
  if invocations:
    m = invocations[-1]["machine"]
    out += [f"- Machine: {m['cpu']}, {m['cpu_count']} CPU core(s), {m['platform']};"
            f" JAX {m['versions']['jax']} on {m['device_count']} {m['backend']} device(s)"
            f" ({m['device_kind']}); XLA_FLAGS `{m['xla_flags']}`."]
    for inv in invocations:
      recomputed = inv.get("recomputed_curves")
      out.append(f"- `{' '.join(inv['argv'])}`: started {inv['started']}, wall clock"
                 f" {hms(inv['wall_s'])}, {len(inv['runs'])} run(s) executed"
                 + (f", learning curves of {len(recomputed)} run(s) evaluated again from"
                    " their checkpoints" if recomputed else "") + ".")
  out += [f"- Compute time of the runs (sum of their last execution): {hms(total)}.", "",
          timing]
  return "\n".join(out)


def _curves_markdown(study, results: dict, figures: dict, outdir: pathlib.Path) -> list[str]:
  """Learning curves (plateau check), Gaussian ground truth, ceiling, sampler check."""
  out: list[str] = []
  curves = results.get("curves")
  if not curves:
    return out
  ev = study.evaluation
  out += ["## Learning curves", "",
          f"Every run trains with a constant learning rate after warm-up; its checkpoints at"
          f" steps {', '.join(str(s) for s in next(iter(next(iter(curves.values())).values()))['steps'])}"
          f" are sampled with the curve sampler ({ev.curve_sampler}, {ev.curve_num_steps} steps,"
          f" eta {float(ev.curve_eta):g}, x0 clipped: {bool(ev.clip_x0)}; {ev.curve_num_samples}"
          " samples) and evaluated. eps loss: the network's mean per-coefficient eps error on"
          f" {ev.held_images} held data images at 10 noise levels (not comparable across"
          " schedules: each schedule poses a different regression problem; the excess over"
          " the optimum below is).", ""]
  for d, by_v in curves.items():
    fig = figures.get(f"{d}: learning curves")
    if fig:
      rel = os.path.relpath(fig, outdir)
      out += [f"![{d} learning curves]({rel})", ""]
    out += [f"Plateau check, {d} (change between the last two curve points against the"
            " larger seed std of the two; plateaued when smaller):", "",
            "| variant | metric | steps | change | seed std | plateaued |", "|---|---|---|---|---|---|"]
    for v, checks in results["plateau"][d].items():
      for key, c in checks.items():
        if c:
          one_seed = c["plateaued"] is None
          out.append(f"| {v} | {key} | {c['from_step']} -> {c['to_step']} |"
                     f" {c['change']:.4g} | {'one seed' if one_seed else format(c['seed_std'], '.4g')}"
                     f" | {'n/a' if one_seed else ('yes' if c['plateaued'] else 'no')} |")
    out.append("")
    excess = [(v, e["excess_final"]) for v, e in by_v.items() if "excess_final" in e]
    if excess:
      out += [f"### Gaussian ground truth: {d}", "",
              "The data is exactly Gaussian and stationary, so each variant's Bayes-optimal eps"
              " predictor is known per frequency. Excess eps loss of the trained network over"
              " its own schedule's optimum at the final step (mean over seeds), per noise-level"
              " bucket (rows, t) and band (columns, low to high frequency). Two estimators of"
              " the same quantity: the network's loss minus the closed-form optimum (its"
              " Monte Carlo error is that of the whole loss, so at small t it can exceed the"
              " excess, and go negative), and the direct one, the mean squared distance"
              " between the network's and the exact denoiser's predictions on the same"
              " draws (never negative; its error scales with the excess;"
              " fans_jax/metrics/gaussian.py):", ""]
      fig = figures.get(f"{d}: excess eps loss")
      if fig:
        out += [f"![{d} excess eps loss]({os.path.relpath(fig, outdir)})", ""]
      t_edges = excess[0][1]["t_edges"]
      out += ["| variant | estimator | " + " | ".join(f"t {t_edges[i]}-{t_edges[i + 1] - 1}"
                                                      for i in range(len(t_edges) - 1))
              + " | all |", "|---" * (len(t_edges) + 2) + "|"]
      for v, x in excess:
        n = x.get("n")
        for key, label in (("mean", "loss - optimum"), ("direct", "distance")):
          if key in x:
            if key == "direct" and n is not None and x.get("direct_n", n) < n:
              label += f" ({x['direct_n']} of {n} seeds)"
            m = np.asarray(x[key], np.float64)
            out.append(f"| {v} | {label} | " + " | ".join(f"{np.nanmean(row):.4f}" for row in m)
                       + f" | {np.nanmean(m):.4f} |")
      out.append("")
    ceiling = results.get("ceiling", {}).get(d)
    if ceiling:
      out += [f"Ceiling, {d}: spectral metrics of samples drawn with each schedule's exact"
              " optimal denoiser (no training), main and curve sampler:", "",
              "| variant | sampler | \\|slope error\\| | band JSD | LSD | band corr. |",
              "|---|---|---|---|---|---|"]
      for v, by_s in ceiling.items():
        for name, stats in by_s.items():
          out.append(f"| {v} | {name} | " + " | ".join(
              _fmt_stat(stats[k], 4) for k in ("slope_abs_error", "band_jsd", "lsd",
                                               "band_corr")) + " |")
      out.append("")
  check = results.get("sampler_check", {})
  if check:
    out += ["### Does the curve sampler rank like the main sampler?", "",
            f"Final step, variants ordered best first by each metric (main: {ev.sampler},"
            f" curve: {ev.curve_sampler} {ev.curve_num_steps}):", "",
            "| dataset | metric | main sampler | curve sampler | same ranking |",
            "|---|---|---|---|---|"]
    for d, by_k in check.items():
      for key, c in by_k.items():
        out.append(f"| {d} | {key} | {' < '.join(c['main'])} | {' < '.join(c['curve'])} |"
                   f" {'yes' if c['same_ranking'] else 'no'} |")
    out.append("")
  return out
