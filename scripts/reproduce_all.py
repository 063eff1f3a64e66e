"""Every results row of the project as one resumable list: `--smoke` runs each experiment's smoke variant (CI runs
it); the default lists the full-protocol rows with their expected durations; `--run` runs the rows whose record is
missing, most informative for a GPU first with `--gpu-order`.

    python scripts/reproduce_all.py --smoke                 # every experiment end to end in minutes (CI)
    python scripts/reproduce_all.py                         # the list: row, command, expected CPU / GPU time
    python scripts/reproduce_all.py --run --gpu-order       # run the missing full rows, GPU priorities first
    python scripts/reproduce_all.py --run --only dc_mnist   # rows whose record name holds these whole words
    python scripts/reproduce_all.py --run --row coreset_random_mnist_ipc1   # exactly this row
    bash scripts/reproduce_all.sh ...                       # the same

Durations are estimates from measured step times (this 2-core CPU; one H100 where a row ran there), labelled
'not measured' where no step of that row has been timed. Rows resume: a finished row's record under results/ is
skipped (unless it distilled fewer sets than its variant now asks for, or is a cross-architecture record of only
some architectures: 'partial'), and an interrupted experiment resumes from its workdir under runs/ (a
cross-architecture one also from its record, which holds each architecture as soon as it is done). A row begun as
`--seeds` parts (results/<record>_seed<S>.json, some of its seeds per session) runs each of its other seeds as a
part, then `--merge`; parts that the row's record did not pool (a row run again, its old parts rewritten) count.
MHIST rows need the real data (`--mhist DIR`, never downloaded); the smoke run makes a small
stand-in for them.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
RUNNER = [sys.executable, "-m", "jaxdistill.experiment"]
EXPERIMENTS = ROOT / "experiments"


class Row(NamedTuple):
    record: str  # results/<record>.json
    args: tuple[str, ...]  # experiment and flags, without --variant
    variant: str
    cpu: str  # expected duration on this 2-core CPU
    gpu: str  # expected duration on one GPU
    gpu_priority: int = 9  # 1 = most informative to spend a GPU on (the rows reduced today)
    mhist: bool = False
    after: str | None = None  # the row whose run folder, runs/<after>, holds the sets this row evaluates


# Bases of the estimates: DC 5.7 s / ipc-1 iteration and 168 s / ipc-10 iteration on this CPU, 0.018 s and 0.54 s on
# an H100 (README, Performance); DC ipc 1 full on the H100 took 223 s in all (results/dc_mnist_ipc1_gpu.json); DSA
# ipc 1 full took 5060 s per seed here (results/dsa_mnist_ipc1.json); 20 evaluation networks x 1000 epochs on 10
# images took 1679 s here (results/random_mnist_ipc1.json), 902-979 s with later code
# (results/coreset_random_mnist_ipc1_seed*.json); IDC 273 s / ipc-1 and about 538 s / ipc-10 outer iteration
# here (results/bench/idc_cpu_ipc1.json, idc_cpu_ipc10.json); an MNIST expert epoch 4 min here
# (experiments/trajectory_matching.py).
CORESETS = ("random", "herding", "kcenter")
ROWS = [
    Row("dc_mnist_ipc10", ("gradient_matching", "--method", "dc"), "ipc10", "~235 h (5 x 1000 x 168 s)",
        "~50 min (5 x 1000 x 0.54 s, + evaluation)", 1),
    Row("dsa_mnist_ipc10", ("gradient_matching", "--method", "dsa"), "ipc10", "~250 h", "~60 min (not measured: DC's"
        " step plus augmentation)", 2),
    Row("mtt_mnist_ipc1", ("trajectory_matching", "--method", "mtt"), "ipc1", "~330 h (experts: 100 x 50 epochs "
        "x 4 min)", "not measured (experts dominate)", 3),
    Row("datm_mnist_ipc1", ("trajectory_matching", "--method", "datm"), "ipc1", "~330 h (MTT's experts)",
        "not measured (shares MTT's experts)", 4),
    # the 3 x 20 record of the H100 run, results/dc_mnist_ipc1_gpu.json, is named for its device; this row is the
    # reference's 5 x 20
    Row("dc_mnist_ipc1", ("gradient_matching", "--method", "dc"), "ipc1", "~10 h (5 x 1000 x 5.7 s + 100 nets)",
        "~6 min (3 sets took 223 s on an H100)"),
    Row("dsa_mnist_ipc1", ("gradient_matching", "--method", "dsa"), "ipc1", "~9 h (5 x (5060 s + 26 min of "
        "evaluation), measured per seed)",
        "not measured (~8 min by DC's)"),
    Row("dc_mnist_ipc50", ("gradient_matching", "--method", "dc"), "ipc50", "not measured (> 500 h)",
        "not measured", 5),
    Row("idc_mnist_ipc1", ("idc",), "ipc1", "~450 h (3 x 2000 x 273 s)", "not measured", 6),
    Row("idc_mnist_ipc10", ("idc",), "ipc10", "~900 h (3 x 2000 x 538 s, estimated)",
        "~3 h (estimate from DC's CPU / GPU ratio)", 7),
    Row("psg_mnist_eps10_ipc1", ("psg", "--epsilon", "10"), "ipc1", "~5 h (PSG's step ~1.8 x DC's)",
        "not measured", 8),
    Row("psg_mnist_eps1_ipc1", ("psg", "--epsilon", "1"), "ipc1", "~5 h", "not measured", 8),
    Row("coreset_random_mnist_ipc1", ("coreset_mnist", "--selection", "random"), "ipc1",
        "~77 min (5 x 902-979 s, measured per selection: 20 nets)", "not measured (minutes)"),
    Row("coreset_herding_mnist_ipc1", ("coreset_mnist", "--selection", "herding"), "ipc1",
        "~80 min (5 x 926-1080 s, measured per selection: its feature network and 20 nets)",
        "not measured (minutes)"),
    Row("coreset_kcenter_mnist_ipc1", ("coreset_mnist", "--selection", "kcenter"), "ipc1", "~80 min (as herding's)",
        "not measured (minutes)"),
    *(Row(f"coreset_{sel}_mnist_ipc10", ("coreset_mnist", "--selection", sel), "ipc10",
          "~10 h (the reduced row: 15 nets x 100 epochs in 530 s)", "not measured") for sel in CORESETS),
    *(Row(f"coreset_{sel}_mnist_ipc50", ("coreset_mnist", "--selection", sel), "ipc50",
          "~45 h (the reduced row: 15 nets x 20 epochs in 490 s)", "not measured") for sel in CORESETS),
    Row("cross_architecture_dc_mnist_ipc1", ("cross_architecture", "--method", "dc"), "ipc1",
        "~85 h (5 DC distillations ~8 h; the reduced row's 6 x 5 nets x 300 epochs took ~70 min, the full one trains "
        "67x the network-epochs; ResNet-18 and VGG11 dominate)",
        "not measured"),
    Row("cross_architecture_dc_mnist_ipc10", ("cross_architecture", "--method", "dc"), "ipc10",
        "~370 h (5 DC ipc-10 distillations ~230 h; the reduced row's evaluation, 6 x 5 nets x 300 epochs, took "
        "124 min, the full one trains 67x the network-epochs: ~140 h)", "not measured"),
    Row("cross_architecture_dsa_mnist_ipc1", ("cross_architecture", "--method", "dsa"), "ipc1",
        "~52 h (5 DSA distillations ~7 h at 5060 s each; the reduced evaluation of the committed seed-0 set took "
        "41 min, the full one trains 67x the network-epochs: ~45 h)", "not measured"),
    Row("cross_architecture_dsa_mnist_ipc10", ("cross_architecture", "--method", "dsa"), "ipc10",
        "~375 h (5 DSA ipc-10 distillations ~250 h; the reduced evaluation took 112 min, the full one ~125 h)",
        "not measured"),
    *(Row(f"cross_architecture_{sel}_mnist_ipc1", ("cross_architecture", "--method", sel), "ipc1",
          "~40 h (5 selections x 20 nets x 1000 epochs per architecture, 67x the network-epochs of the reduced "
          "ipc-1 coreset rows, 31-37 min each when run alone)", "not measured") for sel in CORESETS),
    *(Row(f"cross_architecture_{sel}_mnist_ipc10", ("cross_architecture", "--method", sel), "ipc10",
          "~110-130 h (67x the network-epochs of the reduced ipc-10 rows: random 99, herding 101, k-center 114 min)",
          "not measured")
      for sel in CORESETS),
    Row("cross_architecture_random_mnist_ipc1_dsa_eval", ("cross_architecture", "--method", "random"), "ipc1_dsa_eval",
        "~26 h (the control of MTT and DATM: 5 selections x 20 nets x 1000 epochs per architecture, 67x the reduced "
        "row's network-epochs, which took 23 min)", "not measured"),
    Row("cross_architecture_random_mnist_ipc10_dsa_eval", ("cross_architecture", "--method", "random"),
        "ipc10_dsa_eval", "~125 h (the control of DSA's ipc-10 row: 67x the network-epochs of the DSA ipc-10 reduced "
        "row, which took 112 min)", "not measured"),
    Row("cross_architecture_dc_mnist_ipc1_idc_protocol", ("cross_architecture", "--method", "dc"),
        "ipc1_idc_protocol", "~41 h (the DC row's sets by IDC's protocol, the comparison that tells IDC's set from its "
        "protocol: 5 DC distillations ~8 h; the reduced row's evaluations took 29 min, the full one trains 67x the "
        "network-epochs)", "not measured"),
    Row("kd_mnist_hinton_teacher_probe", ("kd_mnist",), "hinton_teacher_probe", "~15 min (4 nets x 30 epochs on "
        "10,000 images)", "not measured (minutes)"),
    Row("kd_mnist_hinton", ("kd_mnist",), "hinton", "~4 h (Hinton's table, 5 seeds: 5 teachers x 200 epochs at "
        "~9 s, 12 one-seed selection students and 2 groups of 5 students, 60 epochs each)", "not measured"),
    Row("kd_mnist_course", ("kd_mnist",), "course", "~1 h (5 ConvNet teachers x 12 epochs, ~10 min each)",
        "not measured (minutes)"),
    Row("kd_mnist_course_dkd", ("kd_mnist",), "course_dkd", "~10 min (the course teachers, shared)",
        "not measured (minutes)"),
    Row("continual_mnist_ipc10", ("continual_mnist",), "ipc10", "~10 h (the width-32, 2-epoch reduced row took 70 min "
        "beside other jobs; width 128 is ~10x the compute, 5 epochs 2.5x the steps)", "not measured"),
    Row("full_data_mnist_full", ("full_data_mnist",), "full", "45 min (measured: 20 epochs in 2726 s)", "minutes"),
    Row("dc_mhist_ipc10", ("gradient_matching", "--method", "dc", "--dataset", "mhist"), "ipc10",
        "~230 h (5 x 1000 x 167 s / iteration at 64 px)", "not measured", 9, mhist=True),
    # The rest of the rows whose reduced or partial records are committed (tests/test_reproduce_all.py checks that
    # every record's full-protocol command is a row here).
    Row("dc_mnist_noise_ipc1", ("gradient_matching", "--method", "dc", "--init", "noise"), "ipc1",
        "~12.5 h (the real-initialised row's ~10 h, plus 100 networks on the starting noise)",
        "~6 min (as the real-initialised row)"),
    Row("dsa_mnist_ipc50", ("gradient_matching", "--method", "dsa"), "ipc50", "not measured (> 500 h, as DC's)",
        "not measured"),
    Row("mtt_mnist_ipc10", ("trajectory_matching", "--method", "mtt"), "ipc10", "~330 h (the ipc-1 row's experts, "
        "shared; the 5000 iterations not measured at full size)", "not measured (experts dominate)"),
    Row("datm_mnist_ipc10", ("trajectory_matching", "--method", "datm"), "ipc10", "~330 h (MTT's experts, shared)",
        "not measured (shares MTT's experts)"),
    Row("psg_mnist_epsinf_ipc1", ("psg", "--epsilon", "inf"), "ipc1", "~5 h", "not measured", 8),
    *(Row(f"psg_mnist_eps{eps}_ipc10", ("psg", "--epsilon", eps), "ipc10", "~250 h (3 x 1000 iterations; PSG's step "
          "~1.8 x DC's 168 s at ipc 10)", "not measured") for eps in ("10", "1", "inf")),
    Row("random_mnist_ipc1", ("random_mnist",), "ipc1", "28 min (measured)", "not measured (minutes)"),
    Row("random_mnist_ipc1_dsa_eval", ("random_mnist",), "ipc1_dsa_eval", "28 min (measured)",
        "not measured (minutes)"),
    Row("random_mnist_ipc10", ("random_mnist",), "ipc10", "~4.5 h (the reduced row: 20 nets x 100 epochs in 26 min)",
        "not measured"),
    Row("random_mnist_ipc50", ("random_mnist",), "ipc50", "~20 h (the reduced row: 20 nets x 20 epochs in 24 min)",
        "not measured"),
    Row("full_data_mnist_cosine", ("full_data_mnist",), "cosine", "47 min (measured: 20 epochs in 2817 s)",
        "minutes"),
    Row("kd_mnist_convnet_small", ("kd_mnist",), "convnet_small", "7 min (measured)", "not measured (minutes)"),
    Row("kd_mnist_omitted3", ("kd_mnist",), "omitted3", "6 min (measured; shares the convnet_small teachers)",
        "not measured (minutes)"),
    # Cross-architecture rows of the methods cross_architecture.py does not distil itself: the sets of the method's
    # full row (`after`, in its run folder runs/<after>), 3 sets x 20 networks x 1000 epochs per architecture
    # (40x the network-epochs of the reduced rows) after that row.
    *(Row(f"cross_architecture_{m}_mnist_ipc{ipc}", ("cross_architecture", "--method", m, "--distilled",
                                                     f"runs/{m}_mnist_ipc{ipc}"), f"ipc{ipc}", cpu, "not measured",
          after=f"{m}_mnist_ipc{ipc}")
      for m, ipc, cpu in (("mtt", 1, "~26 h after the MTT row (its reduced row's evaluation took 39 min)"),
                          ("datm", 1, "~23 h after the DATM row (its reduced row's evaluation took 35 min)"),
                          ("idc", 1, "~41 h after the IDC row (its reduced row's evaluation took 61 min)"),
                          ("mtt", 10, "~65-85 h after the MTT row (40x the reduced ipc-10 evaluations' 99-124 min)"),
                          ("datm", 10, "~65-85 h after the DATM row (as MTT's)"),
                          ("idc", 10, "~425 h after the IDC row (279x the reduced row's evaluation, 91 min: 3 sets x "
                           "20 networks x 1000 epochs against 1 x 5 x 43, of 7 steps each)"))),
    # VGG11 alone at a fixed lr on the DATM and IDC ipc-10 sets (whether the lr makes some VGG11 networks fail)
    Row("cross_architecture_datm_mnist_ipc10_vgg11_lr0.01", ("cross_architecture", "--method", "datm", "--distilled",
                                                             "runs/datm_mnist_ipc10"), "ipc10_vgg11_lr0.01",
        "~18 h after the DATM row (40x the reduced row's 27 min)", "not measured", after="datm_mnist_ipc10"),
    Row("cross_architecture_idc_mnist_ipc10_vgg11_lr0.005", ("cross_architecture", "--method", "idc", "--distilled",
                                                             "runs/idc_mnist_ipc10"), "ipc10_vgg11_lr0.005",
        "~100 h after the IDC row (279x the reduced row's 22 min)", "not measured", after="idc_mnist_ipc10"),
    # MTT's and DATM's ipc-10 sets evaluated another way than by their learned-lr row, on every architecture: at
    # DC's lr 0.01 instead of the lr they learned; MTT's with its pixels clipped to the real images' range (whether
    # its outliers unsettle AlexNet)
    *(Row(f"cross_architecture_{m}_mnist_ipc10_{how}", ("cross_architecture", "--method", m, "--distilled",
                                                        f"runs/{m}_mnist_ipc10"), f"ipc10_{how}",
          f"~65-85 h after the {m.upper()} row (as its learned-lr row)", "not measured", after=f"{m}_mnist_ipc10")
      for how, methods in (("lr0.01", ("mtt", "datm")), ("clip", ("mtt",))) for m in methods),
    # MTT's ipc-10 set distilled with its pixels kept in the real images' range (clip_to_real), and its evaluation on
    # every architecture
    Row("mtt_mnist_ipc10_within_real", ("trajectory_matching", "--method", "mtt"), "ipc10_within_real",
        "~330 h (as the MTT ipc-10 row, whose experts it shares)", "not measured (experts dominate)"),
    Row("cross_architecture_mtt_mnist_ipc10_within_real", ("cross_architecture", "--method", "mtt", "--distilled",
                                                           "runs/mtt_mnist_ipc10_within_real"), "ipc10_within_real",
        "~65-85 h after its distillation (as the MTT ipc-10 row's)", "not measured",
        after="mtt_mnist_ipc10_within_real"),
    *(Row(f"cross_architecture_psg_eps{eps}_mnist_ipc{ipc}",
          ("cross_architecture", "--method", "psg", "--distilled", f"runs/psg_mnist_eps{eps}_ipc{ipc}", "--workdir",
           f"runs/cross_architecture_psg_eps{eps}_mnist_ipc{ipc}", "--out",
           f"results/cross_architecture_psg_eps{eps}_mnist_ipc{ipc}.json"), f"ipc{ipc}",
          "~25 h after the PSG row (40x the reduced row's 36-39 min)" if ipc == 1 else "~65-85 h after the PSG "
          "row (40x the other methods' reduced ipc-10 evaluations, 99-124 min)", "not measured",
          after=f"psg_mnist_eps{eps}_ipc{ipc}")
      for eps in ("10", "inf") for ipc in (1, 10)),
    # MHIST: the rest of the brief's rows, on the real data
    Row("dc_mhist_ipc1", ("gradient_matching", "--method", "dc", "--dataset", "mhist"), "ipc1",
        "not measured (~30x less per iteration than ipc 10)", "not measured", mhist=True),
    *(Row(f"dsa_mhist_ipc{ipc}", ("gradient_matching", "--method", "dsa", "--dataset", "mhist"), f"ipc{ipc}",
          "not measured (as DC's at the same ipc, plus augmentation)", "not measured", mhist=True) for ipc in (1, 10)),
    *(Row(f"{m}_mhist_ipc{ipc}", ("trajectory_matching", "--method", m, "--dataset", "mhist"), f"ipc{ipc}",
          "not measured (experts on MHIST at full size)", "not measured", mhist=True)
      for m, ipc in (("mtt", 1), ("datm", 1), ("datm", 10))),
    Row("idc_mhist_ipc1", ("idc", "--dataset", "mhist"), "ipc1", "not measured", "not measured", mhist=True),
    *(Row(f"psg_mhist_eps{eps}_ipc1", ("psg", "--dataset", "mhist", "--epsilon", eps), "ipc1", "not measured",
          "not measured", mhist=True) for eps in ("10", "inf")),
    *(Row(f"mhist_full_data_{w}_full", ("mhist_baselines", "--baseline", "full_data", "--weighting", w), "full",
          "~2 h (5 nets x 50 epochs, ~30 s an epoch at 64 px)", "not measured", mhist=True)
      for w in ("plain", "class_weighted", "balanced_sampling")),
    Row("mhist_mean_colour_full", ("mhist_baselines", "--baseline", "mean_colour", "--weighting", "plain"), "full",
        "seconds", "seconds", mhist=True),
    *(Row(f"mhist_random_ipc{ipc}", ("mhist_baselines", "--baseline", "random", "--weighting", "plain"),
          f"ipc{ipc}", "not measured", "not measured", mhist=True) for ipc in (1, 10)),
    # transfer learning and KD at 224 px: the teachers first, the students of the KD stage learn from them, and the
    # report tabulates the three stages
    *(Row(f"mhist_transfer_{init}_{stage}_full", ("mhist_transfer", "--stage", stage, "--init", init), "full",
          "not measured at 224 px (at 128 px a ResNet50V2 step takes ~4.3 s here, a MobileNetV2 step ~8.6 s)",
          "not measured", mhist=True, after=None if stage != "kd" else f"mhist_transfer_{init}_teacher_full")
      for init in ("imagenet", "scratch") for stage in ("teacher", "student", "kd")),
]


def experiment_config(args: tuple[str, ...] | list[str], variant: str) -> dict:
    """The config of experiment `args[0]` with its --choice value pairs `args[1:]` (--data-dir ignored) at
    `variant` ({} for an experiment without get_config); a ConfigError for a variant it does not define."""
    from jaxdistill import experiment
    from jaxdistill.errors import ConfigError
    module = experiment.load_experiment(EXPERIMENTS / f"{args[0]}.py")
    choices = dict(zip((a.lstrip("-").replace("-", "_") for a in args[1::2]), args[2::2]))
    for flag in RUN_FLAGS:
        choices.pop(flag, None)
    if variant not in module.VARIANTS:
        raise ConfigError(f"{args[0]} has no variant {variant}")
    return module.get_config(variant, **choices) if hasattr(module, "get_config") else {}


RUN_FLAGS = ("data_dir", "distilled", "workdir", "out")  # where a run reads and writes, not what it does


def record_of(command: str) -> str | None:
    """The record that a full-protocol command (as records give it: `python experiments/<name>.py --flag value ...`,
    the last of several joined by &&) writes: its --out, else its experiment's name for the config; None for a
    command that is not an experiment run."""
    import shlex
    argv = shlex.split(command.split("&&")[-1])
    if len(argv) < 2 or argv[0] != "python" or not argv[1].startswith("experiments/"):
        return None
    flags = dict(zip(argv[2::2], argv[3::2]))
    if "--out" in flags:
        return Path(flags["--out"]).stem
    variant = flags.pop("--variant")
    args = [Path(argv[1]).stem, *(x for pair in flags.items() for x in pair)]
    return experiment_config(args, variant).get("name")


def variant_seeds(row: Row) -> list | None:
    """The distillation seeds the row's variant runs today (for a row of given sets, those its source row
    distils), or None where its experiment has none."""
    if row.after:
        return variant_seeds(source_row(row))
    return experiment_config(row.args, row.variant).get("seeds")


def row_state(row: Row) -> str:
    """'todo' (no record), 'done', or 'partial' where the record distilled fewer sets than the variant now asks for
    (e.g. the DSA ipc-1 record of 3 x 20, made before the full rows became the reference's 5 x 20) or is a
    cross-architecture record whose run stopped before its last architecture. `--run` runs a partial row's command
    again: a cross-architecture row resumes from its record, any other replaces it; a workdir left under runs/ by
    the earlier seeds holds another config and is refused (move it away first). A row with `--seeds` parts that its
    record (if any) did not pool (`_part_files`), and no record of every set, is 'partial (k of n sets, in --seeds
    parts)' or 'parts of every set (merge)', and beside a partial record the state says so; it is 'conflicting
    --seeds parts' where two parts hold one seed, or 'old --seeds parts in the way' where parts that the record
    pooled would not be rewritten by the missing seeds' runs (both of which --merge would refuse: `--run` skips
    such a row). A done row with parts it did not pool beside it says so (the report shows them as a row)."""
    record, parts, stale = _parts_plan(row)
    state = _record_state(row, record) if record is not None else "todo"
    if not parts:
        return state
    if state == "done":
        return f"done (move away the --seeds parts it did not pool: seeds {', '.join(map(str, parts))})"
    wanted = variant_seeds(row)
    if trouble := _parts_trouble(parts, stale):
        state_ = trouble
    elif wanted is not None and set(wanted) <= set(parts):
        state_ = "parts of every set (merge)"
    else:
        state_ = f"partial ({len(parts)} of {len(wanted or parts)} sets, in --seeds parts)"
    return state_ if record is None else f"{state_}; its record: {state}"


def _parts_trouble(parts: list[int], stale: list[str]) -> str | None:
    """Why --merge would refuse a row's parts (`_parts_plan`), as `row_state` says it, or None."""
    if len(set(parts)) < len(parts):
        return "conflicting --seeds parts (a seed in two of them: move one away)"
    if stale:
        return f"old --seeds parts in the way ({', '.join(stale)}, pooled by the record: move them away)"
    return None


