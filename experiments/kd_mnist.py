"""Knowledge distillation on MNIST after Hinton, Vinyals and Dean (2015), "Distilling the knowledge in a neural
network", section 3.

Variants (each a KDConfig; every configuration over 5 seeds, student k distilled from teacher k):
    hinton          Hinton's table. Teacher MLP 784-1200-1200-10 with dropout (0.2 input, 0.5 hidden), input jitter
                    (shifts of up to 2 pixels) and the dropout papers' recipe (Hinton et al. 2012, appendix A:
                    momentum 0.5 -> 0.99 over the first sixth of the epochs, lr decayed x0.998 per epoch, max-norm 15
                    on each hidden unit's incoming weights, batch 100), 200 epochs where the papers trained 3000,
                    with the shape of the schedules kept; student MLP 784-800-800-10 without regularisation, alone
                    and with KD at T = 20, alpha 0.1 on an unjittered transfer set. The students' lr and schedule
                    are chosen, alone and with KD separately, on 10,000 held-out training images. Paper: 67 / 146 /
                    74 test errors.
    hinton_teacher_probe   the teacher's lr chosen on held-out training images (one network per lr, 10,000
                    training images, 30 epochs, counted on 5,000 others); its record is why TEACHER_LR is 0.3.
    hinton_reduced  the earlier recipe (plain momentum SGD, no max-norm), 6 epochs each (the teacher ends worse than
                    the student).
    hinton_reduced_30ep  the earlier recipe, teacher 30 epochs, students 10 epochs (a 2-core CPU budget).
    convnet_small   a ConvNet teacher (width 32, depth 3) distilled into MLP 784-30-30-10, where the gap is large; the
                    T in {1, 2, 4, 8, 20} x alpha in {0.1, 0.5, 0.9} sweep (table + figure).
    omitted3        Hinton's omitted-class experiment: the students' transfer set lacks every 3 (the teachers saw
                    them); how many test 3s the KD student gets right, before and after a bias correction of class
                    3 chosen on 5000 held-out training images. Shares the convnet_small teachers; student MLP
                    784-800-800-10 for 6 epochs.
    course          the comparison study users run: a CNN teacher (ConvNet width 32, depth 3) and a fully connected
                    student (MLP 784-128-128-10), both trained with Adam, lr 1e-3 (constant), batch 128, 12 epochs;
                    the student alone and with KD at T in {1, 2, 4, 16, 32, 64}, alpha 0.5 (figure: accuracy
                    against T); parameters, FLOPs per image (XLA) and CPU latency of teacher and student.
    course_dkd      the same study with decoupled KD (Zhao et al., CVPR 2022; TCKD weight 1, NCKD weight 8) on the
                    same teachers and seeds.
    course_reduced, course_dkd_reduced   3 epochs each (labelled reduced).
    smoke           everything above on 1000 training images, 1 epoch, tiny nets, with a student selection and a
                    teacher-lr probe (CI runs it).

Hinton's paper gives no epoch counts or learning rates: the teacher's come from the dropout papers (the lr from
the probe), the students' from the held-out selection (see README).

    python experiments/kd_mnist.py --variant hinton_teacher_probe   # about 10 min
    python experiments/kd_mnist.py --variant hinton          # full protocol (about 4 h on a 2-core CPU; resumes)
    python experiments/kd_mnist.py --variant hinton_reduced
    python experiments/kd_mnist.py --variant hinton_reduced_30ep
    python experiments/kd_mnist.py --variant convnet_small
    python experiments/kd_mnist.py --variant omitted3
    python experiments/kd_mnist.py --variant course          # then --variant course_dkd (shares the teachers)
    python experiments/kd_mnist.py --variant smoke          # seconds; CI runs it
    python -m jaxdistill.experiment kd_mnist --variant hinton   # the same runner

Reruns resume (runs/kd_mnist_<variant>, finished phases are skipped). The hinton variant, longer than a session on
a 2-core CPU, trains its teachers one at a time and keeps every finished phase's small outputs (test errors, each
teacher's logits on the transfer set) in results/kd_mnist_hinton_phases/, so a clone without runs/ resumes it.
Records: results/kd_mnist_<variant>.json, tables results/kd_mnist_<variant>.{md,csv}, figure
results/figures/kd_mnist_<variant>_sweep.png.
"""
from __future__ import annotations

from typing import Any

from jaxdistill.experiment import Context

VARIANTS = ("hinton", "hinton_teacher_probe", "hinton_reduced", "hinton_reduced_30ep", "convnet_small", "omitted3",
            "course", "course_dkd", "course_reduced", "course_dkd_reduced", "smoke")
