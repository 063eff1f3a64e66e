"""Tables (pandas: markdown and CSV) and figures (matplotlib PNG) from run records."""
from __future__ import annotations

from pathlib import Path
from typing import Any

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
    for rec in record["sweep"]:
        row("student + KD", rec["temperature"], rec["alpha"], rec)
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
