"""``penchant data inspect`` and ``penchant split``."""

from __future__ import annotations

import shutil
from enum import Enum
from pathlib import Path

import typer

from penchant import DEFAULT_SEED
from penchant.cli.render import out, progress, summary_table, write_json

UserCol = typer.Option(None, "--user-col", help="Name of the user column (found by name when omitted).")
ItemCol = typer.Option(None, "--item-col", help="Name of the item column.")
RatingCol = typer.Option(None, "--rating-col", help="Name of the rating/weight column.")
TimeCol = typer.Option(None, "--time-col", help="Name of the timestamp column.")
Sep = typer.Option(None, "--sep", help="Delimiter of text files (from the extension or sniffed when omitted).")
Encoding = typer.Option("utf-8", "--encoding", help="Text encoding of log files (e.g. latin-1).")
KCore = typer.Option(None, "--kcore", help="Keep the k-core: repeatedly drop users and items with fewer than this many interactions.")
MinRating = typer.Option(None, "--min-rating", help="Keep only interactions rated at least this (positive feedback).")


class BlankRating(str, Enum):
    error = "error"
    skip = "skip"
    implicit = "implicit"


class Dedupe(str, Enum):
    last = "last"
    first = "first"
    none = "none"


BlankRatingOpt = typer.Option(
    BlankRating.error, "--blank-rating",
    help="What a blank rating means: error (refuse the log), skip (leave those rows out) or implicit "
         "(keep every row, without ratings: a log mixing clicks and ratings); counted either way.")
DedupeOpt = typer.Option(
    Dedupe.last, "--dedupe",
    help="Repeated (user, item) rows: keep the last (by time, else file order), the first, or none merged "
         "(every row an interaction); counted either way.")


def Seed(help: str):  # noqa: N802 — read like the other shared options
    """``--seed`` with the one default seed (:data:`penchant.DEFAULT_SEED`)."""
    return typer.Option(DEFAULT_SEED, "--seed", help=help)


def columns(user_col: str | None, item_col: str | None, rating_col: str | None, time_col: str | None,
            sep: str | None, encoding: str = "utf-8", blank_rating: BlankRating | str = "error") -> dict[str, str | None]:
    return {"user_col": user_col, "item_col": item_col, "rating_col": rating_col, "time_col": time_col,
            "sep": None if sep is None else sep.replace("\\t", "\t"), "encoding": encoding,
            # only when asked: readers that take no ratings (comparison files) refuse any option given
            **({"blank_rating": BlankRating(blank_rating).value} if blank_rating != BlankRating.error else {})}


def rows_line(summary: dict) -> str | None:
    """'5 rows read, 3 interactions: 2 repeated (user, item) rows merged', for data read from a file."""
    if "rows_read" not in summary:
        return None
    text = f"{summary['rows_read']:,} rows read, {summary['interactions']:,} interactions"
    repeated = summary["repeated_rows"]
    notes = [f"{repeated[k]:,} repeated (user, item) rows {k}" for k in ("merged", "kept") if repeated[k]]
    return text + (": " + "; ".join(notes) if notes else "")


def inspect(
    path: Path = typer.Argument(..., help="A log file (CSV/TSV/Parquet/.inter) or a data folder (RecBole, GroupLens MovieLens, Last.fm, saved dataset)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the statistics as JSON here."),
    save: Path = typer.Option(None, "--save", help="Save the parsed dataset to this folder (fast to reload)."),
    min_rating: float = MinRating,
    kcore: int = KCore,
    user_col: str = UserCol, item_col: str = ItemCol, rating_col: str = RatingCol, time_col: str = TimeCol, sep: str = Sep,
    encoding: str = Encoding, blank_rating: BlankRating = BlankRatingOpt, dedupe: Dedupe = DedupeOpt,
) -> None:
    """Statistics of a log or data folder: sizes, density, distributions, side information, and every
    row the reading merged or left out, counted."""
    from penchant.data import load

    ds = load(path, min_rating=min_rating, dedupe=dedupe.value,
              **columns(user_col, item_col, rating_col, time_col, sep, encoding, blank_rating))
    if kcore:
        ds = ds.kcore(kcore, kcore)
    summary = ds.summary()
    out.print(summary_table(summary))
    if (line := rows_line(summary)) is not None:
        out.print(line, markup=False)
    if json_out:
        write_json(json_out, summary)
    if save:
        ds.save(save)
        out.print(f"saved to {save}")


class Protocol(str, Enum):
    random = "random"
    leave_last = "leave-last"
    time = "time"
    users = "users"


