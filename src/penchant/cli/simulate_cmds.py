"""``penchant simulate run`` and ``penchant simulate compare``: policies in the long-term world."""

from __future__ import annotations

from pathlib import Path

import typer

from penchant.cli.render import out, progress, write_json

World = typer.Option("ml-100k", "--world", help="Tastes, genres and ratings from this data: ml-100k or a data folder/file penchant reads.")
Params = typer.Option([], "--param", help="World constant name=value (repeatable), e.g. novelty_weight=3; see docs/loop.md.")
Users = typer.Option(600, "--users", min=2, help="Held-out (test) simulated users.")
Steps = typer.Option(200, "--steps", min=1, help="Steps of the run.")
Seed = typer.Option(0, "--seed", help="Seeds the world, the user pools and training.")
Floor = typer.Option(None, "--floor", help="For the policies that keep a floor (`constrained`, `tscac`): SIGNAL:VALUE kept per user (click, watch, like, share per click, or novelty).")
Model = typer.Option("als:factors=32", "--model", help="The fitted recommender the world's tastes and the greedy-recommender policy come from.")
Iterations = typer.Option(5, "--iterations", min=1, help="Cross-entropy rounds when training (`iterations`; early-stopped on validation users).")
TrainUsers = typer.Option(100, "--train-users", min=2, help="Simulated training users per round.")
AcIterations = typer.Option(30, "--ac-iterations", min=1, help="Actor-critic iterations (`ac_iterations`: actor-critic, tscac, hierarchical; early-stopped on validation users).")
KlWeight = typer.Option(0.3, "--kl-weight", min=0.0, help="`tscac`: stage two's KL weight λ towards the floor signal's stage-one actor.")
DtSteps = typer.Option(600, "--dt-steps", min=100, help="`decision-transformer`: training steps (batches of 256 windows).")
Ablations = typer.Option(0, "--ablations", min=0, help="`decision-transformer`: also train DT4IER whole and with each part removed (action tokens, reward weighting, contrastive loss) on this many seeds, against greedy.")
#: the policies' names come from the registry when help is shown (penchant.cli.main fills {models:FAMILY} in)
NAMES = ("a long-term policy, NAME or NAME:key=value,... (settings of its own; `penchant models --family long-term`): "
         "{models:long-term}")


def run(
    policy: str = typer.Option(..., "--policy", help=NAMES[0].upper() + NAMES[1:] + "."),
    world: str = World, param: list[str] = Params, users: int = Users, steps: int = Steps, seed: int = Seed,
    floor: str = Floor, model: str = Model, iterations: int = Iterations, train_users: int = TrainUsers,
    ac_iterations: int = AcIterations, kl_weight: float = KlWeight, dt_steps: int = DtSteps,
    ablations: int = Ablations,
    json_out: Path = typer.Option(None, "--json", help="Write the results here."),
    plot: Path = typer.Option(None, "--plot", help="Write the policy's clicks per user over time here (PNG); with "
                              "--ablations, the ablations' clicks and retention against greedy."),
) -> None:
    """Run one policy on held-out simulated users: return per signal, retention, novelty, creator
    survival and the fraction of the oracle's return, with 95% intervals."""
    results = _simulate([policy], world, param, users, steps, seed, floor, model, iterations, train_users,
                        ac_iterations, kl_weight, dt_steps, ablations)
    _print(results)
    if plot is not None:
        (found,) = results["policies"].values()
        if ablations:
            _ablation_plot(found["ablations"], plot)
        else:
            from penchant.eval.plots import line_plot

            line_plot({n: c["cumulative_click"] for n, c in results["curves"].items()}, plot,
                      title="Clicks per user over time", xlabel="step", ylabel="cumulative clicks per user")
            out.print(f"plot written to {plot}")
    if json_out is not None:
        (label,) = results["policies"]
        write_json(json_out, results["policies"][label] | {k: v for k, v in results.items() if k != "policies"})


