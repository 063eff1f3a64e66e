"""scripts/reproduce_all.py: every row and every smoke command names an experiment, variant and choices that
exist, and each row's record name is the one its experiment writes."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("reproduce_all", ROOT / "scripts" / "reproduce_all.py")
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)


@pytest.mark.parametrize("row", reproduce.ROWS, ids=[r.record for r in reproduce.ROWS])
def test_rows_name_existing_experiments_and_their_records(row):
    config = reproduce.experiment_config(row.args, row.variant)
    command = " ".join(["python", f"experiments/{row.args[0]}.py", *row.args[1:], "--variant", row.variant])
    if "name" in config:
        assert reproduce.record_of(command) == row.record
    if row.after:  # the row it reads runs before it, also in GPU order, and its run folder is the one read
        earlier = [r.record for r in reproduce.ROWS[:reproduce.ROWS.index(row)]]
        source = reproduce.source_row(row)
        assert row.after in earlier and source.gpu_priority <= row.gpu_priority
        if "--distilled" in row.args:
            assert row.args[row.args.index("--distilled") + 1] == f"runs/{row.after}"


def test_every_records_full_protocol_is_a_row():
    # a record's full-protocol command that no row runs would be left out of `--run`; records whose full protocol
    # is prose (an evaluation made by hand with `jaxdistill evaluate`) name no experiment run
    rows = {r.record for r in reproduce.ROWS}
    missing = {}
    for path in sorted((ROOT / "results").glob("*.json")):
        command = json.loads(path.read_text()).get("full_protocol_command")
        record = reproduce.record_of(command) if isinstance(command, str) else None
        if record is not None and record not in rows:
            missing[path.name] = command
    assert not missing
    assert reproduce.record_of("the same evaluation with --epochs 1000") is None


def test_the_cross_architecture_rows_of_given_sets_follow_the_rows_that_distil_them():
    from jaxdistill import experiment
    module = experiment.load_experiment(ROOT / "experiments" / "cross_architecture.py")
    rows = {r.record: r for r in reproduce.ROWS}
    for method in module.SOURCE_ROWS:
        for ipc in (1, 10):
            for eps in (("10", "inf") if method == "psg" else ("",)):
                first, last = module.full_protocol_command(method, f"ipc{ipc}_reduced", eps).split(" && ")
                row = rows[reproduce.record_of(last)]
                assert row.after == reproduce.record_of(first) and row.after in rows
                assert f"--distilled runs/{row.after}" in last  # the folder that the source row writes


def test_a_row_whose_record_distilled_fewer_sets_than_its_variant_asks_is_partial(tmp_path, monkeypatch):
    # the DSA ipc-1 record of 3 x 20 was made before the full rows became the reference's 5 x 20: it must not count
    # as done, or --run would never complete it
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    (tmp_path / "results").mkdir()
    row = next(r for r in reproduce.ROWS if r.record == "dsa_mnist_ipc1")
    assert reproduce.variant_seeds(row) == [0, 1, 2, 3, 4]
    assert reproduce.row_state(row) == "todo"
    record = tmp_path / "results" / "dsa_mnist_ipc1.json"
    record.write_text(json.dumps({"config": {"seeds": [0, 1, 2]}}))
    assert reproduce.row_state(row) == "partial (3 of 5 sets)"
    record.write_text(json.dumps({"config": {"seeds": [0, 1, 2, 3, 4]}}))
    assert reproduce.row_state(row) == "done"
    # a cross-architecture record of given sets keeps one seed list per set (it once made the listing raise)
    xa = next(r for r in reproduce.ROWS if r.record == "cross_architecture_dc_mnist_ipc1")
    (tmp_path / "results" / f"{xa.record}.json").write_text(json.dumps({"config": {"seeds": [[0], [1], [2]]}}))
    assert reproduce.row_state(xa) == "partial (3 of 5 sets)"
    (tmp_path / "results" / f"{xa.record}.json").write_text(json.dumps({"config": {"seeds": [[0, 1], [2], [3, 4]]}}))
    assert reproduce.row_state(xa) == "done"
    # a cross-architecture run stopped between architectures leaves a record of those done, which it resumes from
    (tmp_path / "results" / f"{xa.record}.json").write_text(json.dumps(
        {"config": {"seeds": [[0, 1], [2], [3, 4]]}, "result": {"architectures_left": ["VGG11", "ResNet18"]}}))
    assert reproduce.row_state(xa) == "partial (2 architectures left)"
    kd = next(r for r in reproduce.ROWS if r.record == "kd_mnist_course")  # no distillation seeds to compare
    (tmp_path / "results" / "kd_mnist_course.json").write_text(json.dumps({"config": {}}))
    assert reproduce.row_state(kd) == "done"
    # --run skips done rows and runs partial ones again
    ran = []
    monkeypatch.setattr(reproduce, "_run", lambda argv, dry: ran.append(argv) or 0)
    record.write_text(json.dumps({"config": {"seeds": [0, 1, 2]}}))
    dsa = ["gradient_matching", "--method", "dsa", "--variant", "ipc1"]
    assert reproduce.main(["--run", "--only", "dsa_mnist_ipc1"]) == 0
    assert dsa in ran
    ran.clear()
    record.write_text(json.dumps({"config": {"seeds": [0, 1, 2, 3, 4]}}))
    assert reproduce.main(["--run", "--only", "dsa_mnist"]) == 0  # the ipc-1 row and the others
    assert dsa not in ran and ran  # the ipc-10 row, still todo, runs


def test_a_row_begun_as_seed_parts_runs_its_other_seeds_then_merges(tmp_path, monkeypatch):
    # a session finishes one selection of a full coreset row (`--seeds 0`); the next `--run` must not redo it
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    (tmp_path / "results").mkdir()
    row = next(r for r in reproduce.ROWS if r.record == "coreset_herding_mnist_ipc1")
    command = [*row.args, "--variant", "ipc1"]
    assert reproduce.run_commands(row, []) == [command]  # no part yet: the whole row
    (tmp_path / "results" / f"{row.record}_seed0.json").write_text(json.dumps({"config": {"seeds": [0]}}))
    (tmp_path / "results" / f"{row.record}_seed3_4.json").write_text(json.dumps({"config": {"seeds": [3, 4]}}))
    (tmp_path / "results" / f"{row.record}_seed0_notes.json").write_text("{}")  # not a part's name
    assert reproduce.row_state(row) == "partial (3 of 5 sets, in --seeds parts)"
    assert reproduce.run_commands(row, []) == [[*command, "--seeds", "1"], [*command, "--seeds", "2"],
                                               [*command, "--merge"]]
    (tmp_path / "results" / f"{row.record}_seed1_2.json").write_text(json.dumps({"config": {"seeds": [1, 2]}}))
    assert reproduce.row_state(row) == "parts of every set (merge)"
    assert reproduce.run_commands(row, []) == [[*command, "--merge"]]
    ran = []
    monkeypatch.setattr(reproduce, "_run", lambda argv, dry: ran.append(argv) or 0)
    assert reproduce.main(["--run", "--only", "coreset_herding_mnist_ipc1"]) == 0
    assert [*command, "--merge"] in ran and command not in ran
    # two parts holding one seed cannot be merged: the listing says so
    (tmp_path / "results" / f"{row.record}_seed2.json").write_text(json.dumps({"config": {"seeds": [2]}}))
    assert reproduce.row_state(row).startswith("conflicting --seeds parts")
    (tmp_path / "results" / f"{row.record}_seed2.json").unlink()
    # once merged, the record decides, as for any row
    (tmp_path / "results" / f"{row.record}.json").write_text(json.dumps(
        {"config": {"seeds": [0, 1, 2, 3, 4]},
         "parts": [{"record": f"{row.record}_seed{s}.json"} for s in ("0", "1_2", "3_4")]}))
    assert reproduce.row_state(row) == "done"
    # an experiment without --seeds ignores files named like parts
    full = next(r for r in reproduce.ROWS if r.record == "full_data_mnist_full")
    (tmp_path / "results" / "full_data_mnist_full_seed0.json").write_text(json.dumps({"config": {"seeds": [0]}}))
    assert reproduce.row_state(full) == "todo" and reproduce.run_commands(full, []) == [
        [*full.args, "--variant", "full"]]


def test_a_partial_record_rerun_in_seed_parts_counts_only_the_parts_it_did_not_pool(tmp_path, monkeypatch):
    # DSA ipc 1: a record merged from parts of seeds 0-2 at an older config; the row is run again at 5 x 20, a seed
    # per session, and the new parts of seeds 0-2 rewrite the old files under their names
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    row = next(r for r in reproduce.ROWS if r.record == "dsa_mnist_ipc1")
    command = [*row.args, "--variant", "ipc1"]

    def part(seed, command="old"):
        rec = {"config": {"seeds": [seed]}, "command": command, "wall_time_s": 1.0 + seed}
        (results / f"dsa_mnist_ipc1_seed{seed}.json").write_text(json.dumps(rec))
        return {"record": f"dsa_mnist_ipc1_seed{seed}.json", **rec}
    pooled = [part(s) for s in (0, 1, 2)]
    (results / "dsa_mnist_ipc1.json").write_text(json.dumps({"config": {"seeds": [0, 1, 2]}, "parts": pooled}))
    assert reproduce.row_state(row) == "partial (3 of 5 sets)"
    assert reproduce.run_commands(row, []) == [command]  # no new part: the whole row, as one run
    part(3, "new")
    assert reproduce.row_state(row) == "partial (1 of 5 sets, in --seeds parts); its record: partial (3 of 5 sets)"
    assert reproduce.run_commands(row, []) == [[*command, "--seeds", str(s)] for s in (0, 1, 2, 4)] + [
        [*command, "--merge"]]
    part(0, "new")  # the old seed-0 part, rewritten: no longer the one the record pooled
    assert reproduce.run_commands(row, [])[0] == [*command, "--seeds", "1"]
    for s in (1, 2, 4):
        part(s, "new")
    assert reproduce.row_state(row).startswith("parts of every set (merge)")
    assert reproduce.run_commands(row, []) == [[*command, "--merge"]]
    # once every seed is in the record, it is done; parts it did not pool beside it are named, to be moved away
    (results / "dsa_mnist_ipc1.json").write_text(json.dumps({"config": {"seeds": [0, 1, 2, 3, 4]}}))
    assert reproduce.row_state(row) == "done (move away the --seeds parts it did not pool: seeds 0, 1, 2, 3, 4)"
    assert reproduce.is_done(reproduce.row_state(row))


def test_only_selects_the_rows_holding_its_whole_words():
    # `--run --only coreset_herding_mnist_ipc1` once went on to the 10-hour ipc-10 row after the ipc-1 merge
    assert [r.record for r in reproduce.selected_rows("coreset_herding_mnist_ipc1")] == ["coreset_herding_mnist_ipc1"]
    assert {r.record for r in reproduce.selected_rows("coreset_herding_mnist")} == {
        f"coreset_herding_mnist_ipc{i}" for i in (1, 10, 50)}
    # a method's row and the cross-architecture row of its sets (the README's example), but not another method's
    idc = {r.record for r in reproduce.selected_rows("idc_mnist_ipc1")}
    assert {"idc_mnist_ipc1", "cross_architecture_idc_mnist_ipc1"} <= idc and "idc_mnist_ipc10" not in idc
    assert not {r for r in idc if "idc" not in r}
    assert not [r for r in reproduce.selected_rows("dc_mnist") if "idc_mnist" in r.record]
    assert len(reproduce.selected_rows(None)) == len(reproduce.ROWS)
    # --only dsa_mnist_ipc1 also names the 52-hour cross-architecture row of its sets; --row names that row alone
    assert "cross_architecture_dsa_mnist_ipc1" in {r.record for r in reproduce.selected_rows("dsa_mnist_ipc1")}


def test_row_runs_exactly_the_named_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    (tmp_path / "results").mkdir()
    ran = []
    monkeypatch.setattr(reproduce, "_run", lambda argv, dry: ran.append(argv) or 0)
    assert reproduce.main(["--run", "--row", "dsa_mnist_ipc1", "--row", "dc_mnist_ipc10"]) == 0
    assert sorted((a[2], a[a.index("--variant") + 1]) for a in ran) == [("dc", "ipc10"), ("dsa", "ipc1")]
    for argv, message in ((["--row", "dsa_mnist_ipc"], "no row named dsa_mnist_ipc"),
                          (["--row", "dsa_mnist_ipc1", "--only", "dc"], "without --only")):
        with pytest.raises(SystemExit):
            reproduce.main(argv)
        assert message in capsys.readouterr().err


def test_a_row_whose_parts_merge_would_refuse_is_named_and_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    row = next(r for r in reproduce.ROWS if r.record == "dsa_mnist_ipc1")
    ran = []
    monkeypatch.setattr(reproduce, "_run", lambda argv, dry: ran.append(argv) or 0)

    def part(name, seeds, command="old"):
        rec = {"config": {"seeds": seeds}, "command": command, "wall_time_s": 1.0}
        (results / f"{name}.json").write_text(json.dumps(rec))
        return {"record": f"{name}.json", **rec}
    # a record pooled from a part of two seeds: new single-seed parts never rewrite it, and --merge would meet
    # seeds 0 and 1 twice
    pooled = [part("dsa_mnist_ipc1_seed0_1", [0, 1]), part("dsa_mnist_ipc1_seed2", [2])]
    (results / "dsa_mnist_ipc1.json").write_text(json.dumps({"config": {"seeds": [0, 1, 2]}, "parts": pooled}))
    part("dsa_mnist_ipc1_seed3", [3], "new")
    state = reproduce.row_state(row)
    assert state.startswith("old --seeds parts in the way (dsa_mnist_ipc1_seed0_1.json, pooled by the record")
    assert "seed2.json" not in state  # the new seed-2 part will rewrite that one
    assert reproduce.blocked(state) and reproduce.run_commands(row, []) == []
    assert reproduce.main(["--run", "--only", "dsa_mnist"]) == 0  # the ipc-1 row and the others
    assert ran and not [a for a in ran if a[0] == "gradient_matching" and a[a.index("--variant") + 1] == "ipc1"]
    # two new parts of one seed: conflicting, skipped too
    (results / "dsa_mnist_ipc1_seed0_1.json").unlink()
    part("dsa_mnist_ipc1_seed3_4", [3, 4], "new")
    assert reproduce.row_state(row).startswith("conflicting --seeds parts")
    assert reproduce.run_commands(row, []) == []


def test_a_row_of_another_rows_sets_reads_every_part_folder_of_a_merged_source(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    (tmp_path / "results").mkdir()
    row = next(r for r in reproduce.ROWS if r.record == "cross_architecture_idc_mnist_ipc1")
    assert reproduce.row_args(row)[-2:] == ["--distilled", "runs/idc_mnist_ipc1"]  # one run, one folder
    (tmp_path / "results" / "idc_mnist_ipc1.json").write_text(json.dumps(
        {"config": {"seeds": [0, 1, 2]}, "parts": [{"record": "idc_mnist_ipc1_seed0.json"},
                                                   {"record": "idc_mnist_ipc1_seed1_2.json"}]}))
    assert reproduce.row_args(row)[-4:] == ["--distilled", "runs/idc_mnist_ipc1_seed0",
                                            "--distilled", "runs/idc_mnist_ipc1_seed1_2"]
    assert not reproduce.source_ready(row)
    for folder in ("idc_mnist_ipc1_seed0", "idc_mnist_ipc1_seed1_2"):
        (tmp_path / "runs" / folder).mkdir(parents=True)
    assert reproduce.source_ready(row)
    # its own files named like parts are not parts: cross_architecture.py takes no --seeds
    (tmp_path / "results" / f"{row.record}_seed0.json").write_text(json.dumps({"config": {"seeds": [0]}}))
    assert reproduce.row_state(row) == "todo" and "--seeds" not in reproduce.run_commands(row, [])[0]


def test_smoke_commands_exist_and_dry_run_lists_them(capsys):
    for command in reproduce.smoke_commands("MHIST"):
        reproduce.experiment_config(command, "smoke")
    assert reproduce.main(["--smoke", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("$ python -m jaxdistill.experiment") == len(reproduce.smoke_commands("x"))
    assert "0 failed" in out


def test_a_smoke_run_fails_on_an_error_a_missing_workdir_or_a_record_it_wrote(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "kept.json").write_text("{}")
    workdir = tmp_path / "run"
    before = reproduce._records()
    assert reproduce.smoke_failure(2, workdir, before) == "exit status 2"
    assert "config.json" in reproduce.smoke_failure(0, workdir, before)
    workdir.mkdir()
    (workdir / "config.json").write_text("{}")
    assert reproduce.smoke_failure(0, workdir, before) is None
    (tmp_path / "results" / "x_smoke.json").write_text("{}")
    assert reproduce.smoke_failure(0, workdir, before) == "wrote results/x_smoke.json"


def test_run_skips_a_row_until_the_row_it_reads_has_finished(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    (tmp_path / "results").mkdir()
    source = tmp_path / "runs" / "idc_mnist_ipc10"
    ran = []
    monkeypatch.setattr(reproduce, "_run", lambda argv, dry: ran.append(argv) or 0)
    only = "cross_architecture_idc_mnist_ipc10"
    # the source row and the row that reads it, not the other rows whose names contain these
    monkeypatch.setattr(reproduce, "ROWS", [r for r in reproduce.ROWS if r.record in (only, "idc_mnist_ipc10")])
    xa = ["cross_architecture", "--method", "idc", "--distilled", "runs/idc_mnist_ipc10", "--variant", "ipc10"]
    assert reproduce.main(["--run", "--dry-run", "--only", only]) == 0  # a dry run lists it
    assert ran == [xa]
    ran.clear()
    assert reproduce.main(["--run", "--only", only]) == 0
    assert not ran and "needs row idc_mnist_ipc10 finished" in capsys.readouterr().out
    source.mkdir(parents=True)  # an interrupted source run: its folder, but no record
    assert reproduce.main(["--run", "--only", only]) == 0
    assert not ran
    (tmp_path / "results" / "idc_mnist_ipc10.json").write_text(json.dumps({"config": {"seeds": [0, 1, 2]}}))
    assert reproduce.main(["--run", "--only", only]) == 0
    assert ran == [xa]
    # run together, the row reads what its source row made, and not what a failed one left
    (tmp_path / "results" / "idc_mnist_ipc10.json").unlink()
    shutil.rmtree(source)

    def run(argv, dry, rc):
        ran.append(argv)
        if argv[0] == "idc" and rc == 0:  # the source row: its folder and, last, its record
            source.mkdir(parents=True)
            (tmp_path / "results" / "idc_mnist_ipc10.json").write_text(json.dumps({"config": {"seeds": [0, 1, 2]}}))
        return rc if argv[0] == "idc" else 0
    for rc, expected in ((1, ["idc"]), (0, ["idc", "cross_architecture"])):
        ran.clear()
        monkeypatch.setattr(reproduce, "_run", lambda argv, dry, rc=rc: run(argv, dry, rc))
        assert reproduce.main(["--run", "--only", "idc_mnist_ipc10"]) == rc
        assert [argv[0] for argv in ran] == expected