COURSE_TEMPERATURES = (1.0, 2.0, 4.0, 16.0, 32.0, 64.0)
SWEEP = tuple((t, a) for t in (1.0, 2.0, 4.0, 8.0, 20.0) for a in (0.1, 0.5, 0.9))
PAPER = {"teacher": 67, "student_alone": 146, "student_kd": 74}  # test errors, Hinton et al. 2015, section 3
# The teacher's lr, chosen by the `hinton_teacher_probe` variant on held-out training images (its record): the
# papers' lr 10 diverges with this project's ReLU units, PyTorch init and mean minibatch loss.
TEACHER_LR = 0.3
PROBE_LRS = (10.0, 1.0, 0.3, 0.1)
HINTON_TEACHER_EPOCHS = 200  # the papers': 3000; about 9 s per epoch per teacher on a 2-core CPU
# The students' settings are chosen on 10,000 held-out training images (alone and with KD, separately)
STUDENT_CANDIDATES = tuple((("lr", lr), ("lr_schedule", sched)) for sched in ("step", "cosine")
                           for lr in (0.01, 0.03, 0.1))


HINTON_TEACHER = (("dropout", 0.5), ("input_dropout", 0.2), ("widths", (1200, 1200)))  # MLP settings


def dropout_teacher(epochs: int, lr: float = TEACHER_LR):
    """Hinton's teacher under the dropout papers' recipe (Hinton et al. 2012, appendix A): batch 100, momentum
    0.5 -> 0.99 over the first 500 of 3000 epochs, lr x 0.998 per epoch (x 0.998 ** 3000 over the run),
    max-norm 15 on every hidden unit's incoming weights; here compressed into `epochs` with the same shape."""
    from jaxdistill.kd import NetSpec
    from jaxdistill.train import TrainConfig
    return NetSpec("mlp", HINTON_TEACHER,
                   TrainConfig(epochs=epochs, batch_size=100, lr=lr, momentum=0.99, momentum_start=0.5,
                               momentum_ramp=500 / 3000, optimizer="dropout_sgd", lr_schedule="exponential",
                               lr_gamma=0.998 ** 3000, weight_decay=0.0, max_norm=15.0, augment="jitter",
                               parallel="sequential"))  # one teacher at a time: each finished one is kept


def probe_configs() -> dict:
    """The teacher-lr probes (`teacher_lr_probe`): the hinton_teacher_probe variant's, and the one smoke runs."""
    from jaxdistill.kd import NetSpec
    return {"hinton_teacher_probe": {"net": dropout_teacher(30), "lrs": PROBE_LRS, "fit": 10000, "holdout": 5000},
            "smoke": {"net": NetSpec("mlp", (("widths", (16,)), ("dropout", 0.5)), dropout_teacher(1).train),
                      "lrs": (1.0, 0.1), "fit": 500, "holdout": 200}}


def kd_configs() -> dict:
    """Every KD variant's KDConfig."""
    from jaxdistill.kd import KDConfig, NetSpec
    from jaxdistill.train import TrainConfig

    def sgd(epochs, lr=0.05, **kw):
        return TrainConfig(epochs=epochs, batch_size=128, lr=lr, momentum=0.9, weight_decay=0.0, **kw)

    def mlp_teacher(epochs):  # the reduced rows' teacher (plain momentum SGD, no max-norm)
        return NetSpec("mlp", HINTON_TEACHER, sgd(epochs, augment="jitter", parallel="vmap"))

    def mlp(widths, epochs):
        return NetSpec("mlp", (("widths", widths),), sgd(epochs, parallel="vmap"))

    conv_teacher = NetSpec("convnet", (("depth", 3), ("width", 32)), sgd(4, lr=0.02))
    seeds = (0, 1, 2, 3, 4)

    def adam(epochs, **kw):  # constant lr 1e-3 (lr_drop_fraction 1.0: no drop)
        return TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, weight_decay=0.0, optimizer="adam",
                           lr_drop_fraction=1.0, **kw)

    def course(epochs, loss):
        teacher = NetSpec("convnet", (("depth", 3), ("width", 32)), adam(epochs))
        student = NetSpec("mlp", (("widths", (128, 128)),), adam(epochs, parallel="vmap"))
        sweep = tuple((t, 0.5) for t in COURSE_TEMPERATURES if t != 4.0)
        return KDConfig(teacher, student, 4.0, 0.5, seeds, sweep=sweep, loss=loss)
    return {
        "course": course(12, "hinton"), "course_dkd": course(12, "dkd"),
        "course_reduced": course(3, "hinton"), "course_dkd_reduced": course(3, "dkd"),
        "hinton": KDConfig(dropout_teacher(HINTON_TEACHER_EPOCHS),
                           NetSpec("mlp", (("widths", (800, 800)),),
                                   TrainConfig(epochs=60, batch_size=100, lr=0.03, momentum=0.9, weight_decay=0.0,
                                               parallel="vmap")),
                           20.0, 0.1, seeds, select=STUDENT_CANDIDATES, select_holdout=10000, select_seeds=(0,)),
        "hinton_reduced": KDConfig(mlp_teacher(6), mlp((800, 800), 6), 20.0, 0.1, seeds),
        "hinton_reduced_30ep": KDConfig(mlp_teacher(30), mlp((800, 800), 10), 20.0, 0.1, seeds),
        "convnet_small": KDConfig(conv_teacher, mlp((30, 30), 20), 4.0, 0.1, seeds, sweep=SWEEP, validation=5000),
        "omitted3": KDConfig(conv_teacher, mlp((800, 800), 6), 20.0, 0.1, seeds, omit_class=3, validation=5000),
        "smoke": KDConfig(NetSpec("convnet", (("depth", 2), ("width", 8)), sgd(1, lr=0.02)), mlp((16,), 1),
                          4.0, 0.1, (0, 1), sweep=((2.0, 0.5),), omit_class=3, validation=100,
                          select=((("lr", 0.02),), (("lr", 0.05), ("lr_schedule", "cosine"))), select_holdout=100),
    }


