import jax
import numpy as np
import pytest

from jaxdistill.data.arrays import denormalize, make_real_data, normalize, sample_class, sample_per_class
from jaxdistill.errors import ConfigError


def make(counts=(3, 5, 4)):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    rng = np.random.default_rng(0)
    perm = rng.permutation(labels.size)
    labels = labels[perm]
    # image i carries its own index, so we can check which rows were drawn
    images = np.broadcast_to(np.arange(labels.size, dtype=np.float32)[:, None, None, None], (labels.size, 2, 2, 1))
    return make_real_data(np.array(images), labels, len(counts)), labels


def test_index_sorted_by_class_with_offsets_and_counts():
    real, labels = make()
    assert real.class_counts.tolist() == [3, 5, 4]
    assert real.class_offsets.tolist() == [0, 3, 8]
    assert real.labels.tolist() == sorted(labels.tolist())


def test_sample_per_class_draws_distinct_images_of_the_right_class():
    real, labels = make()
    for seed in range(5):
        images, drawn = sample_per_class(jax.random.PRNGKey(seed), real, 3)
        assert drawn.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        ids = images[:, 0, 0, 0].astype(int).tolist()
        assert len(set(ids)) == 9
        assert [int(labels[i]) for i in ids] == drawn.tolist()


def test_sampling_is_uniform_over_a_class():
    real, labels = make()
    counts = np.zeros(labels.size)
    for seed in range(300):
        images = sample_class(jax.random.PRNGKey(seed), real, 1, 2)
        counts[images[:, 0, 0, 0].astype(int)] += 1
    class1 = np.flatnonzero(labels == 1)
    assert counts.sum() == counts[class1].sum() == 600
    np.testing.assert_allclose(counts[class1] / 600, 1 / 5, atol=0.05)


def test_sample_is_one_compiled_function_per_n():
    real, _ = make()
    from jaxdistill.data import arrays
    before = arrays._sample_per_class._cache_size()
    for seed in range(3):
        sample_per_class(jax.random.PRNGKey(seed), real, 2)
    assert arrays._sample_per_class._cache_size() - before <= 1


def test_too_many_per_class_or_bad_labels_raise():
    real, _ = make()
    with pytest.raises(ConfigError, match="smallest class has 3"):
        sample_per_class(jax.random.PRNGKey(0), real, 4)
    with pytest.raises(ConfigError, match="labels"):
        make_real_data(np.zeros((2, 2, 2, 1)), np.array([0, 3]), 3)


def test_normalize_roundtrip():
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 3, 3), dtype=np.uint8)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    z = normalize(x, mean, std)
    np.testing.assert_allclose(z[..., 1], (x[..., 1] / 255 - 0.2) / 0.6, rtol=1e-6)
    np.testing.assert_allclose(denormalize(z, mean, std), x / 255, atol=1e-6)
