"""scripts/cpu_numerics.py: a setting runs in a fresh process with its environment and cores, the same setting gives
the same bits, and the accuracies it compares with are the records'."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("cpu_numerics", ROOT / "scripts" / "cpu_numerics.py")
cpu_numerics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu_numerics)


def test_a_probe_runs_apart_and_gives_the_same_bits_for_the_same_setting():
    env = {"JAXDISTILL_COMPILATION_CACHE": "0"}
    first = cpu_numerics.run_child(["probe", "mlp:16"], env, False)
    assert cpu_numerics.run_child(["probe", "mlp:16"], env, False) == first
    assert len(first["sha256"]) == 64 and first["loss"] > 0
    # another model is other bits: the digest is of the trained parameters, not a constant
    assert cpu_numerics.run_child(["probe", "mlp:17"], env, True)["sha256"] != first["sha256"]


def test_network0_is_compared_with_both_records_of_each_bound():
    for bound in cpu_numerics.BOUNDS:
        recorded = cpu_numerics.recorded_network0(bound)
        five = json.loads(cpu_numerics.record_path(bound, 5).read_text())
        twelve = json.loads(cpu_numerics.record_path(bound, 12).read_text())
        assert recorded["five_network_record"] == five["result"]["architectures"]["AlexNet"]["accuracies"][0]
        check = twelve["result"]["architectures"]["AlexNet"]["first_networks"]["check"]
        assert recorded["twelve_network_record_check"] == check["network_0_here"][0]
        assert twelve["config"]["sets"][0].startswith("results/sets/")  # the set network0 trains on is committed
