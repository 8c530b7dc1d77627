"""``penchant fairness``: the impression-variance gap of simulated ad campaigns before and after
VRS-style re-ranking, with the utility given up (see penchant.simulate.campaigns and docs/ranking.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from penchant.cli.render import out, write_json

DEFAULT_KNOBS = (0.5, 1.0, 2.0, 4.0, 8.0)


def fairness(
    data: str = typer.Argument("ml-100k", help="Users with gender/age/occupation and items with genres: ml-100k "
                               "or a data folder penchant reads (ML-100K's attributes stand in for protected ones)."),
    knob: list[float] = typer.Option(list(DEFAULT_KNOBS), "--knob", min=0.0,
                                     help="Controller gain λ (repeatable; λ = 0, plain delivery, is always run)."),
    attribute: list[str] = typer.Option(["gender", "age"], "--attribute", help="Protected attribute (repeatable): a user attribute of the data."),
    rounds: int = typer.Option(200, "--rounds", min=1, help="Auction rounds."),
    arrivals: int = typer.Option(200, "--arrivals", min=1, help="Users arriving per round (one ad slot each)."),
    noise: float = typer.Option(0.0, "--noise", min=0.0, help="Laplace scale (impressions) of the noise on the delivered counts the controller reads (privacy-preserving measurement)."),
    threshold: float = typer.Option(0.1, "--threshold", min=0.0, max=1.0, help="A campaign's gap counted as within (share of impressions reported)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the targeting, the bids and the arrivals."),
    json_out: Path = typer.Option(None, "--json", help="Write the sweep here."),
    plot: Path = typer.Option(None, "--plot", help="Write the trade-off curve (gap per attribute against utility given up) here (PNG)."),
) -> None:
    """Simulated ad campaigns (one per genre, targeting on occupation) delivered by bid * pCTR, and the
    VRS-style controller at each --knob: per protected attribute, the impression-weighted gap between
    each campaign's delivered and eligible audience (shuffle distance), and the value and clicks given up."""
    from rich.table import Table

    from penchant.cli.specs import read_named
    from penchant.simulate.campaigns import campaign_world, sweep

    world = campaign_world(read_named(data), attributes=tuple(attribute), seed=seed)
    rows = sweep(world, knob, rounds=rounds, arrivals=arrivals, measurement_noise=noise, threshold=threshold,
                 seed=seed)
    names = tuple(world.groups)
    table = Table(title=f"{data}: {world.n_campaigns} campaigns, {world.n_users} users, {rounds}x{arrivals} "
                  "impressions; gap = impression-weighted shuffle distance", title_justify="left")
    table.add_column("λ", justify="right")
    for a in names:
        table.add_column(f"gap {a}", justify="right")
        table.add_column(f"≤{threshold:g} {a}", justify="right")
    for col in ("value lost", "clicks lost"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['knob']:g}", *[v for a in names for v in (f"{r['gap'][a]:.4f}", f"{r['within'][a]:.1%}")],
                      f"{r['value_lost']:.2%}", f"{r['clicks_lost']:.2%}")
    out.print(table)
    base, last = rows[0], rows[-1]
    for a in names:
        out.print(f"{a}: gap {base['gap'][a]:.4f} before, {last['gap'][a]:.4f} at λ={last['knob']:g} "
                  f"({1 - last['gap'][a] / base['gap'][a] if base['gap'][a] > 0 else 0:.0%} closed) for {last['value_lost']:.2%} of the value")
    if json_out is not None:
        write_json(json_out, {"data": data, "campaigns": list(world.campaign_names), "groups": world.group_names,
                              "rounds": rounds, "arrivals": arrivals, "noise": noise, "threshold": threshold,
                              "seed": seed, "sweep": rows})
    if plot is not None:
        from penchant.eval.plots import xy_plot

        lost = [100 * r["value_lost"] for r in rows]
        xy_plot({a: (lost, [r["gap"][a] for r in rows]) for a in names}, plot,
                title="VRS-style re-ranking: exposure gap against value given up",
                xlabel="value given up (% of plain delivery)", ylabel="impression-weighted gap (shuffle distance)",
                annotate={a: [f"λ={r['knob']:g}" for r in rows] for a in names})
        out.print(f"wrote {plot}")