def split(
    path: Path = typer.Argument(..., help="The data to split (any format `data inspect` reads)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder to write train/valid/test files to."),
    protocol: Protocol = typer.Option(Protocol.random, "--protocol", help="random per-user holdout, leave-last-n-out by time, global time cut-off, or whole users held out."),
    ratios: str = typer.Option("0.8,0.1,0.1", "--ratios", help="random: train,valid,test (or train,test) fractions; time/users: the last two are the valid and test fractions."),
    n_test: int = typer.Option(1, "--n-test", help="leave-last: interactions per user in test."),
    n_valid: int = typer.Option(1, "--n-valid", help="leave-last: interactions per user in valid (0 for none)."),
    seed: int = Seed("Random seed."),
    fmt: str = typer.Option("tsv", "--format", help="Output format: tsv, csv, parquet or inter (RecBole)."),
    min_rating: float = MinRating,
    kcore: int = KCore,
    user_col: str = UserCol, item_col: str = ItemCol, rating_col: str = RatingCol, time_col: str = TimeCol, sep: str = Sep,
    encoding: str = Encoding, blank_rating: BlankRating = BlankRatingOpt,
) -> None:
    """Split data into train/valid/test files, seeded and leak-free, and report what train lacks."""
    from penchant.data import load
    from penchant.data import split as S
    from penchant.data.load import side_file_paths
    from penchant.data.movielens import grouplens_layout
    from penchant.data.readers import is_atomic
    from penchant.data.write import FORMATS, write_log
    from penchant.errors import ConfigError, DataError

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    try:
        fractions = [float(x) for x in ratios.split(",")]
    except ValueError:
        raise DataError(f"--ratios {ratios!r} is not a comma-separated list of numbers", expected="e.g. 0.8,0.1,0.1") from None
    ds = load(path, min_rating=min_rating, **columns(user_col, item_col, rating_col, time_col, sep, encoding, blank_rating))
    if kcore:
        ds = ds.kcore(kcore, kcore)
    for step in ds.steps:  # what reading merged or left out, before the parts are written
        if step.name != "rows read":
            out.print(f"  {step}", markup=False)
    if protocol is Protocol.random:
        result = S.random_holdout(ds, fractions, seed=seed)
    elif protocol is Protocol.leave_last:
        result = S.leave_last_out(ds, n_test=n_test, n_valid=n_valid)
    elif protocol is Protocol.time:
        result = S.time_cutoff(ds, valid=fractions[-2] if len(fractions) > 1 else 0.0, test=fractions[-1])
    else:
        result = S.user_holdout(ds, valid=fractions[-2] if len(fractions) > 1 else 0.0, test=fractions[-1], seed=seed)
    stem = ds.name if fmt == "inter" else ""
    for name, part in result.parts().items():
        target = out_dir / (f"{stem}.{name}.{fmt}" if stem else f"{name}.{fmt}")
        write_log(part, target)
        out.print(f"{name}: {part.n_interactions:,} interactions -> {target}")
    if fmt == "inter" and ((path.is_dir() and not (path / "meta.json").exists() and not grouplens_layout(path))
                           or is_atomic(path)):
        for side in side_file_paths(path):  # so RecBole (and penchant) find the side information again
            shutil.copyfile(side, out_dir / f"{stem}{side.suffix}")
            out.print(f"side file {side.name} -> {out_dir / (stem + side.suffix)}")
    report = result.report()
    write_json(out_dir / "split.json", report)
    for name in ("valid", "test"):
        entry = report.get(name)
        if isinstance(entry, dict) and (entry.get("users_not_in_train") or entry.get("interactions_on_items_not_in_train")):
            out.print(f"[yellow]{name}: {entry['users_not_in_train']:,} users and "
                      f"{entry['interactions_on_items_not_in_train']:,} interactions on items are not in train "
                      "(left out of collaborative evaluation)[/yellow]")


def synth(
    out_path: Path = typer.Option(..., "--out", help="The log to write: .csv, .tsv, .parquet or .inter."),
    users: int = typer.Option(..., "--users", help="Users in the vocabulary."),
    items: int = typer.Option(..., "--items", help="Items in the vocabulary."),
    interactions: int = typer.Option(..., "--interactions", help="Distinct (user, item) pairs to draw."),
    skew: float = typer.Option(0.5, "--skew", help="Power-law exponent of item popularity (0: uniform)."),
    user_skew: float = typer.Option(0.3, "--user-skew", help="Power-law exponent of user activity."),
    seed: int = Seed("Seed of the draw."),
) -> None:
    """A synthetic log shaped like the public ones at any size: power-law item popularity and user
    activity, each (user, item) pair once, ratings 1-5 and timestamps (for benchmarks at scale)."""
    from penchant.data.synthetic import power_law_log
    from penchant.data.write import FORMATS, write_log
    from penchant.errors import ConfigError

    if out_path.suffix.lower().lstrip(".") not in FORMATS + ("pq",):
        raise ConfigError(f"--out {out_path}: the format follows the extension, one of .{', .'.join(FORMATS)}")
    ds = power_law_log(users, items, interactions, skew=skew, user_skew=user_skew, seed=seed)
    write_log(ds, out_path)
    for step in ds.steps:
        out.print(f"  {step}")
    out.print(f"wrote {ds.n_interactions:,} interactions to {out_path}")



def download(
    name: str = typer.Argument(None, help="The data set (see `penchant data download --list`).", show_default=False),
    url: str = typer.Option(None, "--url", help="Download from this mirror instead of the publisher."),
    checksum: str = typer.Option(None, "--checksum", help="md5:HEX or sha256:HEX of the mirror's archive (default: the published one)."),
    list_: bool = typer.Option(False, "--list", help="List the data sets that can be downloaded, with their sources."),
) -> None:
    """Download a public data set once (published checksum verified, progress shown) and print its
    folder, which every command reads: `penchant split FOLDER ...`."""
    from penchant.data.public import RELEASES, fetch
    from penchant.errors import ConfigError

    if list_ or name is None:
        if name is None and not list_:
            raise ConfigError("name a data set to download, or give --list")
        for release in RELEASES.values():
            out.print(f"[bold]{release.name}[/bold]  {release.about}\n    {release.url}  ({release.checksum})")
        return
    with progress() as bar:
        task = bar.add_task(f"fetching {name}", total=None)
        folder = fetch(name, url=url, checksum=checksum,
                       progress=lambda done, total: bar.update(task, completed=done, total=total))
    out.print(str(folder))
