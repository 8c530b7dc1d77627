"""``penchant when-to-show``: a cascade of acceptance predictors deciding whether to show a suggestion (CDHF)."""

from __future__ import annotations

from pathlib import Path

import typer

from penchant.cli.render import out, progress, write_json


def when_to_show(
    logs: Path = typer.Argument(None, help="Served lists and their feedback: a `penchant store dump` file or a logged-list file (round, user, item, position, reward, propensity). Without it, a log simulated from the slate world."),
    cost: float = typer.Option(0.25, "--cost", min=0.0, help="Cost of a rejected suggestion in units of an accepted one's gain: show iff p·gain − (1−p)·cost > 0."),
    gain: float = typer.Option(1.0, "--gain", min=1e-9, help="Gain of an accepted suggestion."),
    test_share: float = typer.Option(0.3, "--test-share", min=0.05, max=0.9, help="The last share of the served lists held out."),
    stage1_loss: float = typer.Option(0.02, "--stage1-loss", min=0.0, max=0.5, help="Share of accepted suggestions stage 1 (context only) may hide on the validation slice."),
    reward_types: str = typer.Option(None, "--reward-types", help="A service dump only: the event types that count as accepting (comma-separated; default any)."),
    users: int = typer.Option(300, "--users", min=2, help="Simulated log: users of the slate world."),
    items: int = typer.Option(200, "--items", min=2, help="Simulated log: items of the slate world."),
    slate_size: int = typer.Option(5, "--slate-size", min=1, help="Simulated log: items per served list."),
    rounds: int = typer.Option(20_000, "--rounds", min=50, help="Simulated log: served lists."),
    epsilon: float = typer.Option(0.2, "--epsilon", min=0.0, max=0.99, help="Simulated log: the platform's exploration rate."),
    seed: int = typer.Option(0, "--seed", help="Seeds the simulated world and log, the tree model and the random rule."),
    json_out: Path = typer.Option(None, "--json", help="Write the operating points, curves and areas here."),
    plot: Path = typer.Option(None, "--plot", help="Write the curve of rejections avoided against acceptances lost here (PNG)."),
) -> None:
    """Learn from a served-list log which suggestions users accept; report the share of would-be-rejected
    suggestions the display rule hides against the share of accepted ones it loses, on held-out later lists."""
    from penchant.eval.when_to_show import plot_curves
    from penchant.eval.when_to_show import when_to_show as evaluate

    with progress() as bar:
        task = bar.add_task("simulating a served-list log" if logs is None else f"reading {logs}", total=None)
        if logs is None:
            from penchant.simulate.served_logs import slate_world_log
            from penchant.simulate.slate_world import SlateWorld

            world = SlateWorld.synthetic(users, items, slate_size=slate_size, seed=seed)
            log = slate_world_log(world, rounds, epsilon=epsilon, seed=seed)
        else:
            from penchant.data.bandit_logs import is_dump, log_from_dump, read_bandit_log

            log = (log_from_dump(logs, reward_types.split(",") if reward_types else None)[0] if is_dump(logs)
                   else read_bandit_log(logs))
        bar.update(task, description="fitting the cascade")
        result = evaluate(log, cost=cost, gain=gain, test_share=test_share, stage1_loss=stage1_loss, seed=seed)
    out.print(f"{log.source}: {log.n_rounds:,} served lists, {len(log):,} shown suggestions; held out "
              f"{result.rows['test']:,} (acceptance rate {result.acceptance_rate:.3f})")
    out.print(f"show iff p > τ = {result.tau:.3f} (cost {cost:g}, gain {gain:g}); stage 1 hides p < "
              f"{result.stage1_threshold:.3f} and decides {result.stage1_decided:.1%} alone; "
              f"AUC stage 1 {result.auc['stage1']:.3f}, stage 2 {result.auc['stage2']:.3f}")
    for name, point in result.points.items():
        out.print(f"{name:>8}: hides {point['rejections_avoided']:.1%} of rejections, loses "
                  f"{point['acceptances_lost']:.1%} of acceptances, shows {point['display_rate']:.1%}; utility "
                  f"{point['utility']:+.4f} per suggestion (show all {point['utility_show_all']:+.4f})")
    out.print("area under rejections avoided vs acceptances lost (0.5 = random): "
              + ", ".join(f"{k} {v:.3f}" for k, v in result.area.items()))
    if json_out is not None:
        write_json(json_out, result.to_json())
    if plot is not None:
        out.print(f"plot written to {plot_curves(result, plot)}")