REDUCED = {"hinton_reduced": "hinton", "hinton_reduced_30ep": "hinton", "course_reduced": "course",
           "course_dkd_reduced": "course_dkd"}
KEEP_PHASES = ("hinton",)  # results/kd_mnist_hinton_phases/: see run_kd's outputs_dir
SHARED_TEACHERS = {"convnet_small": "kd_mnist_convnet_teachers", "omitted3": "kd_mnist_convnet_teachers",
                   "course": "kd_mnist_course_teachers", "course_dkd": "kd_mnist_course_teachers",
                   "course_reduced": "kd_mnist_course_reduced_teachers",
                   "course_dkd_reduced": "kd_mnist_course_reduced_teachers"}


def get_config(variant: str) -> dict[str, Any]:
    """The variant's KDConfig ("kd") and how it runs: teachers shared with other variants, the smoke subset."""
    if variant not in VARIANTS:
        raise KeyError(variant)
    name = f"kd_mnist_{variant}"
    probe = probe_configs().get(variant)
    if variant == "hinton_teacher_probe":
        return {"kd": None, "probe": probe, "name": name, "reduced": True, "subset": None,
                "full_protocol_command": "python experiments/kd_mnist.py --variant hinton"}
    return {"kd": kd_configs()[variant], "probe": probe, "name": name,
            "shared_teachers": SHARED_TEACHERS.get(variant), "keep_phases": variant in KEEP_PHASES,
            "subset": {"train": 1000, "test": 500} if variant == "smoke" else None,
            "paper_test_errors": PAPER if variant.startswith("hinton") else None, "reduced": variant in REDUCED,
            "full_protocol_command": f"python experiments/kd_mnist.py --variant {REDUCED.get(variant, variant)}"}


