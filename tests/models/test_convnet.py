import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.errors import ConfigError
from jaxdistill.models import ConvNet, MLP, make_model
from jaxdistill.models.layers import (InstanceNorm, avg_pool_2x2, conv_fastgrad, conv_matmul, conv_winograd,
                                      conv_xla)


def n_params(variables):
    return sum(x.size for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("shape,expected", [((1, 28, 28, 1), 317_706), ((1, 32, 32, 3), 320_010)])
def test_param_count_equals_reference_pytorch_convnet(shape, expected):
    # Reference (DC's ConvNet, width 128, depth 3, instancenorm): conv1 Cin*9*128+128, GroupNorm affine 2*128 per
    # block, two 128->128 convs, and a 2048 -> 10 linear layer; MNIST's first conv pads 3 so the flatten is 4x4x128.
    variables = jax.eval_shape(lambda: ConvNet(10).init(jax.random.PRNGKey(0), jnp.zeros(shape)))
    assert n_params(variables) == expected


def test_feature_map_sizes_mnist_pads_to_32():
    net = ConvNet(10, width=4, depth=3)
    variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    dense_kernel = variables["params"]["Dense_0"]["Dense_0"]["kernel"]
    assert dense_kernel.shape == (4 * 4 * 4, 10)  # 28 + 2*3 - 2 = 32 -> 16 -> 8 -> 4


@pytest.mark.slow
@pytest.mark.parametrize("conv", [conv_matmul, conv_fastgrad, conv_winograd], ids=["matmul", "fastgrad", "winograd"])
@pytest.mark.parametrize("cin,size", [(1, (6, 6)), (5, (6, 6)), (16, (6, 6)), (3, (7, 5))])
def test_conv_kernels_equal_xla_conv_values_grads_and_second_order_grads(conv, cin, size):
    # 6x6 with padding 3 (the 1-channel first layer) gives 10x10 outputs and 7x5 gives 7x5: Winograd's 4x4 output
    # tiles are cropped at the borders
    kx, kw, kv = jax.random.split(jax.random.PRNGKey(cin), 3)
    x = jax.random.normal(kx, (2, *size, cin))
    w = jax.random.normal(kw, (3, 3, cin, 4)) / np.sqrt(9 * cin)  # O(1) outputs, as in a real net
    pad = 3 if cin == 1 else 1
    np.testing.assert_allclose(conv(x, w, pad), conv_xla(x, w, pad), rtol=1e-5, atol=1e-4)
    cot = jax.random.normal(kv, conv_xla(x, w, pad).shape)
    first = jax.grad(lambda x, w: jnp.sum(conv(x, w, pad) * cot), argnums=(0, 1))(x, w)
    first_xla = jax.grad(lambda x, w: jnp.sum(conv_xla(x, w, pad) * cot), argnums=(0, 1))(x, w)
    for a, b in zip(first, first_xla):  # input and weight gradients
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

    # Gradient matching differentiates a function of a weight gradient with respect to the input images.
    def matching_loss(conv, x):
        g = jax.grad(lambda w: jnp.sum(jnp.tanh(conv(x, w, pad)) ** 2))(w)
        return jnp.sum(g * jax.random.normal(kv, g.shape))

    g_mm = jax.grad(lambda x: matching_loss(conv, x))(x)
    g_xla = jax.grad(lambda x: matching_loss(conv_xla, x))(x)
    np.testing.assert_allclose(g_mm, g_xla, rtol=1e-4, atol=1e-5 * float(jnp.abs(g_xla).max()))


@pytest.mark.parametrize("size", [(6, 6), (7, 5)])
def test_avg_pool_2x2_equals_flax_avg_pool_values_and_grads(size):
    # the reference's AvgPool2d(2, 2): an odd last row or column is dropped
    import flax.linen as nn
    x = jax.random.normal(jax.random.PRNGKey(0), (2, *size, 3))
    ref = lambda x: nn.avg_pool(x, (2, 2), (2, 2))
    assert avg_pool_2x2(x).shape == ref(x).shape == (2, size[0] // 2, size[1] // 2, 3)
    np.testing.assert_allclose(avg_pool_2x2(x), ref(x), rtol=1e-6, atol=1e-6)
    cot = jax.random.normal(jax.random.PRNGKey(1), ref(x).shape)
    grad_of = lambda f: jax.grad(lambda x: jnp.sum(jnp.tanh(f(x)) * cot))(x)
    np.testing.assert_allclose(grad_of(avg_pool_2x2), grad_of(ref), rtol=1e-6, atol=1e-6)
    g = np.asarray(grad_of(avg_pool_2x2))
    assert not np.any(g[:, 2 * (size[0] // 2):]) and not np.any(g[:, :, 2 * (size[1] // 2):])  # dropped row, column
    assert np.all(g[:, :2 * (size[0] // 2), :2 * (size[1] // 2)] != 0)


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm", "layernorm", "none"])
@pytest.mark.parametrize("pooling", ["avgpooling", "maxpooling"])
def test_norms_and_poolings_build_and_give_finite_logits(norm, pooling):
    net = ConvNet(3, width=4, depth=2, norm=norm, pooling=pooling)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    variables = net.init(jax.random.PRNGKey(1), x, train=False)
    assert ("batch_stats" in variables) == (norm == "batchnorm")
    logits = net.apply(variables, x, train=False)
    assert logits.shape == (2, 3) and bool(jnp.all(jnp.isfinite(logits)))


def test_instancenorm_normalises_each_channel_of_each_image():
    # With identity affine params, instance norm output has zero mean, unit variance per (image, channel).
    from jaxdistill.models.convnet import _norm
    norm = _norm("instancenorm", 4, train=True)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 5, 4)) * 3 + 1
    y = norm.apply(norm.init(jax.random.PRNGKey(0), x), x)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1, atol=1e-3)


@pytest.mark.slow
def test_instancenorm_equals_flax_groupnorm_with_one_group_per_channel_values_and_grads():
    # The reference's instance norm is GroupNorm(C, C); ours is written directly (faster), so it must agree with
    # Flax's GroupNorm in values and in first and second derivatives (gradient matching needs both).
    import flax.linen as nn
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 5, 4)) * 2 + 0.5
    scale = jax.random.normal(jax.random.PRNGKey(1), (4,))
    bias = jax.random.normal(jax.random.PRNGKey(2), (4,))
    variables = {"params": {"scale": scale, "bias": bias}}
    ours = lambda x: InstanceNorm().apply(variables, x)
    ref = lambda x: nn.GroupNorm(num_groups=4, epsilon=1e-5).apply(variables, x)
    np.testing.assert_allclose(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    cot = jax.random.normal(jax.random.PRNGKey(3), x.shape)
    grad_of = lambda f: jax.grad(lambda x: jnp.sum(jnp.tanh(f(x)) * cot))
    np.testing.assert_allclose(grad_of(ours)(x), grad_of(ref)(x), rtol=1e-4, atol=1e-5)
    second = lambda f: jax.grad(lambda x: jnp.sum(grad_of(f)(x) ** 2))(x)
    np.testing.assert_allclose(second(ours), second(ref), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_conv_bias_before_instance_norm_is_a_parameter_that_changes_nothing():
    # The instance-norm net does not add its conv biases (the norm removes them): it equals the same net written out
    # with the biases added, in logits and in every other parameter's gradient, and the biases' gradient is exactly
    # zero. Under another norm the bias is added.
    import flax.linen as nn
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 1))
    onehot = jax.nn.one_hot(jnp.array([0, 1, 2]), 3)
    net = ConvNet(3, width=4, depth=2)
    params = net.init(jax.random.PRNGKey(1), x)["params"]
    for layer in ("Conv_0", "Conv_1"):  # large biases, so that adding one would show in float32
        params[layer]["bias"] = params[layer]["bias"] + 1.0

    def written_out(p, x):
        for d in range(2):
            x = conv_xla(x, p[f"Conv_{d}"]["kernel"], 3 if d == 0 else 1) + p[f"Conv_{d}"]["bias"]
            x = InstanceNorm().apply({"params": p[f"InstanceNorm_{d}"]}, x)
            x = nn.avg_pool(nn.relu(x), (2, 2), (2, 2))
        dense = p["Dense_0"]["Dense_0"]
        return x.reshape(x.shape[0], -1) @ dense["kernel"] + dense["bias"]

    loss = lambda f: lambda p: -jnp.mean(jnp.sum(jax.nn.log_softmax(f(p, x)) * onehot, -1))
    ours = lambda p, x: net.apply({"params": p}, x)
    np.testing.assert_allclose(ours(params, x), written_out(params, x), rtol=1e-4, atol=1e-4)
    g, g_ref = jax.grad(loss(ours))(params), jax.grad(loss(written_out))(params)
    for layer in ("Conv_0", "Conv_1"):
        assert not np.any(np.asarray(g[layer]["bias"]))
        assert float(jnp.abs(g_ref[layer]["bias"]).max()) < 1e-5  # rounding noise where the bias is added
        g[layer]["bias"] = g_ref[layer]["bias"] = jnp.zeros(4)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g, g_ref)

    other = ConvNet(3, width=4, depth=1, norm="none")
    p = other.init(jax.random.PRNGKey(1), x)["params"]
    shifted = {**p, "Conv_0": {**p["Conv_0"], "bias": p["Conv_0"]["bias"] + 5.0}}
    assert not np.allclose(other.apply({"params": p}, x), other.apply({"params": shifted}, x))


def test_winograd_is_exact_in_tile_layout_and_vmaps_over_per_network_kernels():
    # one 4x4 tile and several; per-network kernels under vmap (seed sweeps, evaluation nets) as batched matmuls
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 8, 12, 4))
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 4, 6)) / 6
    ours = jax.vmap(conv_winograd, in_axes=(0, 0, None))(x, w, 1)
    ref = jax.vmap(conv_xla, in_axes=(0, 0, None))(x, w, 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="3x3"):
        conv_winograd(x[0], jnp.zeros((5, 5, 4, 2)), 2)


