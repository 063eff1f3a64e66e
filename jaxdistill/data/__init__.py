"""Datasets: registry (with per-dataset defaults), verified download, readers (IDX, CIFAR-10, TFDS), resizing,
device arrays, augmentations."""
from jaxdistill.data.arrays import RealData, make_real_data, normalize, sample_class, sample_per_class
from jaxdistill.data.registry import REGISTRY, DatasetDefaults, DatasetSpec, FileSpec, Manifest, get_spec, register
from jaxdistill.data.sources import DataOrigin, Dataset, dataset_status, load_dataset

__all__ = ["REGISTRY", "DatasetDefaults", "DatasetSpec", "FileSpec", "Manifest", "get_spec", "register", "DataOrigin",
           "Dataset", "dataset_status",
           "load_dataset", "RealData", "make_real_data", "normalize", "sample_class", "sample_per_class"]
