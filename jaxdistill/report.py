"""Tables (pandas: markdown and CSV) and figures (matplotlib PNG) from run records."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd


def kd_table(record: dict[str, Any]) -> pd.DataFrame:
    """One row per configuration of a `jaxdistill.kd.run_kd` record: test errors and accuracy (mean, std over
    seeds) and, for KD students, the gain over the student alone with its standard error and z."""
    num_test = record["num_test"]
    rows = []

    def row(name, temperature, alpha, rec):
        e = np.asarray(rec["test_errors"], float)
        sig = rec.get("significance_vs_alone", {})
        rows.append({"network": name, "T": temperature, "alpha": alpha, "seeds": e.size,
                     "errors_mean": e.mean(), "errors_std": e.std(), "accuracy_%": 100 * (1 - e.mean() / num_test),
                     "gain_vs_alone": sig.get("difference", np.nan), "gain_se": sig.get("standard_error", np.nan),
                     "z": sig.get("z", np.nan)})
    row("teacher", np.nan, np.nan, record["teacher"])
    row("student alone", np.nan, 1.0, record["student_alone"])
    loss = record.get("config", {}).get("loss", "hinton")
    for rec in record["sweep"]:
        row("student + KD" if loss == "hinton" else f"student + {loss.upper()}", rec["temperature"], rec["alpha"], rec)
    return pd.DataFrame(rows)


def write_table(df: pd.DataFrame, stem: str | Path, floatfmt: str = ".2f") -> tuple[Path, Path]:
    """Write `stem`.csv and `stem`.md; returns their paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    df.to_csv(csv, index=False)
    md.write_text(df.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    return csv, md


def plot_kd_sweep(record: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Test errors against temperature, one line per alpha (mean +- std over seeds), with the student alone and
    the teacher as horizontal bands."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    temps = sorted({r["temperature"] for r in record["sweep"]})
    for name, key, color in (("student alone", "student_alone", "black"), ("teacher", "teacher", "tab:purple")):
        e = np.asarray(record[key]["test_errors"], float)
        ax.axhline(e.mean(), color=color, ls="--", lw=1, label=f"{name} ({e.mean():.0f} +- {e.std():.0f})")
        ax.axhspan(e.mean() - e.std(), e.mean() + e.std(), color=color, alpha=0.1)
    for alpha in sorted({r["alpha"] for r in record["sweep"]}):
        pts = sorted((r["temperature"], np.mean(r["test_errors"]), np.std(r["test_errors"]))
                     for r in record["sweep"] if r["alpha"] == alpha)
        t, m, sd = map(np.asarray, zip(*pts))
        ax.errorbar(t, m, yerr=sd, marker="o", capsize=3, label=f"KD, alpha = {alpha:g}")
    ax.set_xscale("log")
    ax.set_xticks(temps)
    ax.set_xticklabels([f"{t:g}" for t in temps])
    ax.set_xlabel("temperature T")
    ax.set_ylabel(f"test errors (of {record['num_test']})")
    ax.set_title(title or "knowledge distillation: test errors against temperature")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_kd_methods(records: dict[str, dict[str, Any]], path: str | Path, alpha: float = 0.5) -> Path:
    """Student test accuracy against T at one alpha, one line per KD loss (`records` maps a legend name, e.g.
    'Hinton' or 'DKD', to a `run_kd` record with the same students alone), the student alone and the teacher as
    bands; mean +- std over seeds."""
    from jaxdistill.visualize import _pyplot, _save
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    first = next(iter(records.values()))
    n = first["num_test"]
    for name, key, color in (("student alone", "student_alone", "black"), ("teacher", "teacher", "tab:purple")):
        acc = 100 * (1 - np.asarray(first[key]["test_errors"], float) / n)
        ax.axhline(acc.mean(), color=color, ls="--", lw=1, label=f"{name} ({acc.mean():.2f} ± {acc.std():.2f})")
        ax.axhspan(acc.mean() - acc.std(), acc.mean() + acc.std(), color=color, alpha=0.1)
    for name, rec in records.items():
        pts = sorted((r["temperature"], 100 * (1 - np.asarray(r["test_errors"], float) / n))
                     for r in rec["sweep"] if r["alpha"] == alpha)
        t = np.asarray([p[0] for p in pts])
        ax.errorbar(t, [p[1].mean() for p in pts], yerr=[p[1].std() for p in pts], marker="o", capsize=3,
                    label=f"{name}, alpha = {alpha:g}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("temperature T")
    ax.set_ylabel("student test accuracy (%)")
    ax.set_title("knowledge distillation: student accuracy against temperature", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, plt, path)


def plot_continual(results: dict[str, dict[str, Any]], stages: Sequence[Sequence[int]], path: str | Path,
                   title: str = "class-incremental learning") -> Path:
    """Test accuracy on the classes seen so far after each stage, one line per memory (mean +- std over seeds;
    `results` maps a memory's name to its 'stage_mean' / 'stage_std' / 'final_mean' lists)."""
    from jaxdistill.visualize import _pyplot, _save
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    seen = np.cumsum([len(s) for s in stages])
    for name, r in results.items():
        ax.errorbar(seen, 100 * np.asarray(r["stage_mean"]), yerr=100 * np.asarray(r["stage_std"]), marker="o",
                    capsize=3, label=f"{name} (final {100 * r['final_mean']:.1f})")
    ax.set_xticks(seen)
    ax.set_xlabel("classes seen")
    ax.set_ylabel("test accuracy on the classes seen (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, plt, path)


# ---------------------------------------------------------------------------------------------------------------
# The comparison study: every dataset-distillation record under results/ in one table.

# Published means (and stds) the records cannot carry themselves: the baselines' rows of the DC paper's Table 1
# (Zhao et al., ICLR 2021) and its whole-dataset upper bound. The methods' own records carry their paper's value.
BASELINES_PUBLISHED = {
    ("random", "mnist", 1): (64.9, 3.5), ("random", "mnist", 10): (95.1, 0.9), ("random", "mnist", 50): (97.9, 0.2),
    ("herding", "mnist", 1): (89.2, 1.6), ("herding", "mnist", 10): (93.7, 0.3), ("herding", "mnist", 50): (94.8, 0.2),
    ("k-center", "mnist", 1): (89.3, 1.5), ("k-center", "mnist", 10): (84.4, 1.7),
    ("k-center", "mnist", 50): (97.4, 0.3), ("full data", "mnist", None): (99.6, np.nan),
}
METHOD_NAMES = {"dc": "DC", "dsa": "DSA", "mtt": "MTT", "datm": "DATM", "psg": "PSG", "idc": "IDC",
                "random": "random", "herding": "herding", "kcenter": "k-center"}
METHOD_ORDER = ("random", "herding", "k-center", "DC", "DSA", "MTT", "DATM", "IDC", "IDC-I", "PSG eps=1",
                "PSG eps=10", "PSG eps=inf", "mean colour", "full data")
DATASET_ORDER = ("mnist", "fashion_mnist", "mhist")
NOT_DISTILLATION = ("kd_mnist", "mhist_transfer", "README quickstart", "cross_architecture")
REPORT_COLUMNS = ("record", "method", "dataset", "resolution", "ipc", "reduced", "stand_in", "protocol", "sets",
                  "nets", "epochs", "mean", "std", "start_mean", "published_mean", "published_std", "difference",
                  "balanced_accuracy", "balanced_accuracy_std", "sensitivity", "sensitivity_std", "specificity",
                  "specificity_std", "roc_auc", "roc_auc_std", "f1", "f1_std",
                  "wall_time_s", "device")


def _uses_dsa(augment: Any) -> bool:
    """Whether a record's augmentation setting ('dsa', 'dsa:color_crop_cutout...', 'dc', None) is DSA's."""
    return str(augment or "").startswith("dsa")


WITHIN_REAL = ", distilled within the real range"  # the label of sets distilled with MTT / DATM's clip_to_real


def _method_label(record: dict[str, Any]) -> str | None:
    """The row name of a record in the comparison ('DC', 'PSG eps=1', 'IDC-I', 'random', 'full data, class
    weighted'...), or None for records that are not about a training set (KD, transfer learning)."""
    experiment, config = record.get("experiment", ""), record.get("config", {})
    if experiment in NOT_DISTILLATION:
        return None
    if experiment == "evaluate":  # a stored set re-evaluated under another protocol
        source = str(record.get("variant", ""))
        base = "random" if source.startswith("random") else source.split()[0]
        augment = record.get("config", {}).get("train", {}).get("augment", "")
        return f"{base}, {'DSA' if _uses_dsa(augment) else augment} evaluation"
    if experiment == "random_mnist":  # (its dsa variants: the control of sets evaluated under DSA's protocol)
        return "random, DSA evaluation" if _uses_dsa(config.get("augment")) else "random"
    if experiment == "full_data_mnist":  # DC's step decay is the published protocol; the brief's cosine is its own row
        return "full data" if config.get("lr_schedule", "step") == "step" else f"full data, {config['lr_schedule']} lr"
    if experiment == "mhist_baselines":
        baseline = config.get("baseline", "")
        if baseline == "mean_colour":
            return "mean colour, logistic regression"
        name = "full data" if baseline == "full_data" else baseline
        weighting = config.get("weighting", "plain")
        return name if weighting == "plain" else f"{name}, {weighting.replace('_', ' ')}"
    method = config.get("method")
    if method is None:
        return None
    label = METHOD_NAMES.get(method, method)
    if method == "psg":
        eps = config.get("epsilon")
        label += f" eps={'inf' if eps is None or eps == float('inf') else f'{eps:g}'}"
    if method == "idc" and config.get("factor", 2) == 1:
        label = "IDC-I"
    if config.get("init") not in (None, "real"):
        label += f", {config['init']} init"
    if (config.get("method_settings") or {}).get("clip_to_real"):  # trajectory_matching.py's settings
        label += WITHIN_REAL
    return label


def _metric(result: dict[str, Any], name: str) -> tuple[float, float]:
    mean, std = result.get("metrics_mean", {}), result.get("metrics_std", {})
    if name in mean:
        return float(mean[name]), float(std.get(name, np.nan))
    return np.nan, np.nan


def record_row(stem: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """One record as one row of the comparison (fields `REPORT_COLUMNS`; accuracies in %), or None when the record
    is not a training-set evaluation (KD, transfer learning, the quickstart)."""
    label = _method_label(record)
    result = record.get("result", {})
    if label is None or not isinstance(result, dict):
        return None
    config = record.get("config", {})
    eval_config = result.get("eval_config") or (config if record.get("experiment") == "evaluate" else {})
    distill = (result.get("distill_config") or {})
    data = result.get("data") or {}
    dataset = config.get("dataset") or distill.get("dataset") or ("mhist" if "mhist" in stem else "mnist")
    resolution = config.get("resolution") or (data.get("image_shape") or [None])[0]
    ipc = config.get("ipc") or distill.get("ipc")
    if ipc is None and record.get("experiment") == "evaluate":  # 'random_mnist ipc50_reduced set, ...'
        import re
        found = re.search(r"ipc(\d+)", str(record.get("variant", "")))
        ipc = int(found.group(1)) if found else None
    if "accuracy_mean" in result:
        mean, std = 100 * float(result["accuracy_mean"]), 100 * float(result["accuracy_std"])
    elif "test_accuracy" in result:
        mean, std = 100 * float(result["test_accuracy"]), np.nan
    elif "accuracy" in result.get("metrics_mean", {}):
        mean, std = (100 * v for v in _metric(result, "accuracy"))
    else:
        return None
    published = result.get("paper_mean_std")
    if published is None and config.get("published_mean") is not None:
        published = (config["published_mean"], np.nan)
    if published is None:
        published = BASELINES_PUBLISHED.get((label, dataset, ipc))
    published_mean, published_std = (float(published[0]), float(published[1])) if published else (np.nan, np.nan)
    start = config.get("start_images") or {}
    train = eval_config.get("train", {}) if isinstance(eval_config, dict) else {}
    variant = str(record.get("variant", ""))
    # a `--seeds` part not yet merged is some of its variant's sets: marked as reduced, its protocol says which
    part = _seed_part(stem, record) is not None
    reduced_variant = bool(record.get("reduced_protocol")) or "reduced" in variant
    reduced = reduced_variant or part
    row = {"record": stem, "method": label, "dataset": dataset,
           "resolution": resolution if dataset == "mhist" else None, "ipc": ipc, "reduced": reduced,
           "stand_in": bool(data.get("stand_in", False)),
           "sets": result.get("num_sets"), "nets": eval_config.get("num_models") or result.get("num_models")
           or config.get("models") or (1 if "test_accuracy" in result else None),
           "epochs": train.get("epochs") or config.get("epochs"),
           "mean": mean, "std": std,
           "start_mean": 100 * float(start["accuracy_mean"]) if "accuracy_mean" in start else np.nan,
           "published_mean": published_mean, "published_std": published_std, "difference": mean - published_mean,
           "wall_time_s": result.get("wall_time_s", record.get("wall_time_s")),
           "device": (result.get("device") or record.get("device") or {}).get("backend")}
    iterations = config.get("iterations")
    row["protocol"] = ("reduced" if reduced_variant else "full") + (f": {iterations} iterations" if iterations
                                                                     else "")
    if part:
        row["protocol"] += f"; part: seeds {', '.join(map(str, config.get('seeds', [])))}, not merged"
    for name in ("balanced_accuracy", "sensitivity", "specificity", "roc_auc", "f1"):
        row[name], row[f"{name}_std"] = _metric(result, name)
    return row


def _seed_part(stem: str, record: dict[str, Any]) -> str | None:
    """The variant whose `--seeds` part the record is (its name's suffix naming its seeds), or None."""
    from jaxdistill.experiment import seed_part_of
    seeds = (record.get("config") or {}).get("seeds")
    return seed_part_of(stem, seeds) if isinstance(seeds, list) else None


def _merged(stem: str, record: dict[str, Any], records: dict[str, dict[str, Any]]) -> bool:
    """Whether the record is a `--seeds` part that a merged record in `records` pooled ('dsa_mnist_ipc1_seed0',
    listed in the "parts" of 'dsa_mnist_ipc1', `pooled_part`): counted once, by the merged record."""
    from jaxdistill.experiment import pooled_part
    parent = records.get(_seed_part(stem, record) or "")
    return parent is not None and pooled_part(f"{stem}.json", record, parent)


def load_records(folder: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(name, record) of every JSON record directly under `folder`, by name, merged seed parts counted once (see
    `_merged`) and the parts of one variant not yet merged pooled (`_pool_parts`). A folder with no record at all
    is a ConfigError."""
    import json

    from jaxdistill.errors import ConfigError
    paths = sorted(Path(folder).glob("*.json"))
    if not paths:
        raise ConfigError(f"no *.json records in {folder}")
    records = {p.stem: json.loads(p.read_text()) for p in paths}
    kept = {stem: rec for stem, rec in records.items() if not _merged(stem, rec, records)}
    return sorted(_pool_parts(kept).items())


def _pool_parts(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`records` with the `--seeds` parts of one variant that no merge has pooled yet (a row run a selection or a
    distillation per session) replaced by their pool (`pool_seed_records`, what `--merge` will write once the
    parts cover the variant), named by its seeds ('x_seed0', 'x_seed1' -> 'x_seed0_1'); parts that cannot be pooled
    (another config, a seed twice) stay as they are."""
    import json

    from jaxdistill.errors import ConfigError
    from jaxdistill.experiment import pool_seed_records, seeds_suffix
    groups: dict[tuple[str, str], list[str]] = {}
    for stem, rec in records.items():
        if (name := _seed_part(stem, rec)) is not None:
            same = json.dumps([rec.get("experiment"), rec.get("variant"),
                               {k: v for k, v in rec["config"].items() if k != "seeds"}], sort_keys=True, default=str)
            groups.setdefault((name, same), []).append(stem)
    out = dict(records)
    for (name, _), stems in groups.items():
        if len(stems) < 2:
            continue
        try:
            pooled = pool_seed_records({f"{s}.json": records[s] for s in stems},
                                       command="jaxdistill report (its --seeds parts, not yet merged)")
        except ConfigError:
            continue
        for s in stems:
            del out[s]
        out[name + seeds_suffix(pooled["config"]["seeds"])] = pooled
    return out


def collect_records(folder: str | Path) -> pd.DataFrame:
    """Every dataset-distillation record (`*.json`) directly under `folder` as one row (see `record_row`), sorted by
    dataset, ipc and method. A folder with no record at all is a ConfigError."""
    rows = [row for stem, rec in load_records(folder) if (row := record_row(stem, rec)) is not None]
    df = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    rank = {name: i for i, name in enumerate(METHOD_ORDER)}
    df["_dataset"] = df["dataset"].map(lambda d: DATASET_ORDER.index(d) if d in DATASET_ORDER else len(DATASET_ORDER))
    df["_method"] = df["method"].map(lambda m: rank.get(m.split(",")[0], len(rank)))
    df["_ipc"] = df["ipc"].fillna(1e9)  # full data after every ipc
    df = df.sort_values(["_dataset", "dataset", "resolution", "_ipc", "_method", "method", "record"],
                        kind="stable")
    return df.drop(columns=["_dataset", "_method", "_ipc"]).reset_index(drop=True)


def _column_name(row) -> str:
    name = "MNIST" if row["dataset"] == "mnist" else str(row["dataset"]).upper().replace("_", "-")
    if row["dataset"] == "mhist" and row["resolution"]:
        name += f" {int(row['resolution'])} px"
    return name + (f", ipc {int(row['ipc'])}" if row["ipc"] == row["ipc"] and row["ipc"] is not None
                   else ", full data")


def _cell(row) -> str:
    """'92.12 ± 0.31 (91.7, +0.42)' for accuracy; MHIST: 'BA 0.515 ± 0.011, AUC 0.528 ± 0.015'. Marks: * a reduced
    protocol, ° a stand-in for the real data."""
    marks = ("*" if row["reduced"] else "") + ("°" if row["stand_in"] else "")
    if row["dataset"] == "mhist":
        text = f"BA {_pm(row['balanced_accuracy'], row['balanced_accuracy_std'], 3)}"
        if row["roc_auc"] == row["roc_auc"]:
            text += f", AUC {_pm(row['roc_auc'], row['roc_auc_std'], 3)}"
    else:
        text = _pm(row["mean"], row["std"], 2)
        if row["published_mean"] == row["published_mean"]:
            text += f" ({row['published_mean']:g}, {row['difference']:+.2f})"
    return text + marks


def _pm(mean: float, std: float, digits: int) -> str:
    return f"{mean:.{digits}f}" + ("" if std != std else f" ± {std:.{digits}f}")


def _picked(rows: pd.DataFrame) -> pd.DataFrame:
    """One record per (method, dataset column): the full protocol before a reduced one, then more distillations,
    then more network-epochs per set, then the last in name order."""
    if "column" not in rows:
        rows = rows.assign(column=rows.apply(_column_name, axis=1))
    df = rows.assign(_sets=rows["sets"].fillna(1),
                     _work=rows["nets"].astype(float).fillna(1) * rows["epochs"].astype(float).fillna(1))
    df = df.sort_values(["reduced", "_sets", "_work", "record"], ascending=[False, True, True, True], kind="stable")
    return df.drop_duplicates(["method", "column"], keep="last").drop(columns=["_sets", "_work"])


def comparison_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows: method; columns: dataset x ipc; cells as `_cell`. Where one method has several records for one column
    (say a reduced and a full run), the full one wins, then the one with more distillations (selections), then more
    networks x epochs per set, then the last in name order; `long_table` lists them all."""
    df = _picked(rows.assign(column=rows.apply(_column_name, axis=1), cell=rows.apply(_cell, axis=1)))
    columns = list(dict.fromkeys(rows.apply(_column_name, axis=1)))  # collect_records' order
    order = list(dict.fromkeys(rows["method"]))
    table = df.pivot(index="method", columns="column", values="cell").reindex(index=order, columns=columns)
    return table.fillna("").reset_index()


def long_table(rows: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """One line per record: method, protocol, sets x nets x epochs, accuracy (and, for MHIST, balanced accuracy,
    F1 and ROC AUC), the run's own starting images where recorded, and the published value with the difference."""
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    out = pd.DataFrame({
        "record": "`" + rows["record"] + "`",
        "method": rows["method"],
        "ipc": rows["ipc"].map(lambda v: "" if v != v or v is None else str(int(v))),
        "protocol": rows["protocol"] + rows["stand_in"].map(lambda s: ", stand-in" if s else ""),
        "sets x nets x epochs": rows.apply(
            lambda r: " x ".join("-" if v != v or v is None else str(int(v)) for v in (r["sets"], r["nets"],
                                                                                         r["epochs"])), axis=1),
        "device": rows["device"].fillna(""),
        "accuracy %": rows.apply(lambda r: _pm(r["mean"], r["std"], 2), axis=1),
        "its starting images %": rows["start_mean"].map(lambda v: "" if v != v else f"{v:.2f}"),
        "published %": rows.apply(lambda r: "" if r["published_mean"] != r["published_mean"] else
                                  _pm(r["published_mean"], r["published_std"], 1), axis=1),
        "difference": rows["difference"].map(lambda v: "" if v != v else f"{v:+.2f}"),
    })
    if dataset == "mhist":
        out = out.drop(columns=["published %", "difference"])
        out.insert(2, "px", rows["resolution"].map(lambda v: "" if v != v or v is None else str(int(v))))
        for name, title in (("balanced_accuracy", "balanced acc."), ("sensitivity", "sensitivity (SSA)"),
                            ("specificity", "specificity (HP)"), ("f1", "F1"), ("roc_auc", "ROC AUC")):
            out[title] = rows.apply(lambda r: _pm(r[name], r[f"{name}_std"], 3), axis=1)
    return out.reset_index(drop=True)


def markdown(df: pd.DataFrame) -> str:
    """A table as GitHub markdown, NaN as empty; cells are already text."""
    return df.fillna("").astype(str).to_markdown(index=False, disable_numparse=True) + "\n"


def training_cost_table(rows: pd.DataFrame, records: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    """Training on a distilled MNIST set against training on the full training set: images, epochs, the training
    FLOPs (3 x XLA's forward FLOPs per image x images x epochs, the ConvNet's forward count taken from a full-data
    record's cost) and the measured wall seconds per network (training and testing, on the record's device), beside
    the test accuracy. One line per method and ipc of the comparison (its picked record; by ipc, then in the
    comparison's order of methods) and one per full-data record."""
    by_name = dict(records)
    forward = next((r["result"]["cost"]["forward_flops_per_image"] for _, r in records
                    if r.get("experiment") == "full_data_mnist" and "cost" in r.get("result", {})), None)
    lines = []
    mnist = rows[(rows["dataset"] == "mnist") & rows["ipc"].notna()]
    for _, row in _picked(mnist).sort_index().iterrows():  # collect_records' order: ipc, then the methods' order
        per_set = by_name[row["record"]].get("result", {}).get("per_set") or []
        images = per_set[0].get("num_train_images") if per_set else None
        networks = sum(len(p.get("accuracies", [])) for p in per_set)
        seconds = sum(p.get("wall_time_s", 0.0) for p in per_set) / networks if networks else np.nan
        lines.append((row["record"], f"{row['method']}, ipc {int(row['ipc'])}", images, row["epochs"], seconds,
                      row["mean"], row["reduced"], row["device"]))
    for stem, rec in records:
        if rec.get("experiment") != "full_data_mnist":
            continue
        result, config = rec["result"], rec.get("config", {})
        schedule = config.get("lr_schedule", "step")
        lines.append((stem, f"full data ({schedule} lr)", result.get("num_train_images", 60000), config.get("epochs"),
                      result.get("wall_time_s"), 100 * result["test_accuracy"],
                      bool(rec.get("reduced_protocol")), (result.get("device") or {}).get("backend")))
    out = []
    for stem, what, images, epochs, seconds, acc, reduced, device in lines:
        flops = 3 * forward * images * epochs if forward and images and epochs else np.nan
        out.append({"record": f"`{stem}`", "training set": what + ("*" if reduced else ""),
                    "images": "" if images is None else str(int(images)),
                    "epochs": "" if epochs is None else str(int(epochs)),
                    "training FLOPs": "" if flops != flops else f"{flops:.3g}",
                    "seconds per network": "" if seconds is None or seconds != seconds else f"{seconds:.1f}",
                    "device": device or "",
                    "accuracy %": f"{acc:.2f}"})
    return pd.DataFrame(out)


def cross_architecture_table(records: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    """One row per cross-architecture record (`experiments/cross_architecture.py`): the method and ipc whose
    ConvNet-learned set was evaluated, and per architecture the test accuracy in % (mean ± std over networks);
    `*` marks a reduced protocol, "partial: k of n" a record whose run has evaluated only k of its n architectures
    so far (the others blank)."""
    rows = []
    for stem, rec in records:
        if rec.get("experiment") != "cross_architecture":
            continue
        config, result = rec.get("config", {}), rec.get("result", {})
        reduced = bool(rec.get("reduced_protocol")) or "reduced" in str(rec.get("variant", ""))
        name = METHOD_NAMES.get(config.get("method"), config.get("method"))
        epsilons = sorted({float(c["epsilon"]) for c in config.get("method_configs") or [] if c and "epsilon" in c})
        if epsilons:  # PSG's sets: their privacy budget tells them apart
            name += " ε = " + "/".join("∞" if math.isinf(e) else f"{e:g}" for e in epsilons)
        if _uses_dsa(config.get("augment")):  # the *_dsa_eval control, whatever the method
            name += ", DSA evaluation"
        if config.get("protocol") and config["protocol"] != config.get("method"):  # *_idc_protocol, not IDC's own
            name += f", {config['protocol'].upper()} protocol"
        if config.get("lr") is not None:  # a fixed evaluation lr instead of the set's own (*_lr<value> variants)
            name += f", lr {config['lr']:g}"
        if config.get("clip"):  # the set's pixels clipped to the real images' range (*_clip variants)
            name += ", clipped to the real range"
        if any(c and c.get("clip_to_real") for c in config.get("method_configs") or []):
            name += WITHIN_REAL
        # a run stopped between architectures: its blank cells are to come
        done, left = len(result.get("architectures", {})), len(result.get("architectures_left") or [])
        row = {"record": f"`{stem}`", "set": f"{name}, ipc {config.get('ipc')}" + ("*" if reduced else "")
               + (f" (partial: {done} of {done + left})" if left else ""),
               "nets x epochs": f"{config.get('models')} x {config.get('epochs')}"}
        for arch, r in result.get("architectures", {}).items():
            row[arch] = _pm(100 * r["accuracy_mean"], 100 * r["accuracy_std"], 2)
            row[f"_{arch}"] = 100 * r["accuracy_mean"]
        rows.append(row)
    table = pd.DataFrame(rows)
    # Architecture columns in the papers' order (CROSS_ARCHITECTURES), others after by name, so the columns do not
    # depend on which record comes first or which architectures a partial record has reached.
    from jaxdistill.models import CROSS_ARCHITECTURES
    rank = {a: i for i, a in enumerate(CROSS_ARCHITECTURES)}
    archs = sorted((c[1:] for c in table.columns if c.startswith("_")), key=lambda a: (rank.get(a, len(rank)), a))
    fixed = [c for c in ("record", "set", "nets x epochs") if c in table.columns]
    return table[fixed + archs + [f"_{a}" for a in archs]]


def plot_cross_architecture(table: pd.DataFrame, path: str | Path) -> Path:
    """Heat map of `cross_architecture_table`: sets (rows) x evaluation architectures (columns), mean accuracy."""
    from jaxdistill.visualize import _pyplot, _save
    plt = _pyplot()
    archs = [c[1:] for c in table.columns if c.startswith("_")]
    values = table[[f"_{a}" for a in archs]].to_numpy(float)
    fig, ax = plt.subplots(figsize=(1.2 * len(archs) + 2.5, 0.5 * len(table) + 1.5))
    ax.imshow(values, cmap="viridis", vmin=np.nanmin(values) - 5, vmax=100, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if v == v:
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8, color="white" if v < 80 else "black")
    ax.set_xticks(range(len(archs)), labels=archs, fontsize=8)
    ax.set_yticks(range(len(table)), labels=list(table["set"]), fontsize=8)
    ax.set_xlabel("evaluated with")
    ax.set_title("sets learned with the ConvNet: test accuracy (%) by architecture (* reduced)", fontsize=9)
    return _save(fig, plt, path)


README_BLOCKS = {
    "comparison_mnist": lambda rows: markdown(comparison_table(rows[rows["dataset"] == "mnist"])),
    "comparison_mhist": lambda rows: markdown(comparison_table(rows[rows["dataset"] == "mhist"])),
    "mnist": lambda rows: markdown(long_table(rows, "mnist")),
    "mhist": lambda rows: markdown(long_table(rows, "mhist")),
}


def readme_blocks(rows: pd.DataFrame, records: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, str]:
    """The generated README tables, by block name; each sits between `<!-- report:NAME -->` and
    `<!-- /report:NAME -->` in README.md. `records` (`load_records`) adds the cross-architecture table and the
    knowledge-distillation tables of the KD records it holds (`kd_readme_blocks`)."""
    blocks = {name: make(rows) for name, make in README_BLOCKS.items()}
    if records is not None:
        blocks["training_cost"] = markdown(training_cost_table(rows, records))
        table = cross_architecture_table(records)
        blocks["cross_architecture"] = (markdown(table[[c for c in table.columns if not c.startswith("_")]])
                                        if len(table) else "No cross-architecture record yet.\n")
        blocks.update(kd_readme_blocks(records))
    return blocks


def update_readme(text: str, blocks: dict[str, str]) -> str:
    """`text` with every generated block replaced by its new content. A block name the text lacks, or a block
    with no end marker, is a ValueError (the README and the report must agree on which tables are generated)."""
    import re
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- report:{name} -->\n).*?(<!-- /report:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no block <!-- report:{name} --> ... <!-- /report:{name} -->")
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)
    return text


def plot_accuracy_vs_ipc(rows: pd.DataFrame, dataset: str, path: str | Path) -> Path:
    """Test accuracy (MHIST: balanced accuracy) against images per class, one line per method, mean +- std over
    networks; hollow markers are reduced protocols."""
    from jaxdistill.visualize import _pyplot, _save
    plt = _pyplot()
    rows = rows[(rows["dataset"] == dataset) & rows["ipc"].notna()]
    key = "balanced_accuracy" if dataset == "mhist" else "mean"
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, group in rows.groupby("method", sort=False):
        group = group.sort_values("ipc").drop_duplicates("ipc", keep="first")
        y = group[key] * (100 if dataset == "mhist" else 1)
        err = group[f"{key}_std" if dataset == "mhist" else "std"] * (100 if dataset == "mhist" else 1)
        (line,) = ax.plot(group["ipc"], y, lw=1, label=method)
        for x, m, e, red in zip(group["ipc"], y, err, group["reduced"]):
            ax.errorbar([x], [m], yerr=[e], marker="o", color=line.get_color(), capsize=3,
                        mfc="white" if red else line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("images per class (stored)")
    ax.set_ylabel(("balanced accuracy" if dataset == "mhist" else "test accuracy") + " (%)")
    ax.set_title(f"{dataset}: accuracy against images per class (hollow: reduced protocol)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, plt, path)


def figure_montage(paths: list[Path], titles: list[str], path: str | Path, width: float = 8.0) -> Path:
    """Stack existing PNG figures (say every method's synthetic-image grid) one above another in one PNG, each at
    the same width and its own aspect ratio, titled."""
    from jaxdistill.visualize import _pyplot, _save
    plt = _pyplot()
    images = [plt.imread(str(p)) for p in paths]
    heights = [width * im.shape[0] / im.shape[1] for im in images]
    fig, axes = plt.subplots(len(images), 1, figsize=(width, sum(heights) + 0.3 * len(images)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, im, title in zip(axes[:, 0], images, titles):
        ax.imshow(im)
        ax.axis("off")
        ax.set_title(title, fontsize=9)
    return _save(fig, plt, path)


def _record_figure(figures: Path, stem: str, suffix: str) -> Path | None:
    """The figure an experiment wrote for a record: `<stem><suffix>`, or under the record's name without its last
    qualifier (`dc_mnist_ipc1_gpu` -> `dc_mnist_ipc1_seed0.png`)."""
    for name in (stem, stem.rsplit("_", 1)[0]):
        if (figures / f"{name}{suffix}").is_file():
            return figures / f"{name}{suffix}"
    return None


def write_report(results: str | Path, out: str | Path) -> dict[str, Path]:
    """Write the comparison (comparison.md/.csv), the per-record tables (records.csv, mnist.md, mhist.md) and the
    figures (accuracy against ipc per dataset, synthetic-set and loss-curve montages from the records' figures,
    MHIST confusion matrices) into `out`; returns the written paths by name."""
    from jaxdistill.visualize import plot_confusion_matrix, plot_roc
    results, out = Path(results), Path(out)
    rows = collect_records(results)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    rows.to_csv(out / "records.csv", index=False)
    written["records"] = out / "records.csv"
    comparison = comparison_table(rows)
    comparison.to_csv(out / "comparison.csv", index=False)
    (out / "comparison.md").write_text(markdown(comparison))
    written["comparison"] = out / "comparison.md"
    for dataset in sorted(rows["dataset"].unique()):
        (out / f"{dataset}.md").write_text(markdown(long_table(rows, dataset)))
        written[f"{dataset}_table"] = out / f"{dataset}.md"
        written[f"{dataset}_accuracy_vs_ipc"] = plot_accuracy_vs_ipc(rows, dataset,
                                                                     out / f"{dataset}_accuracy_vs_ipc.png")
    figures = results / "figures"
    for dataset, ipc in rows[rows["ipc"].notna()][["dataset", "ipc"]].drop_duplicates().itertuples(index=False):
        sel = rows[(rows["dataset"] == dataset) & (rows["ipc"] == ipc)]
        for kind, suffix in (("sets", "_seed0.png"), ("loss", "_loss.png")):
            found = [(f, m) for r, m in zip(sel["record"], sel["method"])
                     if (f := _record_figure(figures, r, suffix)) is not None]
            if found:
                name = f"{dataset}_ipc{int(ipc)}_{kind}"
                written[name] = figure_montage([p for p, _ in found], [m for _, m in found], out / f"{name}.png")
    records = load_records(results)
    (out / "training_cost.md").write_text(markdown(training_cost_table(rows, records)))
    written["training_cost"] = out / "training_cost.md"
    by_name = dict(records)
    for suffix in ("", "_reduced"):
        kd_runs = {label: by_name[f"kd_mnist_{stem}{suffix}"]["result"] for label, stem in
                   (("Hinton", "course"), ("DKD", "course_dkd")) if f"kd_mnist_{stem}{suffix}" in by_name}
        if kd_runs:
            written[f"kd_course{suffix}"] = plot_kd_methods(kd_runs, out / f"kd_course{suffix}_temperature.png")
    cross = cross_architecture_table(records)
    if len(cross):
        cross[[c for c in cross.columns if not c.startswith("_")]].to_csv(out / "cross_architecture.csv", index=False)
        written["cross_architecture"] = plot_cross_architecture(cross, out / "cross_architecture.png")
    roc: dict[int, dict[str, tuple]] = {}
    mhist = rows[rows["dataset"] == "mhist"]
    for stem, method, ipc in zip(mhist["record"], mhist["method"], mhist["ipc"]):
        result = by_name[stem]["result"]
        counts = result.get("confusion_matrix_total")
        if counts:
            written[f"{stem}_confusion"] = plot_confusion_matrix(counts, ("HP", "SSA"),
                                                                 out / "mhist_confusion" / f"{stem}.png", title=stem)
        curve = mean_roc(result)
        if curve is not None and ipc == ipc:
            roc.setdefault(int(ipc), {})[f"{method} ({stem})"] = curve
    for ipc, curves in sorted(roc.items()):
        written[f"mhist_ipc{ipc}_roc"] = plot_roc(curves, out / f"mhist_ipc{ipc}_roc.png",
                                                 title=f"MHIST ipc {ipc}: ROC, mean over networks (SSA positive)")
    return written


def mean_roc(result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(false positive rates, mean true positive rates) of a record whose networks kept `roc_tpr` (the ROC curve read
    at `metrics.ROC_FPR_GRID`), with the curve's (0, 0) start; None for records made before that metric."""
    from jaxdistill.metrics import ROC_FPR_GRID
    tpr = result.get("metrics_mean", {}).get("roc_tpr")
    if tpr is None or len(tpr) != len(ROC_FPR_GRID):
        return None
    return np.r_[0.0, ROC_FPR_GRID], np.r_[0.0, np.asarray(tpr, float)]


# ---- knowledge-distillation tables of the README (from the `kd_mnist` records) ----

# Hinton et al. 2015, section 3 (omitted 3s): not in any record, since no run of ours produced them
HINTON_OMITTED3_PAPER = ("206", "877", "996 right; 109 errors (shift 3.5, chosen on the test set)")


def _errors(rec: dict[str, Any], seeds: bool = False) -> str:
    """'93.0 ± 4.3' for a role's test errors over seeds; `seeds` appends them: '(89, 88, 98, 98, 92)'."""
    e = np.asarray(rec["test_errors"], float)
    text = _pm(e.mean(), e.std(), 1)
    return text + (f" ({', '.join(str(int(v)) for v in e)})" if seeds else "")


def _kd_students(record: dict[str, Any]) -> pd.DataFrame:
    """The KD students of a record's sweep (`kd_table` rows) with their cell text, 'mean ± std' of test errors."""
    df = kd_table(record["result"])
    df = df[df["network"].str.startswith("student + ")]
    return df.assign(cell=[_pm(m, s, 1) for m, s in zip(df["errors_mean"], df["errors_std"])])


def _bold_lowest(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with the cell of the lowest mean test errors in bold (the first, on a tie)."""
    best = df["errors_mean"].idxmin()
    return df.assign(cell=[f"**{c}**" if i == best else c for i, c in zip(df.index, df["cell"])])


def kd_sweep_block(record: dict[str, Any]) -> str:
    """A temperature x alpha sweep: one row per alpha, one column per T, test errors mean ± std, the best bold."""
    df = _bold_lowest(_kd_students(record))
    table = df.pivot(index="alpha", columns="T", values="cell").fillna("")
    table.index = [f"KD, alpha = {a:g}" for a in table.index]
    table.columns = [f"T = {t:g}" for t in table.columns]
    return markdown(table.rename_axis("").reset_index())


def kd_losses_block(records: dict[str, dict[str, Any]]) -> str:
    """Students of one study under several KD losses (label -> record), one row each, a column per T: test errors
    mean ± std and the z of the gain over the student alone; the lowest mean bold."""
    df = pd.concat([_kd_students(record).assign(label=label) for label, record in records.items()],
                   ignore_index=True).drop_duplicates(["label", "T"], keep="last")  # one alpha per T: the last
    df = _bold_lowest(df.assign(cell=[f"{c} (z {z:.1f})" for c, z in zip(df["cell"], df["z"])]))
    table = df.pivot(index="label", columns="T", values="cell").reindex(list(records)).fillna("")
    table.columns = [f"T = {t:g}" for t in table.columns]
    return markdown(table.rename_axis("").reset_index())


def kd_costs_block(record: dict[str, Any]) -> str:
    """Parameters, forward FLOPs and CPU latency per image of a KD study's teacher and student (`costs`)."""
    rows = []
    for role in ("teacher", "student"):
        c = record["result"]["costs"][role]
        lat = c["latency_s_per_image"]
        rows.append({"network": f"{role}, `{c['model']}`", "parameters": f"{c['params']:,}",
                     "forward FLOPs per image (XLA)": f"{c['forward_flops_per_image'] / 1e6:.2f} M",
                     f"{c['latency_device'].upper()} latency per image, batch 1 / 128":
                         f"{1e3 * lat['1']:.2g} ms / {1e3 * lat['128']:.2g} ms"})
    return markdown(pd.DataFrame(rows))


def kd_hinton_block(records: dict[str, dict[str, Any]]) -> str:
    """Hinton's MLPs, one row per variant (name -> record, the full protocol first) after the paper's: teacher,
    student alone and KD student test errors (mean ± std, then per seed) and the KD gain with its z."""
    paper = next(iter(records.values()))["config"]["paper_test_errors"]
    rows = [{"variant": "paper (Hinton et al. 2015)", "teacher": str(paper["teacher"]),
             "student alone": str(paper["student_alone"]), "KD student": str(paper["student_kd"]),
             "KD gain (z)": str(paper["student_alone"] - paper["student_kd"])}]
    for variant, record in records.items():
        cfg, res = record["config"], record["result"]
        sig = res["student_kd"]["significance_vs_alone"]
        rows.append({
            "variant": f"`{variant}`: {'reduced' if record.get('reduced_protocol') else 'full protocol'}, teacher "
                       f"{cfg['teacher']['train']['epochs']} epochs, students {cfg['student']['train']['epochs']}",
            "teacher": _errors(res["teacher"], seeds=True), "student alone": _errors(res["student_alone"], seeds=True),
            "KD student": _errors(res["student_kd"], seeds=True),
            "KD gain (z)": f"{sig['difference']:.1f} ± {sig['standard_error']:.1f} ({sig['z']:.1f})"})
    return markdown(pd.DataFrame(rows))


def kd_selection_block(record: dict[str, Any]) -> str:
    """The held-out errors of each lr / schedule candidate for the student alone and the KD student (`selection`
    of a record whose students chose theirs, `KDConfig.select`); the chosen one bold, chance-level ones marked."""
    sel = record["result"]["selection"]
    names = [", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in c.values()) for c in sel["candidates"]]
    rows = []
    for role, label in (("alone", "student alone"), ("kd", f"KD student (T = {record['config']['temperature']:g}, "
                                                          f"alpha = {record['config']['alpha']:g})")):
        row = {"": label}
        for i, (name, errors) in enumerate(zip(names, sel[role]["held_out_errors"])):
            text = f"{np.mean(errors):.0f}" + (" (diverged)" if np.mean(errors) > 0.8 * sel["holdout"] else "")
            row[name] = f"**{text}**" if i == sel[role]["chosen"] else text
        rows.append(row)
    header = " / ".join(sel["candidates"][0])
    return markdown(pd.DataFrame(rows).rename(columns={"": header}))


def kd_probe_block(record: dict[str, Any]) -> str:
    """Held-out errors of each teacher lr of a probe record (`--variant hinton_teacher_probe`), the chosen bold."""
    res = record["result"]
    cells = {f"{r['lr']:g}": (f"**{r['held_out_errors']}**" if r["lr"] == res["chosen_lr"] else
                              str(r["held_out_errors"])) for r in res["rows"]}
    return markdown(pd.DataFrame([{"teacher lr": f"held-out errors (of {res['holdout']:,})", **cells}]))


def kd_omitted_block(record: dict[str, Any]) -> str:
    """Students whose transfer set omits one class: test errors, the omitted class's test images right before and
    after the bias correction chosen on held-out data, and the paper's row."""
    res = record["result"]
    rows = []
    for role, label in (("student_alone", "student alone"), ("student_kd", "KD student")):
        r = res[role]
        right = np.asarray(r["omitted_correct_after"], float)
        shifts = np.asarray(r["bias_shift"], float)
        rows.append({"": label, "test errors": _errors(r),
                     f"test {r['omitted_class']}s right (of {r['omitted_test_examples']})":
                         _pm(np.mean(r["omitted_correct_before"]), np.std(r["omitted_correct_before"]), 1),
                     "after the bias correction":
                         f"{_pm(right.mean(), right.std(), 1)} right; "
                         f"{_errors({'test_errors': r['test_errors_after_shift']})} errors "
                         f"(shift {shifts.min():g}-{shifts.max():g})"})
    rows.append(dict(zip(rows[0], ("paper (Hinton et al.)", *HINTON_OMITTED3_PAPER))))
    return markdown(pd.DataFrame(rows))


def kd_readme_blocks(records: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """The README's knowledge-distillation tables from the `kd_mnist` records present in `records`."""
    kd = {rec.get("variant"): rec for _, rec in records if rec.get("experiment") == "kd_mnist"}
    blocks = {}
    if "convnet_small" in kd:
        blocks["kd_convnet_small"] = kd_sweep_block(kd["convnet_small"])
    if "omitted3" in kd:
        blocks["kd_omitted3"] = kd_omitted_block(kd["omitted3"])
    hinton = {v: kd[v] for v in ("hinton", "hinton_reduced", "hinton_reduced_30ep") if v in kd}
    if hinton:
        blocks["kd_hinton"] = kd_hinton_block(hinton)
    if "selection" in kd.get("hinton", {}).get("result", {}):
        blocks["kd_hinton_selection"] = kd_selection_block(kd["hinton"])
    if "hinton_teacher_probe" in kd:
        blocks["kd_hinton_teacher_probe"] = kd_probe_block(kd["hinton_teacher_probe"])
    course = {label: kd[v] for label, v in (("Hinton KD", "course"), ("Decoupled KD", "course_dkd")) if v in kd}
    if course:
        blocks["kd_course"] = kd_losses_block(course)
    if "costs" in kd.get("course", {}).get("result", {}):
        blocks["kd_course_costs"] = kd_costs_block(kd["course"])
    return blocks
