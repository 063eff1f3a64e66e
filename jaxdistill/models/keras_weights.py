"""Keras weight files into the Flax parameters of `jaxdistill.models.applications`.

Two file layouts are read, both with h5py (Keras itself is not needed):
- legacy HDF5 (`model.save_weights('x.h5')` in Keras 2, `model.save('x.h5')`, and every ImageNet file Keras
  Applications publishes): a group per layer, listed in the root's (or 'model_weights''s) `layer_names` attribute,
  whose `weight_names` attribute orders its arrays;
- Keras 3 `.weights.h5`: 'layers/<auto name>/vars/<i>' with the layer's name in the 'vars' group's `name` attribute.

A layer's arrays come in Keras's order: a convolution's or dense layer's kernel then bias; batch norm's gamma, beta,
moving mean, moving variance. They map onto the Flax module of the same name: kernel -> 'kernel' (a depthwise kernel
(kh, kw, C, 1) becomes Flax's grouped (kh, kw, 1, C)), bias -> 'bias', gamma/beta -> 'scale'/'bias', the moving
statistics -> batch_stats 'mean'/'var'.

Every backbone layer of the model must be in the file with the right shapes, else the import fails naming what is
missing or mismatched (this is how a file without a published checksum, MobileNetV2's, is checked). Head layers are
taken when the model's head has them ('predictions' for head='imagenet'); a file with top loaded into a 'transfer'
head leaves the new 'classifier' as initialised (the "notop" use of a file with top).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from jaxdistill.errors import DataError
from jaxdistill.models.applications import HEAD_LAYERS

__all__ = ["read_keras_weights", "import_keras_weights"]


def _decode(name: Any) -> str:
    return name.decode("utf8") if isinstance(name, bytes) else str(name)


def read_keras_weights(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """{Keras layer name: its arrays in Keras's order} for every layer with weights in a Keras weights file."""
    import h5py  # a dependency of the importer only

    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable HDF5 Keras weights file ({e}); download it again, or give the "
                        ".h5 / .weights.h5 file Keras saved") from None
    with handle as f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" in root.attrs:  # legacy HDF5
            layers = {}
            for layer in map(_decode, root.attrs["layer_names"]):
                group = root[layer]
                names = [_decode(n) for n in group.attrs.get("weight_names", [])]
                if names:
                    layers[layer] = [np.asarray(group[n]) for n in names]
            return layers
        if "layers" in root:  # Keras 3 .weights.h5
            layers = {}
            for group in root["layers"].values():
                if "vars" not in group:
                    continue
                vars_ = group["vars"]
                if len(vars_):
                    name = _decode(vars_.attrs.get("name", group.name.rsplit("/", 1)[-1]))
                    layers[name] = [np.asarray(vars_[str(i)]) for i in range(len(vars_))]
            return layers
    raise DataError(f"{path} is HDF5 but not a Keras weights file (no 'layer_names' attribute and no 'layers' "
                    "group); give the .h5 / .weights.h5 file Keras saved")


def import_keras_weights(path: str | os.PathLike, params: Any, batch_stats: Any) -> tuple[dict, dict, dict]:
    """(params, batch_stats, facts): `params` / `batch_stats` of a model from `jaxdistill.models.applications` (as
    its `init` made them) with every layer found in the Keras file at `path` replaced by the file's arrays.

    facts: {'imported': layers taken, 'head_kept': head layers left as initialised, 'ignored': file layers the model
    has no use for (an ImageNet 'predictions' layer under a new head)}. Raises DataError if a backbone layer is
    missing or has another shape."""
    file_layers = read_keras_weights(path)
    params = {k: dict(v) for k, v in params.items()}
    batch_stats = {k: dict(v) for k, v in batch_stats.items()}
    missing, mismatched, imported, head_kept = [], [], [], []
    for layer, flax_params in params.items():
        is_head = layer in HEAD_LAYERS
        if layer not in file_layers:
            (head_kept if is_head else missing).append(layer)
            continue
        arrays = file_layers[layer]
        if layer in batch_stats:  # batch norm
            expected = [flax_params["scale"].shape, flax_params["bias"].shape, batch_stats[layer]["mean"].shape,
                        batch_stats[layer]["var"].shape]
            targets = [(params, "scale"), (params, "bias"), (batch_stats, "mean"), (batch_stats, "var")]
            converted = list(arrays)
        else:
            kernel = arrays[0]
            flax_kernel = flax_params["kernel"].shape
            if kernel.ndim == 4 and kernel.shape[3] == 1 and flax_kernel[2] == 1 and kernel.shape[2] == flax_kernel[3]:
                kernel = kernel.transpose(0, 1, 3, 2)  # depthwise (kh, kw, C, 1) -> grouped (kh, kw, 1, C)
            converted = [kernel] + list(arrays[1:])
            expected = [flax_kernel] + ([flax_params["bias"].shape] if "bias" in flax_params else [])
            targets = [(params, "kernel")] + ([(params, "bias")] if "bias" in flax_params else [])
        shapes = [tuple(a.shape) for a in converted]
        if shapes != [tuple(s) for s in expected]:
            mismatched.append(f"{layer} (file {shapes}, model {[tuple(s) for s in expected]})")
            continue
        for (tree, key), value in zip(targets, converted):
            old = tree[layer][key]
            tree[layer][key] = np.asarray(value, dtype=old.dtype)
        imported.append(layer)
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} layer(s) missing ({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})")
        if mismatched:
            parts.append(f"{len(mismatched)} with other shapes ({'; '.join(mismatched[:3])}"
                         f"{' ...' if len(mismatched) > 3 else ''})")
        raise DataError(f"{path} does not hold this model's weights: {' and '.join(parts)}. Check the model, its "
                        "width multiplier (alpha) and that the file is the one Keras publishes for it")
    ignored = sorted(set(file_layers) - set(params))
    return params, batch_stats, {"imported": len(imported), "head_kept": head_kept, "ignored": ignored}
