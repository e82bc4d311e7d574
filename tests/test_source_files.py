"""The snapshot's ``source_files`` record and `check_files`'s digest path.

A run loaded from files records each file's SHA-256 beside the hash it gave, so checking the files of an
unchanged project needs no parsing. Every check here compares the digest path with the parsing path on the
same run and files: they must agree in every state of the files (unchanged, reformatted, changed, gone).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchrun import runner
from benchrun.io import file_sha256, read_source
from benchrun.ledger import Ledger
from benchrun.ledger.tables import Run
from benchrun.reproduce import FileCheck, _checks_by_digest, check_files
from benchrun.spec import LoadedSpec, load_run_spec, valid_source_record
from conftest import Project, make_cases


def recorded(project: Project, **spec_overrides: Any) -> Run:
    """A run recorded (not executed) from the project's files, as `benchrun run` records it."""
    loaded = load_run_spec(project.setup(**spec_overrides))
    led = Ledger(str(project.ledger))
    return led.get_run(runner.create_run(loaded, led))


def without_record(run: Run) -> Run:
    """The same run with no ``source_files`` in its snapshot: `check_files` must then parse every file."""
    snap = json.loads(run.spec_snapshot)
    snap.pop("source_files", None)
    return run.model_copy(update={"spec_snapshot": json.dumps(snap)})


def both_ways(run: Run) -> list[FileCheck]:
    """`check_files` by digest (when it applies) and by parsing; asserts they agree and returns the result."""
    fast = check_files(run)
    slow = check_files(without_record(run))
    assert fast == slow
    return fast


def took_digest_path(run: Run) -> bool:
    snap = json.loads(run.spec_snapshot)
    assert run.spec_path is not None
    spec_path = Path(run.spec_path)
    return _checks_by_digest(run, snap, spec_path, spec_path.parent) is not None


def statuses(checks: list[FileCheck]) -> dict[str, str]:
    return {c.kind: c.status for c in checks}


