"""`benchrun dataset info | validate | import`, `benchrun rubric validate`, `benchrun validate`: files only, no model calls."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import typer

from benchrun.cli.common import Group, JsonOpt, err, out, print_json

app = typer.Typer()
dataset_app = typer.Typer(cls=Group, help="Inspect and validate dataset files.", no_args_is_help=True)
rubric_app = typer.Typer(cls=Group, help="Validate rubric files.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(rubric_app, name="rubric")


def _dataset_info(path: Path) -> dict[str, Any]:
    from benchrun.spec import load_dataset

    ds = load_dataset(path)
    return {
        "file": str(path), "name": ds.name, "version": ds.version, "description": ds.description, "hash": ds.hash,
        "cases": len(ds.cases),
        "by_severity": dict(Counter(c.severity for c in ds.cases).most_common()),
        "by_category": dict(Counter(c.category for c in ds.cases).most_common()),
        "by_provenance": dict(Counter(c.provenance.source for c in ds.cases).most_common()),
    }


@dataset_app.command("info")
def dataset_info(file: Path, json_out: JsonOpt = False) -> None:
    """Name, version, hash and counts by category, severity and provenance."""
    from benchrun.report.terminal import render_dataset_info

    info = _dataset_info(file)
    if json_out:
        print_json(info)
    else:
        render_dataset_info(out(), info)


@dataset_app.command("validate")
def dataset_validate(file: Path, json_out: JsonOpt = False) -> None:
    """Check a dataset file; exit 2 with a one-line message naming the line or case id if it is malformed."""
    info = _dataset_info(file)
    if json_out:
        print_json({"valid": True, "file": str(file), "cases": info["cases"], "hash": info["hash"]})
    else:
        out().print(f"{file}: valid, {info['cases']} cases, hash {info['hash'][:12]}", markup=False)


@dataset_app.command("import")
def dataset_import(
    fmt: str = typer.Argument(..., metavar="FORMAT",
                              help="arc | gsm8k | humaneval | jsonl | mbpp | mmlu | openai-evals | promptfoo"),
    source: Path = typer.Argument(..., metavar="SOURCE", help="The public file, e.g. HumanEval.jsonl.gz or mbpp.jsonl"),
    out_file: Path = typer.Option(..., "--out", help="Dataset file to write (YAML), e.g. datasets/humaneval.yaml"),
    limit: int | None = typer.Option(None, "--limit", help="Keep N problems (the first N, or a seeded sample)"),
    seed: int | None = typer.Option(None, "--seed", help="With --limit: a seeded random sample, kept in source order"),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists"),
    field_map: list[str] | None = typer.Option(None, "--map", help="jsonl: input=FIELD,answer=FIELD,choices=FIELD,"
                                               "category=FIELD,id=FIELD,ideal=FIELD; promptfoo: input=VAR"),
    json_out: JsonOpt = False,
) -> None:
    """Write a public benchmark file as an ordinary, hashed dataset with its provenance."""
    from benchrun.errors import UsageError
    from benchrun.importers import IMPORTERS, get_importer, write_dataset
    from benchrun.spec import Dataset

    if fmt not in IMPORTERS:
        raise UsageError(f"unknown format {fmt!r}; known: {', '.join(sorted(IMPORTERS))}")
    if out_file.exists() and not force:
        raise UsageError(f"{out_file} exists; pass --force to overwrite it")
    kwargs: dict[str, Any] = {}
    if fmt in ("jsonl", "promptfoo"):
        from benchrun.importers.jsonl import KEYS, parse_map

        kwargs["field_map"] = parse_map(field_map, KEYS if fmt == "jsonl" else ("input",))
    elif field_map:
        raise UsageError(f"--map applies to the jsonl and promptfoo formats, not {fmt}")
    data = get_importer(fmt)(source, limit=limit, seed=seed, **kwargs)
    write_dataset(data, out_file)
    ds = Dataset.model_validate(data)
    info = {"file": str(out_file), "format": fmt, "name": ds.name, "version": ds.version, "hash": ds.hash,
            "cases": len(ds.cases), "source": data["source"]}
    if json_out:
        print_json(info)
    else:
        out().print(f"{out_file}: {len(ds.cases)} cases from {source} ({fmt}, sha256 {data['source']['sha256'][:12]}), "
                    f"hash {ds.hash[:12]}", markup=False)
        for note in data["source"].get("notes") or []:  # e.g. promptfoo assertions benchrun cannot check
            out().print(f"note: {note}", markup=False)


@rubric_app.command("validate")
def rubric_validate(file: Path, json_out: JsonOpt = False) -> None:
    """Check a rubric file (scale, failure modes, pass rule, judge template and answer schema)."""
    from benchrun.spec import load_rubric

    rb = load_rubric(file)
    if json_out:
        print_json({"valid": True, "file": str(file), "name": rb.name, "version": rb.version, "hash": rb.hash,
                    "judge_prompt_hash": rb.judge_prompt_hash, "pass_rule": rb.pass_rule.describe()})
    else:
        out().print(f"{file}: valid rubric {rb.name} v{rb.version}, hash {rb.hash[:12]}, "
                    f"pass = {rb.pass_rule.describe()}", markup=False)


@app.command()
def validate(spec: Path, json_out: JsonOpt = False) -> None:
    """Check a run spec together with the dataset and rubric it names (no model is called)."""
    from benchrun.runner import check_templates
    from benchrun.spec import load_run_spec, missing_key_variables

    loaded = load_run_spec(spec)
    check_templates(loaded)  # every prompt renders (sandboxed) for every case: what `run` would find first
    n = len(loaded.cases())
    info = {"valid": True, "file": str(spec), "spec_hash": loaded.spec_hash, "dataset_hash": loaded.dataset.hash,
            "rubric_hash": loaded.rubric.hash if loaded.rubric is not None else None, "cases": n,
            "dataset_cases": len(loaded.dataset.cases),
            "candidates": [c.key for c in loaded.spec.candidates], "samples": loaded.spec.samples_per_case,
            # one answer per cell, plus one judge call for each judged case (re-asks not counted)
            "calls_planned": sum(1 + loaded.judged(c) for c in loaded.cases()) * len(loaded.spec.candidates)
            * loaded.spec.samples_per_case}
    # A warning, not an error: the spec is valid, and CI may validate where the keys are not set;
    # `benchrun run` refuses (exit 2) while a variable is missing.
    missing = missing_key_variables(loaded.spec)
    info["warnings"] = [f"model {k}: environment variable {v} is not set; `benchrun run` will refuse until it is"
                        for k, v in missing]
    if json_out:
        print_json(info)
    else:
        def n_of(n: int, word: str) -> str:
            return f"{n} {word}" + ("" if n == 1 else "s")

        out().print(f"{spec}: valid; {n_of(info['cases'], 'case')} × {n_of(len(info['candidates']), 'candidate')} × "
                    f"{n_of(info['samples'], 'sample')}; spec hash {info['spec_hash'][:12]}", markup=False)
        for w in info["warnings"]:
            err().print(f"warning: {w}", markup=False)
