"""``toolkit crossval``: train one run per fold, score each, pool and summarise.

What the folds are and what is pooled lives in :mod:`toolkit.attribution.crossval`;
this module only drives the runs: a fold whose predictions exist is done, a fold with
a run but no ``metrics.json`` is resumed, any other is trained.
"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.attribution.crossval import (PLAN, PREDICTIONS, RESULTS, FoldPlan, fold_dir,
                                          fold_overrides, fold_predictions, plan_folds,
                                          summarise)
from toolkit.errors import ToolkitError
from toolkit.runs import rundir as runs


def crossval(config_path: str | Path, folds: int | str, overrides: list[str] = (),
             out: str | Path | None = None, verbose: int | str = 0,
             progress_seconds: float = 0.0, say=print) -> dict:
    """Cross-validate an attribution config over documents into ``out`` (default
    ``runs/<config>-crossval``): train the folds not yet trained, score each fold's test
    documents, pool and summarise them (``crossval.json``). Returns the summary."""
    from toolkit.config import schema as config_module
    from toolkit.plugins import registry
    from toolkit.training.phases import train

    overrides = list(overrides)
    resolved = config_module.load(config_path, registry(), overrides)
    config_file = config_module.config_file_name(config_path)
    components = config_module.build_components(resolved, registry(), config_file=config_file)
    plan = plan_folds(resolved, components, folds, config_file)
    out = Path(out) if out is not None else Path("runs") / f"{Path(config_path).stem}-crossval"
    check_or_write_plan(out, plan, config_path, overrides)
    for fold in range(plan.folds):
        run_dir = fold_dir(out, fold, plan.folds)
        tested = [d for d, f in zip(plan.documents, plan.fold_of) if f == fold]
        if (run_dir / PREDICTIONS).is_file():
            say(f"fold {fold + 1}/{plan.folds}: done before ({len(tested)} test documents)")
            continue
        if not (run_dir / runs.METRICS).is_file():
            say(f"fold {fold + 1}/{plan.folds}: training on every document but "
                f"{len(tested)} ({', '.join(tested[:4])}{', ...' if len(tested) > 4 else ''})")
            train(config_path, run_dir, overrides + fold_overrides(plan, fold), resume=True,
                  verbose=verbose, progress_seconds=progress_seconds)
        predictions = fold_predictions(run_dir, plan, fold)
        runs.atomic_write(run_dir / PREDICTIONS, json.dumps(predictions))
        say(f"fold {fold + 1}/{plan.folds}: scored {len(predictions['documents']['names'])} "
            f"test documents")
    results = summarise(out, plan)
    runs.write_json(out / RESULTS, results)
    return results


def check_or_write_plan(out: Path, plan: FoldPlan, config_path, overrides: list[str]) -> None:
    """Write the plan into a new ``out``; a continued crossval must have the same plan."""
    config = (config_path if isinstance(config_path, dict)
              else Path(config_path).read_text(encoding="utf-8"))
    stored = {"config": config, "overrides": overrides, **plan.to_json()}
    path = out / PLAN
    if path.is_file():
        before = json.loads(path.read_text())
        if before != json.loads(json.dumps(stored)):
            differ = sorted(k for k in stored if before.get(k) != json.loads(json.dumps(stored[k])))
            raise ToolkitError(f"{out} holds a crossval of another plan ({', '.join(differ)} "
                               f"differ); choose another --out, or delete {out} to start again")
        return
    if out.exists() and any(out.iterdir()):
        raise ToolkitError(f"{out} exists and is not a crossval directory; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    runs.write_json(path, stored)


