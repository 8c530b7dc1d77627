"""``penchant converse``: a conversation in the terminal, and ``penchant converse evaluate``: the
simulator benchmark with the scripts' JSON contract
``{"policy", "episodes", "sr@5", "sr@10", "sr@15", "avg_turns", "hdcg"}``."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

from penchant.cli.data_cmds import Seed
from penchant.cli.render import out, progress, write_json

POLICY_HELP = "maxent, greedy, ear, cpr or tree."
LEVEL_HELP = "Attributes: coarse (genres, decades, countries, languages) or fine (+ KG actors, directors, writers, producers)."


def evaluate(
    path: Path = typer.Argument(None, help="A dataset folder (RecBole atomic files with .item, .kg, .link) or file.",
                                show_default=False),
    data: Path = typer.Option(None, "--data", help="The same as the positional data set."),
    policy: str = typer.Option(..., "--policy", help=POLICY_HELP),
    episodes: int = typer.Option(2000, "--episodes", help="Test episodes (a seeded sample of held-out interactions)."),
    seed: int = Seed("Seed of the split, the episodes and the simulator."),
    json_out: Path = typer.Option(None, "--json", help="Write the results as JSON here."),
    level: str = typer.Option("coarse", "--level", help=LEVEL_HELP),
    model: str = typer.Option("ease", "--model", help="The recommender whose scores give each user's preference."),
    multi_choice: int = typer.Option(0, "--multi-choice", help="Offer this many values of one attribute type per question (0: yes/no questions)."),
    epochs: int = typer.Option(12, "--epochs", help="Policy-gradient epochs of the learned policies (ear, cpr)."),
    text: bool = typer.Option(False, "--text", help="Questions and answers in words: the LLM phrases each question, an LLM user who knows its film replies, the LLM reads the reply (PENCHANT_LLM_URL, else the embedded model)."),
) -> None:
    """Play a policy against the standard simulated user on held-out (user, item) episodes and
    report SR@5/10/15, average turns and hDCG@(15,10) with 95% intervals; with --text, the same
    episodes in words, and the share of answers read right."""
    from penchant.cli.specs import data_path
    from penchant.converse.experiment import evaluate_policy, prepare
    from penchant.data import load
    from penchant.errors import ConfigError
    from penchant.models.registry import entry

    data = data_path(path, data)
    policy_class = entry(policy, "conversation").cls
    if episodes < 1:
        raise ConfigError("--episodes must be at least 1")
    with progress() as bar:
        task = bar.add_task("reading data, fitting the scorer", total=None)
        setup = prepare(load(data), level, episodes=episodes, model=model, seed=seed)
        bar.update(task, description=f"{policy}: training" if policy_class.learned else f"{policy}: episodes")

        def step(done: int, total: int) -> None:
            bar.update(task, description=f"{policy}: episodes", completed=done, total=total)

        simulated_user = None
        if text:
            from functools import partial

            from penchant.llm.client import LLMClient
            from penchant.llm.conversation import TextUser

            client = LLMClient()
            titles = setup.dataset.item_text.astype(str) if setup.dataset.item_text is not None else setup.dataset.item_ids
            simulated_user = lambda graph, target, rng: partial(TextUser, client=client, title=str(titles[target]))(graph, target, rng)  # noqa: E731
        result = evaluate_policy(setup, policy, multi_choice=multi_choice, epochs=epochs, progress=step,
                                 simulated_user=simulated_user)
    from rich.table import Table

    table = Table(title=f"{policy} on {result['episodes']:,} episodes ({level} attributes: {setup.graph.n_values:,} "
                        f"values; scorer {model})", title_justify="left")
    for col in ("SR@5", "SR@10", "SR@15", "avg turns", "hDCG", "questions (values)", "lists"):
        table.add_column(col)

    def cell(key: str) -> str:
        lo, hi = result[f"{key}_ci"]
        return f"{result[key]:.4f} ({lo:.4f}–{hi:.4f})"

    table.add_row(cell("sr@5"), cell("sr@10"), cell("sr@15"), cell("avg_turns"), cell("hdcg"),
                  f"{result['questions_per_episode']:.2f} ({result['values_offered_per_episode']:.2f})",
                  f"{result['lists_per_episode']:.2f}")
    out.print(table)
    if text:
        out.print(f"answers read as the attribute user would have given them: {result['understood']:.1%} "
                  f"of {result['answers_read']:,}" if result.get("understood") is not None else "no question was asked")
    if json_out:
        write_json(json_out, result | {"level": level, "seed": seed, "text": text})


def converse(
    ctx: typer.Context,
    data: Path = typer.Option(None, "--data", help="A dataset folder or file with item attributes (or give it as the first argument)."),
    user: str = typer.Option(None, "--user", help="Your user id in the data (its history is excluded and shapes the ranking)."),
    level: str = typer.Option("coarse", "--level", help=LEVEL_HELP),
    policy: str = typer.Option("tree", "--policy", help=POLICY_HELP + " Learned ones are trained first on validation episodes."),
    model: str = typer.Option("ease", "--model", help="The recommender whose scores give your preference."),
) -> None:
    """Find a film by answering questions: yes/no to each, and the number of the film you want
    when a list is shown (or n for none of them)."""
    if ctx.invoked_subcommand is not None:
        return
    if data is None:
        raise typer.BadParameter("give the data set: a path (or --data PATH)", param_hint="PATH")
    _interactive(data, user, level, policy, model)


def _interactive(data: Path, user: str | None, level: str, policy_name: str, model: str) -> None:
    import numpy as np

    from penchant.converse.experiment import prepare
    from penchant.converse.policies import create_policy
    from penchant.converse.session import Conversation
    from penchant.converse.state import Scorer
    from penchant.data import load
    from penchant.errors import ConfigError
    from penchant.models.registry import entry

    entry(policy_name, "conversation")  # an unknown policy fails before the data is read
    with progress() as bar:
        task = bar.add_task("reading data, fitting the scorer", total=None)
        ds = load(data)
        index, exclude = -1, None
        if user is not None:
            hits = np.flatnonzero(ds.user_ids.astype(str) == str(user))
            if not len(hits):
                raise ConfigError(f"user {user!r} is not in {data}")
            index, exclude = int(hits[0]), ds.csr[int(hits[0])].indices
        # the scorer's model sees 80% of each user's history; policies learn on validation episodes
        setup = prepare(ds, level, episodes=1, valid_episodes=400, model=model)
        graph = setup.graph
        policy = create_policy(policy_name, graph)
        if policy.learned:
            bar.update(task, description=f"training the {policy_name} policy")
            policy.fit(setup.trainer(epochs=5))
    popularity = np.log1p(setup.popularity)
    base = setup.base if index >= 0 else (lambda u: popularity)
    scorer = Scorer(graph, base, reflect=policy.reflect)
    titles = ds.item_text if ds.item_text is not None else ds.item_ids
    conv = Conversation(graph, scorer, policy, index, exclude=exclude, titles=titles)
    names = {str(n).lower(): v for v, n in enumerate(graph.names)}
    opening = input("What are you in the mood for? Name a genre, decade, country or language (Enter to skip): ").strip()
    if opening:
        value = names.get(opening.lower())
        if value is None:
            out.print(f"I do not know {opening!r}; let me ask instead.")
        else:
            conv.open(value)
    while (move := conv.ask()) is not None:
        if move.kind == "question":
            reply = _ask_yes_no(f"Q{conv.state.turn}: {move.text} [y/n] ")
            conv.answer(reply)
        else:
            print(f"Turn {conv.state.turn}: how about one of these?")
            for k, title in enumerate(move.titles, 1):
                print(f"  {k}. {title}")
            choice = _ask_choice("The number of the one you want, or n for none: ", len(move.items))
            conv.answer(None if choice is None else move.items[choice - 1])
    if conv.found is not None:
        print(f"Enjoy {titles[conv.found]}!")
    else:
        print(f"I could not find it in {conv.max_turns} turns.")


def _ask_yes_no(prompt: str) -> bool:
    while True:
        reply = input(prompt).strip().lower()
        if reply in ("y", "yes", "n", "no"):
            return reply.startswith("y")
        print("Please answer y or n.")


def _ask_choice(prompt: str, n: int) -> int | None:
    while True:
        reply = input(prompt).strip().lower()
        if reply in ("n", "no", "none", ""):
            return None
        if reply.isdigit() and 1 <= int(reply) <= n:
            return int(reply)
        print(f"Please type a number from 1 to {n}, or n.")


class DataOrCommand(TyperGroup):
    """``penchant converse PATH`` as well as ``penchant converse evaluate PATH``: a first argument
    that is not a subcommand is the data set (a group's own positional argument would swallow the
    subcommand's name)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["--data", args[0], *args[1:]]
        return super().parse_args(ctx, args)