def blocked(state: str) -> bool:
    """Whether `--run` must skip a row in this state (`row_state`): its --merge would refuse its parts
    (`_parts_trouble`)."""
    return state.startswith(("conflicting", "old --seeds parts"))


def is_done(state: str) -> bool:
    return state.startswith("done")


def _record_state(row: Row, record: dict[str, Any]) -> str:
    """'done' or 'partial (...)' by the row's record alone (see `row_state`)."""
    left = record.get("result", {}).get("architectures_left")
    if left:  # a cross-architecture run stopped between architectures; its command resumes from the record
        return f"partial ({len(left)} architectures left)"
    made = record.get("config", {}).get("seeds")
    wanted = variant_seeds(row)
    if made is None or wanted is None:
        return "done"
    made = _flat(made)
    if set(wanted) <= set(made):
        return "done"
    return f"partial ({len(made)} of {len(wanted)} sets)"


def _flat(seeds: list) -> list:
    """A record's seeds, flat: a record of several given sets (cross_architecture.py --distilled) keeps one list
    per set."""
    return [s for m in seeds for s in (m if isinstance(m, list) else [m])]


def takes_seeds(row: Row) -> bool:
    """Whether the row's experiment runs some of its seeds per command (`--seeds`, then `--merge`): the
    distillation experiments and the coreset baselines, not a row that evaluates another row's sets."""
    from jaxdistill import experiment
    return row.after is None and "seeds" in getattr(
        experiment.load_experiment(EXPERIMENTS / f"{row.args[0]}.py"), "FLAGS", ())


