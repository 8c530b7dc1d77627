"""``penchant converse``: a conversation in the terminal, and ``penchant converse evaluate``: the
simulator benchmark with the scripts' JSON contract
``{"policy", "episodes", "sr@5", "sr@10", "sr@15", "avg_turns", "hdcg"}``."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

from penchant.cli.data_cmds import Seed
from penchant.cli.render import out, progress, write_json

#: the policies' names come from the registry when help is shown (penchant.cli.main fills {models:FAMILY} in)
POLICY_HELP = "A conversation policy: {models:conversation}."
SETTING_HELP = ("Who the test users are: warm (the scorer was trained on 80% of their history), cold (users it has "
                "never seen: 20% of the users held out whole) or drift (their targets are the items least like the "
                "rest of their history).")
LEVEL_HELP = ("MovieLens's attributes: coarse (genres, decades, countries, languages; the default) or fine (+ KG actors, "
              "directors, writers, producers). Not with --attributes.")
ATTRIBUTES_HELP = ("Item columns to ask about, comma-separated (e.g. brand,category,price): categorical or multi-valued "
                   "columns of the .item file, number columns cut into quartile bands, kg:RELATION for knowledge-graph "
                   "relations. Default: MovieLens's (--level).")
NOUN_HELP = "What the catalogue holds (film, product, book): genre, country and language questions name it. Default: film on MovieLens, else item."


def evaluate(
    path: Path = typer.Argument(None, help="A dataset folder (RecBole atomic files with .item, .kg, .link) or file.",
                                show_default=False),
    data: Path = typer.Option(None, "--data", help="The same as the positional data set."),
    policy: str = typer.Option(..., "--policy", help=POLICY_HELP),
    episodes: int = typer.Option(2000, "--episodes", help="Test episodes (a seeded sample of held-out interactions)."),
    seed: int = Seed("Seed of the split, the episodes and the simulator."),
    json_out: Path = typer.Option(None, "--json", help="Write the results as JSON here."),
    level: str = typer.Option(None, "--level", help=LEVEL_HELP, show_default=False),
    attributes: str = typer.Option(None, "--attributes", help=ATTRIBUTES_HELP, show_default=False),
    noun: str = typer.Option(None, "--noun", help=NOUN_HELP, show_default=False),
    model: str = typer.Option("ease", "--model", help="The recommender whose scores give each user's preference."),
    multi_choice: int = typer.Option(0, "--multi-choice", help="Offer this many values of one attribute type per question (0: yes/no questions)."),
    epochs: int = typer.Option(12, "--epochs", help="Training passes over the validation episodes of the learned policies (ear and cpr: this many; unicorn: the smaller of this and its own epochs parameter, 2 by default; the tree does not use it)."),
    text: bool = typer.Option(False, "--text", help="Questions and answers in words: the LLM phrases each question, an LLM user who knows the item it wants replies, the LLM reads the reply (PENCHANT_LLM_URL, else the embedded model)."),
    setting: str = typer.Option("warm", "--setting", help=SETTING_HELP),
    save: Path = typer.Option(None, "--save", help="Write the trained policy here (an artefact the terminal's --policy-path and the service load).", show_default=False),
) -> None:
    """Play a policy against the standard simulated user on held-out (user, item) episodes and
    report SR@5/10/15, average turns and hDCG@(15,10) with 95% intervals; with --text, the same
    episodes in words, and the share of answers read right."""
    from penchant.cli.specs import data_path
    from penchant.converse.experiment import check_setting
    from penchant.errors import ConfigError
    from penchant.experiment.tasks import task_for

    check_setting(setting)
    data = data_path(path, data)
    job = task_for(policy, ("conversation",))
    params = {"multi_choice": multi_choice} if multi_choice else {}
    if episodes < 1:
        raise ConfigError("--episodes must be at least 1")
    if save is not None and _is_oracle(policy):
        raise ConfigError(f"--save: {policy} knows each episode's target, so there is nothing to save for a person")
    with progress() as bar:
        task = bar.add_task("reading data, fitting the scorer", total=None)
        setup = job.read(data, level=level, attributes=None if attributes is None else attributes.split(","), noun=noun,
                         episodes=episodes, model=model, seed=seed, setting=setting)
        graph = setup.graph
        fresh = job.create(policy, params, graph)
        bar.update(task, description=f"{policy}: training" if fresh.learned else f"{policy}: episodes")
        fitted = job.fit(policy, params, setup, epochs=epochs, policy=fresh)
        if save is not None:
            from penchant.converse.artefact import save_policy

            save_policy(fitted, save, graph=graph, meta={
                "data": str(data), "setting": setting, "level": None if attributes else (level or "coarse"),
                "attributes": attributes, "noun": graph.noun, "model": model, "seed": seed, "epochs": epochs,
                "validation_episodes": len(setup.valid[0]), "train_seconds": round(fitted.train_seconds_, 2)})

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
        result, _ = job.test(fitted, setup, progress=step, simulated_user=simulated_user)
    from rich.table import Table

    kinds = ", ".join(graph.type_names) if attributes else (level or "coarse")
    table = Table(title=f"{policy} on {result['episodes']:,} {setting} episodes ({kinds} attributes: "
                        f"{graph.n_values:,} values; scorer {model})", title_justify="left")
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
    if save is not None:
        out.print(f"saved the trained {policy} to {save}")
    if json_out:
        write_json(json_out, result | {"level": None if attributes else (level or "coarse"),
                                       "attribute_types": list(graph.type_names), "noun": graph.noun, "seed": seed,
                                       "text": text})


def converse(
    ctx: typer.Context,
    data: Path = typer.Option(None, "--data", help="A dataset folder or file with item attributes (or give it as the first argument)."),
    user: str = typer.Option(None, "--user", help="Your user id in the data (its history is excluded and shapes the ranking)."),
    level: str = typer.Option(None, "--level", help=LEVEL_HELP, show_default=False),
    attributes: str = typer.Option(None, "--attributes", help=ATTRIBUTES_HELP, show_default=False),
    noun: str = typer.Option(None, "--noun", help=NOUN_HELP, show_default=False),
    policy: str = typer.Option(None, "--policy", help=POLICY_HELP + " Learned ones are trained first on validation "
                               "episodes, unless --policy-path gives one trained already. Default: tree.",
                               show_default=False),
    model: str = typer.Option("ease", "--model", help="The recommender whose scores give your preference."),
    policy_path: Path = typer.Option(None, "--policy-path", help="A trained policy (penchant converse evaluate --save) to talk with instead of training one; it must have been trained over this data's attributes.", show_default=False),
) -> None:
    """Find an item (a film on MovieLens; --attributes for your own catalogue's columns) by answering
    questions: yes/no to each, and the number of the one you want when a list is shown (or n for none
    of them)."""
    if ctx.invoked_subcommand is not None:
        return
    if data is None:
        raise typer.BadParameter("give the data set: a path (or --data PATH)", param_hint="PATH")
    _interactive(data, user, level, attributes, noun, policy, model, policy_path)


def _is_oracle(name: str) -> bool:
    """Whether the registered conversation policy ``name`` is an oracle (told each episode's target)."""
    from penchant.models.registry import entry

    return bool(getattr(entry(name, "conversation").cls, "oracle", False))


def _interactive(data: Path, user: str | None, level: str | None, attributes: str | None, noun: str | None,
                 policy_name: str | None, model: str, policy_path: Path | None = None) -> None:
    import numpy as np

    from penchant.converse.session import Conversation
    from penchant.converse.state import Scorer
    from penchant.data import load
    from penchant.errors import ConfigError
    from penchant.experiment.tasks import task_for

    job = task_for(policy_name or "tree", ("conversation",))  # an unknown policy fails before the data is read
    if policy_path is not None:
        from penchant.converse.artefact import policy_info

        saved = policy_info(policy_path)["policy"]  # an unreadable artefact fails before the data is read
        if policy_name is not None and policy_name != saved:
            raise ConfigError(f"--policy {policy_name} but {policy_path} holds a trained {saved}; leave --policy out")
        policy_name = saved
    policy_name = policy_name or "tree"
    if _is_oracle(policy_name):
        raise ConfigError(f"{policy_name} must be told the item you want, so it only plays simulated episodes "
                          "(penchant converse evaluate)")
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
        setup = job.read(data, dataset=ds, level=level, attributes=None if attributes is None else attributes.split(","),
                         noun=noun, episodes=1, valid_episodes=400, model=model)
        graph = setup.graph
        if policy_path is not None:
            from penchant.converse.artefact import load_policy

            policy = load_policy(policy_path, graph)
        else:
            policy = job.create(policy_name, {}, graph)
            if policy.learned:
                bar.update(task, description=f"training the {policy_name} policy")
            policy = job.fit(policy_name, {}, setup, epochs=5, policy=policy)
    popularity = np.log1p(setup.popularity)
    base = setup.base if index >= 0 else (lambda u: popularity)
    scorer = Scorer(graph, base)
    titles = ds.item_text if ds.item_text is not None else ds.item_ids
    conv = Conversation(graph, scorer, policy, index, exclude=exclude, titles=titles)
    kinds = [graph.type_label(k) for k in graph.nameable_types() or graph.type_names]
    listed = ", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else kinds[0]
    article = "an" if listed[:1].lower() in "aeiou" else "a"
    opening = input(f"What are you in the mood for? Name {article} {listed} (Enter to skip): ").strip()
    if opening:
        value = graph.find(opening)
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
    elif conv.state.turn >= conv.max_turns:
        print(f"I could not find it in {conv.max_turns} turns.")
    else:
        print("I could not find it: nothing left has everything you said yes to.")


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