def test_a_run_records_the_digest_and_hash_of_every_file_it_was_loaded_from(project: Project) -> None:
    run = recorded(project)
    rec = json.loads(run.spec_snapshot)["source_files"]
    root = project.root
    files = {"spec": root / "runs" / "mini.yaml", "dataset": root / "datasets" / "mini.yaml",
             "rubric": root / "rubrics" / "mini.yaml"}
    assert set(rec) == set(files)
    for kind, p in files.items():  # the digest of the bytes on disk, computed here independently
        assert rec[kind]["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    assert rec["spec"]["hash"] == run.spec_hash and rec["dataset"]["hash"] == run.dataset_hash
    assert rec["rubric"]["hash"] == run.rubric_hash
    # not part of what the run is: the spec hash is the one computed without any record
    assert run.spec_hash == load_run_spec(files["spec"]).spec_hash


def test_unchanged_files_are_checked_by_digest_and_agree_with_parsing(project: Project) -> None:
    run = recorded(project)
    assert took_digest_path(run)
    assert statuses(both_ways(run)) == {"spec": "same", "dataset": "same", "rubric": "same"}


def test_every_change_to_the_files_falls_back_to_parsing_with_the_same_answer(project: Project) -> None:
    run = recorded(project)
    ds = project.root / "datasets" / "mini.yaml"
    # reformatted, same content: the bytes differ, so the files are parsed, and they still hash the same
    ds.write_text("# a comment\n" + ds.read_text())
    assert not took_digest_path(run)
    assert statuses(both_ways(run)) == {"spec": "same", "dataset": "same", "rubric": "same"}
    # a changed case: the dataset and the spec (whose hash covers it) changed
    project.write_dataset(make_cases(7))
    assert not took_digest_path(run)
    assert statuses(both_ways(run)) == {"spec": "changed", "dataset": "changed", "rubric": "same"}
    project.write_dataset()  # back to the bytes the run read: the digest path again
    assert took_digest_path(run)
    assert statuses(both_ways(run)) == {"spec": "same", "dataset": "same", "rubric": "same"}
    # a changed rubric
    rb = project.root / "rubrics" / "mini.yaml"
    rubric = yaml.safe_load(rb.read_text())
    rubric["version"] = "2"
    rb.write_text(yaml.safe_dump(rubric))
    assert statuses(both_ways(run)) == {"spec": "changed", "dataset": "same", "rubric": "changed"}
    project.write_rubric()
    assert took_digest_path(run)
    # a changed spec
    project.write_spec(samples=2)
    assert statuses(both_ways(run)) == {"spec": "changed", "dataset": "same", "rubric": "same"}
    project.write_spec()
    assert took_digest_path(run)
    # a file gone
    rb.unlink()
    assert not took_digest_path(run)
    assert statuses(both_ways(run))["rubric"] == "missing"


def test_a_fewshot_file_is_part_of_the_record(project: Project) -> None:
    shots = project.write_dataset(make_cases(3), name="shots")
    run = recorded(project, fewshot={"n": 2, "from": "../datasets/shots.yaml"})
    rec = json.loads(run.spec_snapshot)["source_files"]
    assert rec["fewshot_dataset"]["sha256"] == hashlib.sha256(shots.read_bytes()).hexdigest()
    assert took_digest_path(run)
    # the exemplars' file changed: the spec hash covers it, so the spec changed, and parsing says so too
    project.write_dataset(make_cases(4), name="shots")
    assert not took_digest_path(run)
    assert statuses(both_ways(run)) == {"spec": "changed", "dataset": "same", "rubric": "same"}


def test_a_spec_changed_after_loading_records_nothing(project: Project) -> None:
    """What the run runs is then not what the files give: no record, and the check parses the files."""
    loaded = load_run_spec(project.setup())
    loaded.spec.budget_usd = 5.0  # in place, as a sweep sets each setup's budget
    led = Ledger(str(project.ledger))
    run = led.get_run(runner.create_run(loaded, led))
    assert "source_files" not in json.loads(run.spec_snapshot)
    assert statuses(check_files(run)) == {"spec": "changed", "dataset": "same", "rubric": "same"}
    # another dataset object than the one loaded: nothing recorded either
    other = load_run_spec(project.root / "runs" / "mini.yaml")
    swapped = other.model_copy(update={"dataset": other.dataset.model_copy(deep=True)})
    assert swapped.source_record(swapped.spec_hash, swapped.dataset.hash) is None
    assert other.source_record(other.spec_hash, other.dataset.hash) is not None


def test_a_reproduction_carries_the_record_and_its_files_check_alike(project: Project) -> None:
    run = recorded(project)
    loaded = LoadedSpec.from_snapshot(json.loads(run.spec_snapshot))  # as `reproduce` makes its new run
    loaded.path = run.spec_path
    led = Ledger(str(project.ledger))
    again = led.get_run(runner.create_run(loaded, led))
    assert json.loads(again.spec_snapshot)["source_files"] == json.loads(run.spec_snapshot)["source_files"]
    assert again.spec_hash == run.spec_hash
    assert took_digest_path(again)
    assert statuses(both_ways(again)) == {"spec": "same", "dataset": "same", "rubric": "same"}


@pytest.mark.parametrize("bad", [
    "not a mapping",
    {"spec": {"sha256": "0" * 64, "hash": "x"}},  # no dataset entry
    {"spec": {"sha256": "0" * 63, "hash": "x"}, "dataset": {"sha256": "0" * 64, "hash": "x"}},
    {"spec": {"sha256": "Z" * 64, "hash": "x"}, "dataset": {"sha256": "0" * 64, "hash": "x"}},
    {"spec": {"sha256": "0" * 64, "hash": ""}, "dataset": {"sha256": "0" * 64, "hash": "x"}},
    {"spec": {"sha256": "0" * 64, "hash": "x" * 129}, "dataset": {"sha256": "0" * 64, "hash": "x"}},
    {"spec": {"sha256": "0" * 64, "hash": 5}, "dataset": {"sha256": "0" * 64, "hash": "x"}},
    {"spec": {"sha256": "0" * 64, "hash": "x", "more": 1}, "dataset": {"sha256": "0" * 64, "hash": "x"}},
    {"spec": {"sha256": "0" * 64, "hash": "x"}, "dataset": {"sha256": "0" * 64, "hash": "x"}, "other": {}},
])
def test_a_malformed_record_in_a_ledger_row_is_ignored(project: Project, bad: Any) -> None:
    run = recorded(project)
    snap = json.loads(run.spec_snapshot)
    snap["source_files"] = bad
    edited = run.model_copy(update={"spec_snapshot": json.dumps(snap)})
    assert valid_source_record(bad) is None
    assert not took_digest_path(edited)
    assert statuses(check_files(edited)) == {"spec": "same", "dataset": "same", "rubric": "same"}
    assert LoadedSpec.from_snapshot(snap).source_files is None


def test_a_record_whose_hashes_differ_from_the_run_says_changed(project: Project) -> None:
    """The record states what the bytes hash to; the status compares that with the run's recorded hash."""
    run = recorded(project)
    snap = json.loads(run.spec_snapshot)
    snap["source_files"]["dataset"]["hash"] = "f" * 64
    edited = run.model_copy(update={"spec_snapshot": json.dumps(snap)})
    assert took_digest_path(edited)
    checks = {c.kind: c for c in check_files(edited)}
    assert checks["dataset"].status == "changed" and checks["dataset"].disk_hash == "f" * 64
    assert checks["spec"].status == "same"


def test_read_source_digests_exactly_the_bytes_it_decoded(tmp_path: Path) -> None:
    p = tmp_path / "d.yaml"
    raw = b"\xef\xbb\xbfname: x\ncases: []\n"  # with a byte-order mark, which the text drops
    p.write_bytes(raw)
    text, digest = read_source(p)
    assert text == "name: x\ncases: []\n"
    assert digest == hashlib.sha256(raw).hexdigest() == file_sha256(p)
    assert file_sha256(tmp_path / "gone.yaml") is None and file_sha256(tmp_path) is None