def _part_files(row: Row, record: dict[str, Any] | None) -> tuple[list[int], list[str]]:
    """The seeds, in order and with repeats, that `--seeds` runs of the row recorded in
    results/<record>_seed<S>.json and its record `record` (if any) did not pool (a session of a few hours can
    finish some of a row's seeds, the next one the rest; a row run again at another protocol rewrites its parts
    under their old names, `pooled_part`); and the names of the part files that `record` pooled."""
    from jaxdistill.experiment import pooled_part, seed_part_records
    paths = seed_part_records(ROOT / "results", row.record)
    if not paths or not takes_seeds(row):  # (a glob first: most rows have no part, and need no experiment loaded)
        return [], []
    parts = {p: json.loads(p.read_text()) for p in paths}
    pooled = [p.name for p, part in parts.items() if pooled_part(p.name, part, record)]
    return sorted(s for p, part in parts.items() if p.name not in pooled
                  for s in _flat(part.get("config", {}).get("seeds") or [])), pooled


def _parts_plan(row: Row) -> tuple[dict[str, Any] | None, list[int], list[str]]:
    """The row's record (None if it has none), the seeds of the parts it did not pool (`_part_files`), and the part
    files it pooled that running each missing seed as a part (`run_commands`) would not rewrite: those stay in the
    way of --merge."""
    path = ROOT / "results" / f"{row.record}.json"
    record = json.loads(path.read_text()) if path.exists() else None
    made, pooled = _part_files(row, record)
    if not made:
        return record, made, []
    rewritten = {f"{row.record}_seed{s}.json" for s in variant_seeds(row) or [] if s not in made}
    return record, made, [name for name in pooled if name not in rewritten]


