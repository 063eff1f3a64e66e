"""ResNet50V2 and MobileNetV2 against Keras Applications (Keras 3, JAX backend) with random weights, imported from the
files Keras saves: logits and intermediate features agree within float32 tolerance. 64 px: the weights do not depend
on the resolution (scripts/bench_applications.py checks 224 px)."""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.errors import ConfigError, DataError
from jaxdistill.models.applications import (MobileNetV2, ResNet50V2, keras_layer_names, make_divisible,
                                            trainable_mask)
from jaxdistill.models.keras_weights import import_keras_weights, read_keras_weights

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`:UserWarning")  # Keras on a plain array
legacy_h5 = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")

SIZE = 64
# A Keras intermediate layer and our sown feature at the same point of the network.
PROBES = {"resnet50v2": [("pool1_pool", "stem"), ("conv3_block4_out", "conv3"), ("post_relu", "features")],
          "mobilenetv2": [("Conv1_relu", "stem"), ("block_6_project_BN", "block_6"), ("out_relu", "features")]}


def keras_model(kind, include_top, alpha=1.0):
    kw = dict(weights=None, input_shape=(SIZE, SIZE, 3), include_top=include_top)
    if include_top:
        kw.update(classes=5, classifier_activation=None)
    if kind == "resnet50v2":
        model = keras.applications.ResNet50V2(**kw)
    else:
        model = keras.applications.MobileNetV2(alpha=alpha, **kw)
    rng = np.random.default_rng(0)
    for w in model.weights:  # random values everywhere, batch-norm statistics included (positive variances)
        name = w.path.rsplit("/", 1)[-1]
        shape = tuple(w.shape)
        if name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("beta", "moving_mean", "bias"):
            value = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) if name != "kernel" or len(shape) < 4 or shape[3] != 1 \
                else int(np.prod(shape[:2]))
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        w.assign(value.astype("float32"))
    return model


def ours(kind, head, alpha=1.0, classes=5):
    if kind == "resnet50v2":
        return ResNet50V2(num_classes=classes, head=head)
    return MobileNetV2(num_classes=classes, head=head, alpha=alpha)


def save(model, path, legacy):
    if legacy:
        import h5py
        with h5py.File(path, "w") as f:
            legacy_h5.save_weights_to_hdf5_group(f, model)
    else:
        model.save_weights(path)
    return path


def compare(kind, head, tmp_path, legacy, alpha=1.0):
    include_top = head == "imagenet"
    km = keras_model(kind, include_top, alpha)
    path = save(km, tmp_path / ("w.h5" if legacy else "w.weights.h5"), legacy)
    model = ours(kind, head, alpha)
    x = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (2, SIZE, SIZE, 3), minval=-1, maxval=1))
    variables = model.init(jax.random.PRNGKey(0), jnp.asarray(x[:1]))
    params, stats, facts = import_keras_weights(path, variables["params"], variables["batch_stats"])
    assert facts["imported"] == len(params) and not facts["head_kept"]
    out, inter = model.apply({"params": params, "batch_stats": stats}, x, mutable=["intermediates"])
    probes = PROBES[kind]
    probe_model = keras.Model(km.inputs, [km.get_layer(k).output for k, _ in probes] + [km.outputs[0]])
    expected = [np.asarray(a) for a in probe_model(x, training=False)]
    ref_out = expected[-1] if include_top else expected[-1].mean(axis=(1, 2))  # head 'none' = pooled features
    for (keras_name, our_name), ref in zip(probes, expected):
        got = np.asarray(inter["intermediates"][our_name][0])
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max(), err_msg=keras_name)
    np.testing.assert_allclose(np.asarray(out), ref_out, rtol=1e-3, atol=1e-4 * np.abs(ref_out).max())


# Each model through both file layouts: the legacy .h5 (Keras's ImageNet files) with top, and a Keras 3 .weights.h5
# without (MobileNetV2's at another width multiplier).
@pytest.mark.parametrize("kind,head,legacy,alpha", [
    ("resnet50v2", "imagenet", True, 1.0), ("resnet50v2", "none", False, 1.0),
    ("mobilenetv2", "imagenet", True, 1.0), ("mobilenetv2", "none", False, 0.35)],
    ids=["resnet50v2_top_legacy_h5", "resnet50v2_notop_weights_h5", "mobilenetv2_top_legacy_h5",
         "mobilenetv2_0.35_notop_weights_h5"])
@pytest.mark.slow
def test_matches_keras(kind, head, legacy, alpha, tmp_path):
    compare(kind, head, tmp_path, legacy, alpha)


@pytest.mark.parametrize("kind", ["resnet50v2", "mobilenetv2"])
def test_keras_layer_list_and_parameter_count_match_keras(kind):
    km = keras_model(kind, include_top=False)
    names = [layer.name for layer in km.layers]
    mine = keras_layer_names(ours(kind, "none"))
    assert len(mine) == len(names)
    assert all(a is None or a == b for a, b in zip(mine[1:], names[1:]))  # the input layer's name is Keras's counter
    variables = jax.eval_shape(lambda: ours(kind, "none").init(jax.random.PRNGKey(0), jnp.zeros((1, SIZE, SIZE, 3))))
    count = sum(x.size for x in jax.tree.leaves(variables))
    assert count == km.count_params()


def test_file_with_top_loads_into_a_new_transfer_head(tmp_path):
    path = save(keras_model("mobilenetv2", include_top=True, alpha=0.35), tmp_path / "top.h5", legacy=True)
    model = MobileNetV2(num_classes=2, alpha=0.35)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, SIZE, SIZE, 3))))
    variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), variables)
    params, _, facts = import_keras_weights(path, variables["params"], variables["batch_stats"])
    assert facts["head_kept"] == ["classifier"] and facts["ignored"] == ["predictions"]
    assert not np.any(params["classifier"]["kernel"])  # left as it was
    assert np.any(params["block_16_project"]["kernel"])


def test_wrong_model_or_width_is_refused_naming_the_layers(tmp_path):
    path = save(keras_model("mobilenetv2", include_top=False, alpha=0.35), tmp_path / "a.h5", legacy=True)
    for model in (MobileNetV2(num_classes=2, alpha=1.0), ResNet50V2(num_classes=2)):
        variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, SIZE, SIZE, 3))))
        variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), variables)
        with pytest.raises(DataError, match="does not hold this model's weights"):
            import_keras_weights(path, variables["params"], variables["batch_stats"])


def test_not_a_weights_file_is_refused(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="not a readable HDF5"):
        read_keras_weights(bad)


def test_trainable_mask_follows_keras_layer_indices():
    model = MobileNetV2(num_classes=2, alpha=0.35)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    head_only = trainable_mask(model, variables["params"], None)
    assert {k for k, v in head_only.items() if all(jax.tree.leaves(v))} == {"classifier"}
    mask = trainable_mask(model, variables["params"], 100)  # the Keras guide's fine_tune_at
    names = keras_layer_names(model)
    assert names[100] == "block_11_expand_relu"  # so block_11_expand and its BN stay frozen, as in Keras
    assert not mask["block_11_expand"]["kernel"] and mask["block_11_depthwise"]["kernel"]
    assert mask["Conv_1_bn"]["scale"] and not mask["block_10_project"]["kernel"]
    resnet = ResNet50V2(num_classes=2)
    rv = jax.eval_shape(lambda: resnet.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    m = trainable_mask(resnet, rv["params"], "conv5_block1_preact_bn")
    assert m["conv5_block1_0_conv"]["kernel"] and m["post_bn"]["scale"] and not m["conv4_block6_3_conv"]["kernel"]
    with pytest.raises(ConfigError, match="no Keras layer"):
        trainable_mask(resnet, rv["params"], "conv9")
    with pytest.raises(ConfigError, match="outside"):
        trainable_mask(resnet, rv["params"], 500)


@pytest.mark.slow
def test_frozen_batch_norm_ignores_train_and_dropout_follows_it():
    model = MobileNetV2(num_classes=2, alpha=0.35, frozen_bn=True, dropout=0.5)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 32, 32, 3))
    v = model.init(jax.random.PRNGKey(1), x)
    out, upd = model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(2)})
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), upd["batch_stats"], v["batch_stats"]))
    feats = lambda m, train: m.apply(v, x, train=train, mutable=["intermediates", "batch_stats"],
                                     rngs={"dropout": jax.random.PRNGKey(2)})[1]["intermediates"]["features"][0]
    np.testing.assert_array_equal(feats(model, True), feats(model, False))
    scratch = MobileNetV2(num_classes=2, alpha=0.35, frozen_bn=False, dropout=0.5)
    _, upd = scratch.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(2)})
    assert not np.allclose(upd["batch_stats"]["bn_Conv1"]["mean"], v["batch_stats"]["bn_Conv1"]["mean"])


def test_make_divisible_matches_mobilenet_widths():
    assert [make_divisible(c * 0.35) for c in (32, 16, 24, 320)] == [16, 8, 8, 112]
    assert make_divisible(1280 * 1.4) == 1792
