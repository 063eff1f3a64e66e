"""Tiny, fast data and models shared by the tests (8x8 images, narrow nets)."""
import jax
import jax.numpy as jnp
import numpy as np

from jaxdistill.data.arrays import make_real_data


def tiny_images(num_per_class: int = 6, num_classes: int = 2, size: int = 8, channels: int = 1, seed: int = 0):
    """Separable classes: class c has a bright band at rows [c*2, c*2+2); plus noise. float32 NHWC, labels int32."""
    rng = np.random.default_rng(seed)
    n = num_per_class * num_classes
    labels = np.repeat(np.arange(num_classes), num_per_class).astype(np.int32)
    images = rng.normal(0, 0.3, (n, size, size, channels)).astype(np.float32)
    for i, c in enumerate(labels):
        images[i, 2 * c:2 * c + 2] += 2.0
    perm = rng.permutation(n)
    return images[perm], labels[perm]


def tiny_real(num_per_class: int = 6, num_classes: int = 2, **kw):
    images, labels = tiny_images(num_per_class, num_classes, **kw)
    return make_real_data(images, labels, num_classes)


SMALL_CONVNET = (("width", 8), ("depth", 2))


# ---- a toy method whose state evolves with randomness, for runner/resume tests ------------------------------------
import dataclasses
from typing import NamedTuple

from jaxdistill.methods.base import METHODS, Method, method, register_method
from jaxdistill.synthetic import SyntheticSet, init_synthetic


@dataclasses.dataclass(frozen=True)
class WalkConfig:
    ipc: int = 1
    step_size: float = 0.1
    factor: int = 1  # > 1: the images are stored multi-formation images (IDC's form) of this factor


class WalkState(NamedTuple):
    synthetic: SyntheticSet
    momentum: jax.Array


def random_walk(config: WalkConfig) -> Method:
    """Each step moves the images by noise from the step's key (plus momentum): any lost or repeated step, or a
    wrongly keyed step, changes the final images."""
    def init(key, inputs):
        syn = init_synthetic(key, inputs.real, config.ipc, "noise")
        return WalkState(syn, jnp.zeros_like(syn.images))

    def step(state, key, inputs):
        mom = 0.5 * state.momentum + config.step_size * jax.random.normal(key, state.momentum.shape)
        syn = state.synthetic._replace(images=state.synthetic.images + mom)
        return WalkState(syn, mom), {"norm": jnp.linalg.norm(mom)}

    def synthetic(state):
        if config.factor == 1:
            return state.synthetic
        return state.synthetic._replace(factor=jnp.asarray(config.factor, jnp.int32))

    return method(init, synthetic, step=step)


if "test_walk" not in METHODS:
    register_method("test_walk", WalkConfig, "test-only random walk", iterations=6)(random_walk)


def tiny_loaded(num_per_class: int = 6, num_classes: int = 2, size: int = 8):
    """A LoadedData (train indexed by class + a test split) built from tiny_images, for runner tests."""
    from jaxdistill.data.registry import DatasetSpec, FileSpec
    from jaxdistill.runner import LoadedData
    spec = DatasetSpec(name="tiny", image_shape=(size, size, 1), num_classes=num_classes,
                       class_names=tuple(str(c) for c in range(num_classes)), mean=(0.0,), std=(1.0,),
                       files=(FileSpec("in-memory", (), "0" * 64),),
                       format="idx", train_size=num_per_class * num_classes, test_size=num_classes * 4)
    train_x, train_y = tiny_images(num_per_class, num_classes, size)
    test_x, test_y = tiny_images(4, num_classes, size, seed=1)
    return LoadedData(spec, make_real_data(train_x, train_y, num_classes), test_x, test_y)


# ---- tiny settings of every registered method, and the policy tests compile under --------------------------------
TINY_DC = {"batch_real": 2, "model": "convnet:depth=2,width=8", "outer_loop": 2, "inner_loop": 1}
TINY_MTT = {"syn_steps": 3, "expert_epochs": 1, "max_start_epoch": 2, "model": "convnet:depth=1,width=4",
            "lr_img": 10.0}
TINY_SETTINGS = {
    "dc": TINY_DC,
    # two DSA operations keep a real switch between augmentations while compiling in a fraction of the full
    # strategy's time (every operation is tested in tests/data/test_dsa.py)
    "dsa": {**TINY_DC, "dsa_strategy": "crop_rotate"},
    "mtt": TINY_MTT,
    # factor 2 on 8x8 images (4x4 crops); a narrow net, two inner steps of two network steps each
    "idc": {"batch_real": 2, "model": "convnet:depth=2,width=8", "inner_loop": 2, "net_steps": 2, "lr_img": 1.0,
            "init": "noise"},  # the battery has 4 images a class, fewer than factor^2 x ipc tiles
    # a tiny private run: a given noise multiplier (a calibrated one needs `prepare`, tested in tests/methods/test_psg.py)
    # and a loose budget that 3 iterations on 12 images meet
    "psg": {**TINY_DC, "batch_real": 4, "batch_loop": 2, "noise_multiplier": 0.5, "clip_norm": 1.0,
            "epsilon": 1000.0, "delta": 1e-3, "lr_img": 1.0},
    # selection on a narrow net's features after one short epoch
    "herding": {"model": "convnet:depth=1,width=4", "feature_epochs": 1.0, "batch_size": 6, "chunk": 4},
    "kcenter": {"model": "convnet:depth=1,width=4", "feature_epochs": 1.0, "batch_size": 6, "chunk": 4},
    "datm": {**TINY_MTT, "current_max_start_epoch": 1, "expansion_end_epoch": 2, "label_experts": 2,
             "candidate_pool": 4},
}
# Tests compile gradient matching's class loop as a scan, 3-4x faster to compile than the unrolled default
# (tests/methods/test_dc.py and tests/test_golden.py check both forms).
TEST_POLICY = {"class_loop": "scan"}
SMALL_MODEL = "convnet:depth=2,width=8"