def run_commands(row: Row, extra: list[str]) -> list[list[str]]:
    """What `--run` runs for a row that is not done: its command; where `--seeds` parts that the row's record did
    not pool hold some of its seeds (`_parts_plan`), each missing seed as a part of its own (named as a part of that
    seed run before would be, which it replaces) and then `--merge`, which pools the parts into the row's record;
    nothing where that merge would refuse the parts (`_parts_trouble`)."""
    command = [*row_args(row), "--variant", row.variant, *extra]
    _, made, stale = _parts_plan(row)
    if not made:
        return [command]
    if _parts_trouble(made, stale):
        return []
    left = [s for s in variant_seeds(row) or [] if s not in made]
    return [[*command, "--seeds", str(s)] for s in left] + [[*command, "--merge"]]


def source_row(row: Row) -> Row:
    """The row whose run folder `row` reads (`row.after`)."""
    return next(r for r in ROWS if r.record == row.after)


def source_folders(row: Row) -> list[str]:
    """The run folders holding the sets that `row` evaluates: runs/<after>, or where the source row was run as
    `--seeds` parts and merged, each part's runs/<after>_seed<S>."""
    path = ROOT / "results" / f"{row.after}.json"
    parts = json.loads(path.read_text()).get("parts") if path.exists() else None
    return [f"runs/{Path(p['record']).stem}" for p in parts] if parts else [f"runs/{row.after}"]


