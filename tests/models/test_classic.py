"""LeNet, AlexNet, VGG11 and ResNet-18 of the cross-architecture tables: parameter counts equal the DC reference's
PyTorch networks (counted by hand from their layer lists), logits have the right shape at 28 px (1 channel) and
32 px (3 channels), batch norm variants carry statistics, and the strided convolution equals XLA's."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.errors import ConfigError
from jaxdistill.models import CROSS_ARCHITECTURES, ModelConfig
from jaxdistill.models.layers import Conv

# (architecture, input shape) -> parameters of the reference network for 10 classes
COUNTS = {
    ("LeNet", (28, 28, 1)): 156 + 2416 + 48120 + 10164 + 850,
    ("AlexNet", (28, 28, 1)): 3328 + 614592 + 442624 + 442560 + 331968 + 30730,
    # convs with bias, GroupNorm(C, C) affine, linear 512 -> 10
    ("VGG11", (28, 28, 1)): 9219328 + 2 * (64 + 128 + 256 + 256 + 4 * 512) + 5130,
    ("ResNet18", (32, 32, 3)): 11173962,  # the usual CIFAR ResNet-18 count
    ("MLP", (28, 28, 1)): 784 * 128 + 128 + 128 * 128 + 128 + 1290,
}


@pytest.mark.parametrize("arch,shape", sorted(COUNTS))
def test_parameter_counts_equal_the_reference(arch, shape):
    model = ModelConfig.parse(CROSS_ARCHITECTURES[arch]).build(10)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1,) + shape)))
    assert sum(np.prod(x.shape) for x in jax.tree.leaves(shapes["params"])) == COUNTS[(arch, shape)]


@pytest.mark.parametrize("arch", ["LeNet", "AlexNet", "VGG11", "ResNet18"])
def test_logits_at_28_and_32_px(arch):
    model = ModelConfig.parse(CROSS_ARCHITECTURES[arch]).build(3)
    for shape in ((2, 28, 28, 1), (2, 32, 32, 3)):
        out = jax.eval_shape(lambda s=shape: model.init_with_output(jax.random.PRNGKey(0), jnp.zeros(s))[0])
        assert out.shape == (2, 3), (arch, shape)


def test_batchnorm_variants_keep_statistics_and_unknown_norms_fail():
    model = ModelConfig.parse("vgg11:norm=batchnorm").build(10)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1))))
    assert "batch_stats" in shapes
    with pytest.raises(ConfigError, match="unknown norm"):
        ModelConfig.parse("resnet18:norm=group").build(10).init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))


def test_strided_conv_without_bias_equals_xla():
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 7, 3))
    conv = Conv(4, 3, padding=1, stride=2, use_bias=False)
    variables = conv.init(jax.random.PRNGKey(0), x)
    assert set(variables["params"]) == {"kernel"}
    expected = jax.lax.conv_general_dilated(x, variables["params"]["kernel"], (2, 2), [(1, 1), (1, 1)],
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(conv.apply(variables, x)), np.asarray(expected), rtol=1e-6)
    assert expected.shape == (2, 4, 4, 4)
