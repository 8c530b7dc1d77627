"""``penchant ope``: a target policy's value estimated from another policy's logs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from penchant.cli.render import out, progress, write_json

if TYPE_CHECKING:
    from penchant.data.bandit_logs import BanditLog, Target


def ope(
    logs: Path = typer.Option(..., "--logs", help="Logged lists, one row per shown item (round, user, item, position, reward, propensity), or a `penchant store dump` file."),
    target: Path = typer.Option(..., "--target", help="The target policy: a model artefact or a service version folder (DATA_DIR/models/vN; it shows its top-k), or a file of round, item, probability [, position] rows."),
    estimator: str = typer.Option("dr", "--estimator", help="ips, snips, dm, dr, switch-dr, iips or pi."),
    reward_model: str = typer.Option("item", "--reward-model", help="Reward model of dm/dr/switch-dr: item or user-item."),
    json_out: Path = typer.Option(None, "--json", help="Write {estimator, value, ci, rounds, effective_sample_size} here."),
    n_bootstrap: int = typer.Option(1000, "--bootstrap", min=1, help="Bootstrap resamples of the rounds for the interval."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="Coverage of the interval."),
    tau: float = typer.Option(None, "--tau", min=0.0, help="switch-dr: correct only slots whose weight is at most this (default 10)."),
    reward_types: str = typer.Option(None, "--reward-types", help="A service dump only: the event types that count as a reward (comma-separated; default any)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the resampling."),
) -> None:
    """Estimate a policy's value per served list from logs of another policy, with a bootstrap interval."""
    from penchant.data.bandit_logs import is_dump, log_from_dump, read_bandit_log, target_from_file
    from penchant.eval.ope import DEFAULT_TAU, ESTIMATORS, estimate
    from penchant.eval.reward_models import REWARD_MODELS

    if estimator not in ESTIMATORS:
        raise typer.BadParameter(f"{estimator!r} is not one of {', '.join(ESTIMATORS)}", param_hint="--estimator")
    if reward_model not in REWARD_MODELS:
        raise typer.BadParameter(f"{reward_model!r} is not one of {', '.join(REWARD_MODELS)}", param_hint="--reward-model")
    with progress() as bar:
        task = bar.add_task(f"reading {logs}", total=None)
        counts = None
        if is_dump(logs):
            log, counts = log_from_dump(logs, reward_types.split(",") if reward_types else None)
        else:
            log = read_bandit_log(logs)
        bar.update(task, description=f"reading {target}")
        policy = _artefact_target(log, target) if _is_artefact(target) else target_from_file(log, target)
        bar.update(task, description=f"{estimator}: {n_bootstrap:,} bootstrap resamples")
        result = estimate(log, policy, estimator, reward_model=reward_model, n_bootstrap=n_bootstrap,
                          confidence=confidence, tau=DEFAULT_TAU if tau is None else tau, seed=seed,
                          require_support=True)[estimator]
    if counts is not None:
        out.print(f"service dump: {counts['lists']:,} served lists, {counts['impressions']:,} shown items, "
                  f"{counts['rewarded']:,} rewarded; {counts['events']:,} events, "
                  f"{counts['events_without_impression']:,} of them on nothing shown before (not a reward)")
    out.print(f"{estimator}: {result.value:.6g} per list, {confidence:.0%} interval [{result.ci[0]:.6g}, {result.ci[1]:.6g}]"
              f" from {result.rounds:,} lists ({len(log):,} shown items); effective sample size "
              f"{result.effective_sample_size:,.1f}")
    if result.supported_rounds < result.rounds:  # the share the estimate stands on, as snips's refusal names it
        out.print(f"the target supports {result.supported_rounds:,} of {result.rounds:,} lists ({result.support:.0%})")
    if policy.unmatched_rounds:
        out.print(f"{policy.unmatched_rounds:,} round(s) of the target are not in the logs (not used)")
    if json_out is not None:
        write_json(json_out, result.to_json())


def _is_artefact(path: Path) -> bool:
    return path.suffix.lower() == ".npz" or (path / "model.npz").is_file()


def _artefact_target(log: BanditLog, path: Path) -> Target:
    """The deterministic target a model artefact stands for: its top-k list for each user of the log
    (k = the longest logged list), unknown users answered as `penchant recommend` answers them."""
    from penchant.data.bandit_logs import target_from_lists
    from penchant.experiment.answers import recommend_for
    from penchant.models.artefact import load

    model = load(path / "model.npz" if path.is_dir() else path)
    k = int(log.position.max()) + 1
    answers = recommend_for(model, [str(u) for u in log.user_ids], k)
    return target_from_lists(log, {u: [i for i, _ in rows] for u, rows in answers.lists.items()}, str(path))