def row_args(row: Row) -> list[str]:
    """The row's experiment and flags, a row of another row's sets given every folder of `source_folders`."""
    args = list(row.args)
    if row.after and "--distilled" in args:
        at = args.index("--distilled")
        args[at:at + 2] = [a for folder in source_folders(row) for a in ("--distilled", folder)]
    return args


def source_ready(row: Row) -> bool:
    """Whether the row that `row` reads has finished (its record is written only at the end, after its sets and
    models; a source that failed in this run has none) and its run folders are still there."""
    return is_done(row_state(source_row(row))) and all((ROOT / f).is_dir() for f in source_folders(row))


def smoke_commands(mhist_dir: str) -> list[list[str]]:
    """One smoke run per experiment (and per method where an experiment runs several kinds of method)."""
    m = ["--data-dir", mhist_dir]
    return [
        ["gradient_matching", "--method", "dc"], ["gradient_matching", "--method", "dsa"],
        ["trajectory_matching", "--method", "mtt"], ["trajectory_matching", "--method", "datm"],
        ["psg", "--epsilon", "1"], ["idc"], ["coreset_mnist", "--selection", "herding"],
        ["coreset_mnist", "--selection", "kcenter"], ["random_mnist"], ["full_data_mnist"], ["kd_mnist"],
        ["cross_architecture", "--method", "dc"], ["continual_mnist"],
        ["mhist_baselines", "--baseline", "full_data", *m], ["mhist_baselines", "--baseline", "random", *m],
        ["gradient_matching", "--method", "dc", "--dataset", "mhist", *m],
    ]


