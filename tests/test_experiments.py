"""Every experiment's smoke variant runs end to end on real MNIST (the configs CI keeps honest)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("JAXDISTILL_DATA")
pytestmark = pytest.mark.skipif(not DATA or not Path(DATA, "mnist").is_dir(),
                                reason="needs the MNIST files: set JAXDISTILL_DATA to a folder holding mnist/")


@pytest.mark.parametrize("script,expect", [
    (["random_mnist.py"], "random ipc=1:"),
    (["full_data_mnist.py"], "full-data ConvNet, 1 epochs: test accuracy"),
    (["gradient_matching.py", "--method", "dc"], "dc mnist ipc=1 (smoke):"),
    (["gradient_matching.py", "--method", "dsa"], "dsa mnist ipc=1 (smoke):"),
    (["kd_mnist.py"], "KD (T=4, alpha=0.1)"),
], ids=["random", "full_data", "dc", "dsa", "kd"])
def test_smoke_variant_runs(script, expect, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / script[0]), *script[1:], "--variant", "smoke",
                           "--workdir", str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert expect in done.stdout
    assert (tmp_path / "run" / "config.json").exists()
    assert not list((ROOT / "results").glob("*smoke*"))  # smoke runs never write result records