def test_auto_conv_by_backend_batch_and_channels():
    from jaxdistill.models.layers import MATMUL_MIN_BATCH, WINOGRAD_MIN_CHANNELS, default_conv_impl
    cpu = jax.default_backend() == "cpu"
    assert default_conv_impl(1) == "xla"
    assert default_conv_impl(MATMUL_MIN_BATCH, WINOGRAD_MIN_CHANNELS) == ("winograd" if cpu else "xla")
    assert default_conv_impl(MATMUL_MIN_BATCH, 1) == ("fastgrad" if cpu else "xla")  # the first layer
    assert default_conv_impl(MATMUL_MIN_BATCH, 128, kernel_size=5) == ("fastgrad" if cpu else "xla")
    with pytest.raises(ConfigError, match="conv_impl"):
        ConvNet(2, width=4, depth=1, conv_impl="fft").init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))


def test_torch_default_init_bounds():
    variables = ConvNet(10, width=8, depth=1).init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
    k = variables["params"]["Conv_0"]["kernel"]
    bound = 1 / np.sqrt(3 * 9)
    assert float(jnp.abs(k).max()) <= bound and float(jnp.abs(k).max()) > 0.8 * bound


def test_unknown_settings_are_config_errors():
    with pytest.raises(ConfigError, match="norm"):
        ConvNet(10, norm="groupnorm").init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
    with pytest.raises(ConfigError, match="unknown model"):
        make_model("resnet1000", 10)


def test_mlp_dropout_only_in_training():
    net = MLP(10, widths=(16, 16), dropout=0.5)
    x = jnp.ones((4, 6, 6, 1))
    variables = net.init(jax.random.PRNGKey(0), x, train=False)
    eval_a = net.apply(variables, x, train=False)
    eval_b = net.apply(variables, x, train=False)
    np.testing.assert_array_equal(eval_a, eval_b)
    tr_a = net.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    tr_b = net.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    assert not np.allclose(tr_a, tr_b)
    assert sum(p.size for p in jax.tree.leaves(variables)) == 36 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10
