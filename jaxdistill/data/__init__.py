"""Datasets: registry, verified download, readers (IDX, CIFAR-10, TFDS), device arrays, augmentations."""
from jaxdistill.data.arrays import RealData, make_real_data, normalize, sample_class, sample_per_class
from jaxdistill.data.registry import REGISTRY, DatasetSpec, FileSpec, get_spec, register
from jaxdistill.data.sources import Dataset, dataset_status, load_dataset

__all__ = ["REGISTRY", "DatasetSpec", "FileSpec", "get_spec", "register", "Dataset", "dataset_status",
           "load_dataset", "RealData", "make_real_data", "normalize", "sample_class", "sample_per_class"]