def _run(argv: list[str], dry: bool) -> int:
    print("$ " + " ".join(["python -m jaxdistill.experiment", *argv]), flush=True)
    return 0 if dry else subprocess.run([*RUNNER, *argv], cwd=ROOT).returncode


def smoke_failure(returncode: int, workdir: Path, records_before: set[str]) -> str | None:
    """Why a smoke run failed, or None: it must exit 0, leave its workdir's config.json (every experiment opens a
    resumable workdir) and write no record under results/ (smoke runs never do)."""
    if returncode != 0:
        return f"exit status {returncode}"
    if not (workdir / "config.json").exists():
        return f"no {workdir / 'config.json'}"
    written = sorted(set(_records()) - records_before)
    return f"wrote results/{', results/'.join(written)}" if written else None


def _records() -> set[str]:
    return {p.name for p in (ROOT / "results").glob("*.json")}


def selected_rows(only: str | None) -> list[Row]:
    """`--only`: the rows whose record name holds `only` as whole words ('_'-separated: `--only
    coreset_herding_mnist_ipc1` is not also the ipc-10 row, `--only idc_mnist_ipc1` is also its cross-architecture
    row, `--only dc_mnist` no IDC row); every row without it."""
    if only is None:
        return list(ROWS)
    words = re.compile(rf"(?:^|_){re.escape(only)}(?:_|$)")
    return [r for r in ROWS if words.search(r.record)]