def compare(
    policy: list[str] = typer.Option(..., "--policy", help="Repeat for each: " + NAMES + "."),
    world: str = World, param: list[str] = Params, users: int = Users, steps: int = Steps, seed: int = Seed,
    floor: str = Floor, model: str = Model, iterations: int = Iterations, train_users: int = TrainUsers,
    ac_iterations: int = AcIterations, kl_weight: float = KlWeight, dt_steps: int = DtSteps,
    json_out: Path = typer.Option(None, "--json", help="Write every policy's results here."),
    plot_dir: Path = typer.Option(None, "--plot-dir", help="Write return_over_time.png and retention.png here."),
) -> None:
    """Several policies on the same held-out users (same seed), with plots of return over time and retention."""
    results = _simulate(policy, world, param, users, steps, seed, floor, model, iterations, train_users,
                        ac_iterations, kl_weight, dt_steps)
    _print(results)
    if json_out is not None:
        write_json(json_out, {k: v for k, v in results.items() if k != "curves"})
    if plot_dir is not None:
        from penchant.eval.plots import line_plot

        curves = results.pop("curves")
        line_plot({n: c["cumulative_click"] for n, c in curves.items()}, plot_dir / "return_over_time.png",
                  title="Clicks per user over time", xlabel="step", ylabel="cumulative clicks per user")
        line_plot({n: c["retained"] for n, c in curves.items()}, plot_dir / "retention.png",
                  title="Users who have not left", xlabel="step", ylabel="share of users")
        out.print(f"plots written to {plot_dir}")


def slate(
    policy: list[str] = typer.Option(..., "--policy", help="Repeat for each: a slate policy, NAME or NAME:key=value,... (settings of its own; `penchant models --family slate`): {models:slate}."),
    users: int = typer.Option(200, "--users", min=1, help="Simulated users (random latent tastes)."),
    items: int = typer.Option(50, "--items", min=2, help="Items in the catalogue."),
    slate_size: int = typer.Option(3, "--slate-size", min=1, help="Items per list."),
    dim: int = typer.Option(4, "--dim", min=1, help="Size of the users' and items' latent vectors."),
    choice: str = typer.Option("logit", "--choice", help="logit (at most one click, a no-click option) or independent (position-based)."),
    rounds: int = typer.Option(12_000, "--rounds", min=1, help="Lists served."),
    batch: int = typer.Option(100, "--batch", min=1, help="Lists served between a learner's updates."),
    seed: int = Seed,
    json_out: Path = typer.Option(None, "--json", help="Write every policy's results here."),
    plot: Path = typer.Option(None, "--plot", help="Write the cumulative regret curves here (PNG)."),
) -> None:
    """Bandit and slate policies learning online in a slate world with known best lists: cumulative
    regret, its log–log slope (1 = linear, no learning) and the last quarter's share of the best lists' clicks."""
    import numpy as np

    from penchant.cli.specs import model_spec
    from penchant.experiment.tasks import task_for
    from penchant.simulate.policies import policy_params

    specs = {label: model_spec(label, [], "slate") for label in dict.fromkeys(policy)}
    job = task_for(next(iter(specs.values()))[0], ("slate",))
    world = job.read(users=users, items=items, slate_size=slate_size, dim=dim, choice=choice, seed=seed)
    results, curves = {}, {}
    with progress() as bar:
        task = bar.add_task("", total=len(specs))
        for name, (registered, given) in specs.items():
            bar.update(task, description=f"{name}: {rounds:,} lists")
            built = job.fit(registered, policy_params(registered, {"seed": seed}, given), world)
            results[name], _ = job.test(built, world, rounds=rounds, batch=batch, seed=seed)
            curves[name] = results[name].pop("curve")
            bar.advance(task)
    from rich.table import Table

    table = Table(title=f"{users} users × {items} items, lists of {slate_size} ({choice}), {rounds:,} lists",
                  title_justify="left")
    for col in ("policy", "regret", "log-log slope", "last quarter / best", "clicks per list", "seconds"):
        table.add_column(col)
    for name, r in results.items():
        table.add_row(name, f"{r['regret']:,.1f}", f"{r['regret_slope']:.2f}", f"{r['late_share_of_best']:.3f}",
                      f"{r['clicks_per_list']:.3f}", f"{r['seconds']:.1f}")
    out.print(table)
    if json_out is not None:
        write_json(json_out, {"world": {"users": users, "items": items, "slate_size": slate_size, "dim": dim,
                                        "choice": choice, "rounds": rounds, "batch": batch, "seed": seed},
                              "policies": results})
    if plot is not None:
        from penchant.eval.plots import line_plot

        line_plot({n: np.asarray(c) for n, c in curves.items()}, plot, title="Cumulative regret", xlabel="list",
                  ylabel="expected regret")
        out.print(f"regret curves written to {plot}")