def run(config: dict[str, Any], ctx: Context) -> None:
    import numpy as np

    from jaxdistill.kd import run_kd
    from jaxdistill.report import kd_table, plot_kd_sweep, write_table
    from jaxdistill.runner import load_real

    kd_config = config["kd"]
    data = load_real("mnist", ctx.data_dir, progress=ctx.progress)
    train_images, train_labels = np.asarray(data.train.images), np.asarray(data.train.labels)  # sorted by class
    test_images, test_labels = data.test_images, data.test_labels
    if config["subset"]:
        pick = np.random.default_rng(0).permutation(train_labels.shape[0])[:config["subset"]["train"]]
        train_images, train_labels = train_images[pick], train_labels[pick]
        test_images, test_labels = test_images[:config["subset"]["test"]], test_labels[:config["subset"]["test"]]
    probe = None
    if config["probe"]:
        probe = teacher_lr_probe(config["probe"], train_images, train_labels, ctx)
        if config["kd"] is None:
            ctx.write_record({"probe": {**config["probe"], "net": config["probe"]["net"].to_dict()}}, probe)
            return
    # Variants that name the same teachers share them, unless the run goes to a workdir of its own.
    shared = config["shared_teachers"]
    teacher_dir = ctx.root / "runs" / shared if shared and ctx.args.workdir is None else None
    # A run longer than one machine's session keeps its finished phases (errors, teacher logits) beside its record
    outputs = ctx.out.parent / f"{ctx.name}_phases" if config["keep_phases"] and ctx.writes_record else None
    rec = run_kd(kd_config, train_images, train_labels, test_images, test_labels, 10, ctx.workdir,
                 progress=ctx.progress, teacher_dir=teacher_dir, outputs_dir=outputs)
    if probe:
        rec["teacher_lr_probe"] = probe
    table = kd_table(rec)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    kd, alone = rec["student_kd"], rec["student_alone"]
    sig = kd["significance_vs_alone"]
    print(f"KD (T={kd_config.temperature:g}, alpha={kd_config.alpha:g}) {kd['errors_mean']:.1f} +- "
          f"{kd['errors_std']:.1f} test errors vs student alone {alone['errors_mean']:.1f} +- "
          f"{alone['errors_std']:.1f}: gain {sig['difference']:.1f} +- {sig['standard_error']:.1f} "
          f"(z = {sig['z']:.1f})")
    if kd_config.omit_class is not None:
        print(f"omitted class {kd_config.omit_class}: KD student gets {kd['omitted_correct_before']} of "
              f"{kd['omitted_test_examples']} right; after bias shifts {kd['bias_shift']}: "
              f"{kd['omitted_correct_after']}")
    if not ctx.writes_record:
        return
    write_table(table, ctx.out.with_suffix(""))  # results/<name>.{md,csv} beside the record
    if kd_config.sweep:
        plot_kd_sweep(rec, ctx.figures_dir / f"{ctx.name}_sweep.png",
                      title=f"KD on MNIST ({ctx.variant}): test errors against T, 5 seeds")
    if ctx.variant.startswith("course"):
        rec["costs"] = network_costs(kd_config)
        print(f"costs: {rec['costs']}")
    ctx.write_record({**kd_config.to_dict(), "paper_test_errors": config["paper_test_errors"]}, rec)


def teacher_lr_probe(probe: dict[str, Any], images, labels, ctx: Context) -> dict[str, Any]:
    """The teacher's learning rate, chosen on training images only: one network per lr in probe["lrs"] trained on
    probe["fit"] random training images and counted on probe["holdout"] others (the test set plays no part)."""
    import dataclasses

    import numpy as np

    from jaxdistill.kd import TransferSet, error_counts, stacked_logits, train_networks
    order = np.random.default_rng(0).permutation(labels.shape[0])
    fit, hold = np.sort(order[:probe["fit"]]), np.sort(order[probe["fit"]:probe["fit"] + probe["holdout"]])
    fit_set = TransferSet(images[fit], labels[fit])
    rows = []
    for lr in probe["lrs"]:
        net = dataclasses.replace(probe["net"], train=dataclasses.replace(probe["net"].train, lr=lr))
        states = train_networks(ctx.workdir / "probe" / f"lr{lr:g}", net, 10, [0], fit_set, progress=ctx.progress,
                                description=f"teacher lr {lr:g}")
        errors = int(error_counts(stacked_logits(net.build(10), states, images[hold]), labels[hold])[0])
        rows.append({"lr": lr, "held_out_errors": errors})
        print(f"teacher lr {lr:g}: {errors} errors on {hold.shape[0]} held-out training images")
    best = min(rows, key=lambda r: r["held_out_errors"])
    return {"rows": rows, "chosen_lr": best["lr"], "fit": int(fit.shape[0]), "holdout": int(hold.shape[0])}


def network_costs(kd_config) -> dict[str, Any]:
    """Parameters, XLA forward FLOPs per image and measured inference latency (s per image at batch 1 and 128, on
    this machine's default device) of the teacher and the student."""
    import jax
    import jax.numpy as jnp

    from jaxdistill.costs import forward_flops, inference_latency, param_count
    from jaxdistill.models import ModelConfig
    out = {}
    for role, net in (("teacher", kd_config.teacher), ("student", kd_config.student)):
        cfg = ModelConfig(net.model, dict(net.model_kwargs))
        model = net.build(10)
        variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
        out[role] = {"model": str(cfg), "params": param_count(cfg, 10, (28, 28, 1)),
                     "forward_flops_per_image": forward_flops(cfg, 10, (28, 28, 1)),
                     "latency_s_per_image": {str(b): inference_latency(model, variables, (28, 28, 1), b)
                                             for b in (1, 128)},
                     "latency_device": jax.devices()[0].platform}
    return out


if __name__ == "__main__":
    from jaxdistill.experiment import main
    main(__file__)