def run_smoke(dry_run: bool, only: str | None = None) -> int:
    """Every experiment's smoke variant end to end (those whose command contains `only`, when given), each checked
    by `smoke_failure`; MHIST's on a small stand-in."""
    with tempfile.TemporaryDirectory() as tmp:
        standin = str(Path(tmp) / "mhist")
        if not dry_run:
            subprocess.run([sys.executable, "scripts/make_mhist_standin.py", standin], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
        failed = []
        commands = [c for c in smoke_commands(standin) if only is None or only in " ".join(c)]
        for i, command in enumerate(commands):
            workdir = Path(tmp) / "run" / f"{i:02d}_{command[0]}"
            before = _records()
            rc = _run([*command, "--variant", "smoke", "--workdir", str(workdir), "--no-progress"], dry_run)
            why = None if dry_run else smoke_failure(rc, workdir, before)
            if why:
                failed.append(f"{' '.join(command)}: {why}")
    print(f"smoke: {len(commands)} runs, {len(failed)} failed" + "".join(f"\n  {f}" for f in failed))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="every experiment's smoke variant (minutes)")
    parser.add_argument("--run", action="store_true", help="run the full rows whose record is missing or partial")
    parser.add_argument("--gpu-order", action="store_true", help="order rows by their value on a GPU")
    parser.add_argument("--only", default=None, help="rows whose record name holds this text as whole '_'-separated "
                        "words (with --smoke: whose command contains it)")
    parser.add_argument("--row", action="append", default=None, metavar="RECORD",
                        help="exactly this row (repeatable), e.g. a row run a seed per session, without the "
                             "cross-architecture rows that --only also names")
    parser.add_argument("--mhist", default=None, help="the real MHIST folder (needed by MHIST rows)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    args = parser.parse_args(argv)
    if args.row and (args.only or args.smoke):
        parser.error("--row names rows of the table itself: give it without --only and --smoke")
    unknown = [name for name in args.row or [] if name not in {r.record for r in ROWS}]
    if unknown:
        parser.error(f"no row named {', '.join(unknown)} (`python scripts/reproduce_all.py` lists them)")

    if args.smoke:
        return run_smoke(args.dry_run, args.only)

    rows = [r for r in ROWS if r.record in args.row] if args.row else selected_rows(args.only)
    if args.gpu_order:  # stable, and no row outranks the row it reads (tests/test_reproduce_all.py)
        rows.sort(key=lambda r: r.gpu_priority)
    width = max((len(r.record) for r in rows), default=10)
    states = {r.record: row_state(r) for r in rows}
    pad = max((len(v) for v in states.values()), default=4)
    for r in rows:
        print(f"{states[r.record]:<{pad}}  {r.record:<{width}}  CPU {r.cpu};  GPU {r.gpu}\n"
              f"{'':<{pad}}  python -m jaxdistill.experiment {' '.join(row_args(r))} --variant {r.variant}"
              + (" --data-dir MHIST" if r.mhist else "") + (f"   (after {r.after})" if r.after else ""))
        planned = [] if is_done(states[r.record]) else run_commands(r, [])
        if planned != [[*row_args(r), "--variant", r.variant]]:  # the rest of a row run in --seeds parts
            for command in planned:
                print(f"{'':<{pad}}    --run: python -m jaxdistill.experiment {' '.join(command)}")
    if not args.run:
        return 0
    failed = []
    for r in rows:
        if is_done(states[r.record]):
            continue
        if blocked(states[r.record]):
            print(f"skip {r.record}: {states[r.record]}")
            continue
        if r.mhist and not args.mhist:
            print(f"skip {r.record}: needs --mhist DIR (the real MHIST folder)")
            continue
        if r.after and not args.dry_run and not source_ready(r):
            print(f"skip {r.record}: needs row {r.after} finished, with its run folders {', '.join(source_folders(r))} "
                  "(run that row first; a finished row whose folders are gone runs again once its record is moved "
                  "away)")
            continue
        extra = ["--data-dir", args.mhist] if r.mhist else []
        for command in run_commands(r, extra):
            if _run(command, args.dry_run) != 0:
                failed.append(r.record)
                break
    print(f"{len(failed)} row(s) failed" + "".join(f"\n  {f}" for f in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