def segments(
    worlds: int = typer.Option(20, "--worlds", min=1, help="Random gridworlds (each with its own layout and reward) to average over."),
    sizes: str = typer.Option("10,30,100,300,1000", "--sizes", help="Numbers of labelled segment pairs, comma-separated: the curve's points."),
    length: int = typer.Option(3, "--length", min=1, help="Steps per segment."),
    grid: int = typer.Option(6, "--grid", min=3, help="Side of each square gridworld."),
    noiseless: bool = typer.Option(False, "--noiseless", help="The synthetic human always prefers the likelier segment (default: draws from the preference model)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the gridworlds, the segments and their labels."),
    json_out: Path = typer.Option(None, "--json", help="Write every curve (per world too) here."),
    plot: Path = typer.Option(None, "--plot", help="Write the curves here (PNG)."),
) -> None:
    """Rewards learned from preferences between trajectory segments under the partial-return and
    the regret preference models (Knox et al. 2022), on preferences labelled under each: the true
    return of the policy optimal for the learned reward, as a share of the optimum over a random
    policy, as the number of preferences grows."""
    from penchant.errors import ConfigError
    from penchant.simulate.segments import PREFERENCE_MODELS, learning_curves

    try:
        points = tuple(sorted({int(n) for n in sizes.split(",")}))
    except ValueError:
        raise ConfigError(f"--sizes: comma-separated whole numbers, not {sizes!r}") from None
    if not points or points[0] < 1:
        raise ConfigError(f"--sizes: numbers of preferences of at least 1, not {sizes!r}")
    with progress() as bar:
        task = bar.add_task(f"fitting rewards on {worlds} gridworlds", total=worlds)
        results = learning_curves(worlds=worlds, sizes=points, length=length, grid=grid, noiseless=noiseless,
                                  seed=seed, progress=lambda done, _: bar.update(task, completed=done))
    from rich.table import Table

    table = Table(title=f"Share of the optimum reached by the learned reward's policy, {worlds} {grid}×{grid} "
                        f"gridworlds, segments of {length} (near-optimal: ≥ 0.9 of the way, share of worlds)",
                  title_justify="left")
    table.add_column("labelled by")
    table.add_column("fitted as")
    for n in points:
        table.add_column(f"n={n:,}")
    for generator in PREFERENCE_MODELS:
        for model in PREFERENCE_MODELS:
            c = results["curves"][generator][model]
            table.add_row(generator, model, *(f"{m:.2f} ({s:.0%})" for m, s in zip(c["mean"], c["near_optimal"])))
    out.print(table)
    if json_out is not None:
        write_json(json_out, results)
    if plot is not None:
        from penchant.eval.plots import new_figure, save_figure

        plt, fig, ax, path = new_figure(plot)
        for generator, color in zip(PREFERENCE_MODELS, ("tab:blue", "tab:red")):
            for model, style in zip(PREFERENCE_MODELS, ("--", "-")):
                c = results["curves"][generator][model]
                ax.plot(points, c["mean"], style, color=color, marker="o", label=f"labelled by {generator}, fitted as {model}")
        ax.set_xscale("log")
        save_figure(plt, fig, ax, path, "Reward learned from segment preferences", "labelled segment pairs",
                    "true return of its optimal policy (0 random, 1 optimal)", fontsize=8)
        out.print(f"curves written to {plot}")


