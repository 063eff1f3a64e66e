import json
import os
import subprocess

import numpy as np
import pytest

from jaxdistill import records


def test_write_json_is_atomic_and_converts_arrays(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    records.write_json(path, {"a": np.float32(1.5), "b": np.arange(3), "c": (1, 2)})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": [1, 2]}

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        records.write_json(path, {"a": 2})
    assert json.loads(path.read_text())["a"] == 1.5  # the old file survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # and no temporary is left


def test_versions_name_the_libraries_and_the_source_commit():
    v = records.versions()
    assert v["jax"] != "not installed" and v["python"].count(".") == 2
    in_git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=os.path.dirname(records.__file__),
                            capture_output=True, text=True).returncode == 0
    if in_git:
        assert len(v["jaxdistill_commit"].split("-")[0]) == 40
    else:
        assert "jaxdistill_commit" not in v


def test_versions_name_the_commit_the_process_started_from(monkeypatch):
    # a record written at the end of a long run named the commit made while it ran, not the code that ran
    def no_git(*args, **kwargs):
        raise AssertionError("versions() asked git again")

    monkeypatch.setattr(records.subprocess, "run", no_git)
    assert records.versions().get("jaxdistill_commit") == records.STARTED_FROM


def test_arrays_checksum_changes_with_any_pixel_label_or_dtype():
    images, labels = np.zeros((4, 3, 3, 1), np.float32), np.arange(4)
    base = records.arrays_checksum((images, labels))
    changed = images.copy()
    changed[2, 1, 1, 0] = 1e-6
    assert records.arrays_checksum((changed, labels)) != base
    assert records.arrays_checksum((images, labels[::-1])) != base
    assert (records.arrays_checksum((images, labels.astype(np.int64)))
            != records.arrays_checksum((images, labels.astype(np.int32))))
    assert records.arrays_checksum((images.copy(), labels.copy())) == base


def test_device_info_records_the_host_and_the_cpu_settings_in_effect():
    from jaxdistill import cpu_tuning
    info = records.device_info()
    assert {"backend", "devices", "device_count", "host", "cpu_count", "platform"} <= set(info)  # the old keys
    assert isinstance(info["cpu_model"], str) and info["kernel"]
    assert info["cpu_tuning"] == cpu_tuning.applied_settings()
    assert info["cpu"] == records.cpu_id()
    assert 1 <= info["cpus_usable"] <= info["cpu_count"]
    assert records.as_read_back(info) == info  # JSON-ready


def test_device_info_names_the_environment_that_changes_the_rounding(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = records.device_info()["numerics_env"]
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and "OMP_NUM_THREADS" not in env


X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse4_1 sse4_2 avx f16c avx2 fma avx512f avx512bw avx512_bf16

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
stepping\t: 0
flags\t\t: fpu avx2
"""


def test_cpu_id_tells_apart_cpus_that_share_a_model_name():
    zen4 = records.cpu_id(records.cpuinfo_fields(X86_CPUINFO))
    assert zen4 == {"vendor": "AuthenticAMD", "family": 25, "model": 17, "stepping": 1,
                    "isa": ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_bf16"]}
    # the same name without AVX-512 (a Zen 3): another id, so records made on the two are not taken for one machine
    zen3 = records.cpu_id(records.cpuinfo_fields(
        X86_CPUINFO.replace("model\t\t: 17", "model\t\t: 1").replace(" avx512f avx512bw", "")))
    assert zen3["model"] == 1 and "avx512f" not in zen3["isa"] and zen3 != zen4


def test_cpu_id_reads_arm_cpus_and_gives_nothing_without_cpuinfo():
    arm = records.cpu_id(records.cpuinfo_fields(
        "processor\t: 0\nFeatures\t: fp asimd sve\nCPU implementer\t: 0x41\nCPU part\t: 0xd40\n"))
    assert arm == {"implementer": "0x41", "part": "0xd40", "isa": ["asimd", "sve"]}
    assert records.cpu_id(records.cpuinfo_fields("")) == {}
    assert records.cpu_model(records.cpuinfo_fields(X86_CPUINFO)) == "AMD EPYC"


def test_write_npz_deflates_on_request_and_reads_back_the_same_arrays(tmp_path):
    arrays = {"images": np.zeros((50, 8, 8), np.float32), "labels": np.arange(50, dtype=np.int32)}
    records.write_npz(tmp_path / "plain.npz", **arrays)
    records.write_npz(tmp_path / "small.npz", compressed=True, **arrays)
    assert (tmp_path / "small.npz").stat().st_size < (tmp_path / "plain.npz").stat().st_size / 5
    for name in ("plain.npz", "small.npz"):
        with np.load(tmp_path / name) as z:
            assert sorted(z.files) == ["images", "labels"]
            assert all(z[k].dtype == v.dtype and np.array_equal(z[k], v) for k, v in arrays.items())