def constrained(
    world: str = World, param: list[str] = Params, model: str = Model, seed: int = Seed,
    seeds: int = typer.Option(3, "--seeds", min=1, help="Runs (each: a fixed-weight run, its proxy points, the constrained and targets runs)."),
    weights: str = typer.Option("click=1,novelty=0,list_novelty=4", "--weights", help="The proxy's fixed weight of each component: click, novelty, list_novelty."),
    iterations: int = typer.Option(25, "--iterations", min=1, help="Evolution-strategy rounds per run."),
    steps: int = typer.Option(40, "--steps", min=1, help="Steps of each simulated episode."),
    users: int = typer.Option(200, "--users", min=2, help="Held-out (test) simulated users."),
    train_users: int = typer.Option(50, "--train-users", min=2, help="Simulated users per training episode (and 2× that for validation)."),
    json_out: Path = typer.Option(None, "--json", help="Write every run's per-round record and the test results here."),
    plot: Path = typer.Option(None, "--plot", help="Write the over-optimisation curves here (PNG)."),
) -> None:
    """A re-ranking policy trained on a fixed-weight sum of observable proxy rewards (clicks, the
    novelty of clicks and of the lists served), its over-optimisation of the hidden satisfaction,
    and the constrained policy that keeps each proxy under its proxy point with Lagrange
    multipliers as dynamic weights, and the equality-constrained variant that holds each at its
    point (targets) (Moskovitz et al. 2024)."""
    from dataclasses import replace

    import numpy as np

    from penchant.errors import ConfigError
    from penchant.experiment.run import parse_params
    from penchant.simulate.constrained import COMPONENTS, experiment
    from penchant.simulate.experiment import world_params

    try:
        given = {k: float(v) for k, v in parse_params(weights.split(",")).items()}
        params = world_params({k: str(v) for k, v in parse_params(param).items()})
    except ValueError as e:
        raise ConfigError(f"--weights/--param: {e}") from None
    unknown = set(given) - set(COMPONENTS)
    if unknown:
        raise ConfigError(f"--weights: unknown component {min(unknown)!r}; known: {', '.join(COMPONENTS)}")
    w = tuple(given.get(c, 0.0) for c in COMPONENTS)
    with progress() as bar:
        task = bar.add_task(f"reading {world}", total=None)
        worlds = _read_worlds(bar, task, world, model, params, seed, users, train_users)
        worlds = replace(worlds, sizes=worlds.sizes | {"valid": 2 * train_users})
        bar.update(task, description="training", total=seeds * 3 * (iterations + 1), completed=0)
        results = experiment(worlds, worlds.scores, weights=w, seeds=seeds, iterations=iterations, steps=steps,
                             progress=lambda label, done, _: bar.update(task, description=label, completed=done))
    results["settings"] |= {"world": world, "world_params": params.__dict__, "model": model, "seed": seed,
                            "users": users, "train_users": train_users}
    from rich.table import Table

    def stat(values: list[float]) -> str:
        v = np.asarray(values)
        half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
        return f"{v.mean():.3f} ± {half:.3f}"

    rounds = Table(title=f"Validation users, mean over {seeds} runs: the proxy ({weights}) and the hidden satisfaction by round",
                   title_justify="left")
    runs = ("fixed", "constrained", "targets")
    for col in ("round", *(f"{k}: {f}" for k in runs for f in ("proxy", "satisfaction")), "constrained: multipliers"):
        rounds.add_column(col)
    curve = {k: {f: np.mean([[h[f] for h in r[k]] for r in results["runs"]], axis=0) for f in ("proxy", "satisfaction")}
             for k in runs}
    mult = np.mean([[h["multipliers"] for h in r["constrained"]] for r in results["runs"]], axis=0)
    for i in range(0, iterations + 1, max(1, iterations // 10)):
        rounds.add_row(str(i), *(f"{curve[k][f][i]:.3f}" for k in runs for f in ("proxy", "satisfaction")),
                       " ".join(f"{m:.2f}" for m in mult[i]))
    out.print(rounds)
    test = Table(title=f"Held-out users ({users}), {steps} steps: mean ± 95% half-interval over {seeds} runs",
                 title_justify="left")
    for col in ("policy", "satisfaction (hidden)", "clicks / user", *COMPONENTS):
        test.add_column(col)
    for label, r in results["test"].items():
        comps = np.asarray(r["components"])
        test.add_row(label, stat(r["satisfaction"]), stat(r["clicks"]), *(stat(comps[:, i]) for i in range(len(COMPONENTS))))
    out.print(test)
    out.print("proxy points (" + ", ".join(COMPONENTS) + "): "
              + "; ".join(" ".join(f"{t:.3f}" for t in r["thresholds"]) + f" (round {r['peak']})" for r in results["runs"]))
    if json_out is not None:
        write_json(json_out, results)
    if plot is not None:
        from penchant.eval.plots import new_figure, save_figure

        plt, fig, ax, path = new_figure(plot)
        x = np.arange(iterations + 1)
        right = ax.twinx()
        for k, color in zip(runs, ("tab:red", "tab:blue", "tab:green")):
            ax.plot(x, curve[k]["satisfaction"], "-", color=color, marker="o", label=f"{k}: hidden satisfaction")
            right.plot(x, curve[k]["proxy"], "--", color=color, label=f"{k}: proxy (right axis)")
        right.set_ylabel("proxy reward per user and step")
        handles = [*ax.get_legend_handles_labels()[0], *right.get_legend_handles_labels()[0]]
        save_figure(plt, fig, ax, path, "Over-optimisation of a fixed-weight proxy, and the constrained policy",
                    "training round", "mean hidden satisfaction (validation users)", handles=handles, fontsize=8)
        out.print(f"curves written to {plot}")


def _simulate(names: list[str], world: str, param: list[str], users: int, steps: int, seed: int, floor: str | None,
              model: str, iterations: int, train_users: int, ac_iterations: int = 30, kl_weight: float = 0.3, dt_steps: int = 600,
              ablations: int = 0) -> dict:
    import numpy as np

    from penchant.cli.specs import model_spec
    from penchant.errors import ConfigError
    from penchant.experiment.run import parse_params
    from penchant.simulate.experiment import BEST, fit_policies, run_policies, summary, world_params
    from penchant.simulate.policies import missing_params, policy_params

    floor_spec = _floor(floor) if floor else None
    shared = {"train_steps": steps, "iterations": iterations, "ac_iterations": ac_iterations, "kl_weight": kl_weight,
              "dt_steps": dt_steps, "seed": seed, "floor": floor_spec, "ablations": ablations or None}
    specs = {}
    for label in dict.fromkeys([*names, BEST]):
        name, given = model_spec(label, [], "long-term")
        specs[label] = (name, policy_params(name, shared, given))
        for missing in missing_params(name, specs[label][1]):
            flag = {"floor": "--floor SIGNAL:VALUE"}.get(missing, f"{name}:{missing}=VALUE")
            raise typer.BadParameter(f"the {name} policy needs {flag}", param_hint=flag.split()[0])
    try:
        params = world_params({k: str(v) for k, v in parse_params(param).items()})
    except ValueError as e:
        raise ConfigError(str(e)) from None
    with progress() as bar:
        task = bar.add_task(f"reading {world}", total=None)
        worlds = _read_worlds(bar, task, world, model, params, seed, users, train_users)
        policies = fit_policies(worlds, specs, progress=lambda label, message: bar.update(
            task, description=f"{label}: {message}"))
        bar.update(task, description=f"running {len(policies)} policies on {users:,} test users × {steps} steps")
        episodes = run_policies(worlds, policies, steps, seed + 10_000)
        # a policy's own report beside the summary (the hierarchical policy's intent agreement)
        extra = {p: policies[p].report(worlds, steps, seed + 10_000) if hasattr(policies[p], "report") else {}
                 for p in dict.fromkeys(names)}
    report = {p: summary(episodes[p], episodes[BEST], floor_spec) | extra[p]
              | ({"training": policies[p].training} if policies[p].training else {}) for p in dict.fromkeys(names)}
    curves = {p: {"cumulative_click": np.cumsum(episodes[p].per_step["click"]), "retained": episodes[p].per_step["retained"]}
              for p in dict.fromkeys(names)}
    return {"world": world, "world_params": params.__dict__, "model": model, "steps": steps, "seed": seed,
            "policies": report, "curves": curves}


def _read_worlds(bar, task: int, world: str, model: str, params, seed: int, users: int, train_users: int):
    """The long-term worlds over ``world``'s tastes, ``model`` fitted for them, with ``bar``'s ``task`` saying which."""
    from penchant.cli.specs import model_spec, read_named
    from penchant.experiment.tasks import task_for
    from penchant.simulate.experiment import BEST

    data = read_named(world)
    name, model_params = model_spec(model, [], "ranking")
    bar.update(task, description=f"fitting {name} for the world's tastes")
    return task_for(BEST, ("long-term",)).read(data, model=name, model_params=model_params, params=params,
                                               seed=seed, users=users, train_users=train_users)


def _floor(text: str) -> tuple[str, float]:
    from penchant.simulate.policies import parse_floor

    try:
        floor = parse_floor(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--floor") from None
    assert floor is not None
    return floor


def _ablation_plot(ablations: dict, path: Path) -> None:
    """Each DT4IER variant's clicks and retention gained over greedy (paired per seed), with 95% t intervals over seeds."""
    from penchant.eval.plots import new_figure, save_figure

    plt, fig, ax, path = new_figure(path)
    for name, gain in ablations["vs_greedy"].items():
        c, r = gain["click"], gain["retention"]
        xerr = None if c["ci"][0] is None else [[c["mean"] - c["ci"][0]], [c["ci"][1] - c["mean"]]]
        yerr = None if r["ci"][0] is None else [[r["mean"] - r["ci"][0]], [r["ci"][1] - r["mean"]]]
        ax.errorbar([c["mean"]], [r["mean"]], xerr=xerr, yerr=yerr, marker="o", capsize=3, label=name)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axvline(0, color="grey", linewidth=0.8)
    save_figure(plt, fig, ax, path, f"DT4IER ablations against greedy ({len(ablations['seeds'])} seeds)",
                "clicks per user gained over greedy", "retention gained over greedy", fontsize=8)
    out.print(f"ablations plot written to {path}")


def _print(results: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{results['world']}: {results['steps']} steps, held-out users", title_justify="left")
    for col in ("policy", "clicks / user", "watch / user", "retention", "novelty", "creators left", "of oracle"):
        table.add_column(col)

    def fmt(stat: dict) -> str:
        low, high = stat["ci"]
        return f"{stat['mean']:.3g} [{low:.3g}, {high:.3g}]" if low is not None else f"{stat['mean']:.3g}"

    for name, r in results["policies"].items():
        table.add_row(name, fmt(r["return"]["click"]), fmt(r["return"]["watch"]), fmt(r["retention"]), fmt(r["novelty"]),
                      fmt(r["creator_survival"]), f"{r['fraction_of_best']['click']:.2f}")
    out.print(table)
    for name, r in results["policies"].items():
        if "ablations" in r:
            _print_ablations(name, r["ablations"], fmt)
    for name, r in results["policies"].items():
        if "intent" in r:
            i = r["intent"]
            out.print(f"{name}: intent agrees with the hidden session mode on {i['agreement']:.3f} of {i['lists']:,} lists "
                      f"(chance {i['chance']:.3f}, always the commoner mode {i['majority']:.3f}); ranked for novel in "
                      f"{i['novel_share_in_novelty_sessions']:.3f} of novelty-seeking sessions' lists, "
                      f"{i['novel_share_in_other_sessions']:.3f} of the others'; clicks / user of the same low level: "
                      + ", ".join(f"{k.replace('inferred', 'inferred intent')} {fmt(v)}" for k, v in i["clicks"].items()))


def _print_ablations(name: str, ablations: dict, fmt) -> None:
    from rich.table import Table

    table = Table(title=f"{name}: ablations over {len(ablations['seeds'])} seeds (mean per test user, 95% t interval "
                        "over seeds; gains paired with greedy on the same users)", title_justify="left")
    for col in ("variant", "clicks / user", "retention", "clicks over greedy", "retention over greedy"):
        table.add_column(col)
    for variant, m in ablations["mean"].items():
        gain = ablations["vs_greedy"].get(variant)
        table.add_row(variant, fmt(m["click"]), fmt(m["retention"]), fmt(gain["click"]) if gain else "",
                      fmt(gain["retention"]) if gain else "")
    out.print(table)
