"""The ``penchant`` command: parses, calls the library, renders. No logic of its own."""

from __future__ import annotations

import re
import sys
import typing

import typer

from penchant.cli import (
    converse_cmds,
    data_cmds,
    eval_cmds,
    fairness_cmds,
    llm_cmds,
    model_cmds,
    ope_cmds,
    prefs_cmds,
    serve_cmds,
    simulate_cmds,
    when_to_show_cmds,
)
from penchant.cli.render import err, out, write_json
from penchant.errors import PenchantError

app = typer.Typer(name="penchant", help="Learn what each person prefers, and act on it.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        from penchant import __version__

        print(f"penchant {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version,
                                       is_eager=True),
          threads: int = typer.Option(None, "--threads", min=1, help="Threads for torch, BLAS and OpenMP (also "
                                      "PENCHANT_THREADS; default: the usable cores less those other work keeps busy)."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr (neither the bar nor plain lines).")) -> None:
    """Learn what each person prefers, and act on it."""
    from penchant.cli.render import set_quiet
    from penchant.threads import configure

    set_quiet(quiet)
    configure(threads)  # before torch or a BLAS is loaded: their pools start at this size
data_app = typer.Typer(help="Inspect feedback data, download a public data set, or make a synthetic log.", no_args_is_help=True)
data_app.command("inspect")(data_cmds.inspect)
data_app.command("synth")(data_cmds.synth)
data_app.command("download")(data_cmds.download)
app.add_typer(data_app, name="data")
app.command("split")(data_cmds.split)
app.command("fit")(model_cmds.fit)
app.command("recommend")(model_cmds.recommend)
app.command("similar")(model_cmds.similar)
app.command("neighbours")(model_cmds.neighbours)
app.command("evaluate")(eval_cmds.evaluate)
app.command("compare")(eval_cmds.compare)
app.command("quickstart")(eval_cmds.quickstart)
app.command("tune")(eval_cmds.tune_cmd)
ratings_app = typer.Typer(help="Rating prediction (explicit feedback).", no_args_is_help=True)
ratings_app.command("cv")(eval_cmds.ratings_cv)
app.add_typer(ratings_app, name="ratings")
prefs_app = typer.Typer(help="Pairwise preferences (A-versus-B choices).", no_args_is_help=True)
for _name in ("fit", "evaluate", "compare", "export", "score", "explain"):
    prefs_app.command(_name)(getattr(prefs_cmds, _name))
app.add_typer(prefs_app, name="prefs")
converse_app = typer.Typer(help="Conversational recommendation: ask, then recommend.", invoke_without_command=True,
                           cls=converse_cmds.DataOrCommand)
converse_app.callback()(converse_cmds.converse)
converse_app.command("evaluate")(converse_cmds.evaluate)
app.add_typer(converse_app, name="converse")
app.command("ope")(ope_cmds.ope)
app.command("fairness")(fairness_cmds.fairness)
app.command("when-to-show")(when_to_show_cmds.when_to_show)
simulate_app = typer.Typer(help="Policies in a simulated world where what you show changes what users do next.",
                           no_args_is_help=True)
simulate_app.command("run")(simulate_cmds.run)
simulate_app.command("compare")(simulate_cmds.compare)
simulate_app.command("slate")(simulate_cmds.slate)
simulate_app.command("segments")(simulate_cmds.segments)
simulate_app.command("constrained")(simulate_cmds.constrained)
app.add_typer(simulate_app, name="simulate")
llm_app = typer.Typer(help="Language models: the endpoint (PENCHANT_LLM_URL, else the embedded SmolLM2) and what penchant does with it.",
                      no_args_is_help=True)
llm_app.command("serve")(llm_cmds.serve)
llm_app.command("check")(llm_cmds.check)
llm_app.command("judge")(llm_cmds.judge)
llm_app.command("edits")(llm_cmds.edits)
llm_app.command("summarize")(llm_cmds.summarize)
llm_app.command("prefeval")(llm_cmds.prefeval)
app.add_typer(llm_app, name="llm")
app.command("serve")(serve_cmds.serve)
keys_app = typer.Typer(help="API keys of the service.", no_args_is_help=True)
keys_app.command("create")(serve_cmds.keys_create)
keys_app.command("list")(serve_cmds.keys_list)
keys_app.command("revoke")(serve_cmds.keys_revoke)
app.add_typer(keys_app, name="keys")
store_app = typer.Typer(help="The service's data: dump and restore.", no_args_is_help=True)
store_app.command("dump")(serve_cmds.store_dump)
store_app.command("restore")(serve_cmds.store_restore)
app.add_typer(store_app, name="store")
versions_app = typer.Typer(help="The service's model versions.", no_args_is_help=True)
versions_app.command("import")(serve_cmds.models_import)
app.add_typer(versions_app, name="versions")


@app.command("models")
def models(
    family: str = typer.Option(None, "--family", help="Only this family: ranking, rating, sequential, preference, "
                               "conversation, slate (bandit and slate policies) or long-term (long-term world policies)."),
    json_out: str = typer.Option(None, "--json", help="Also write the list as JSON to this file."),
) -> None:
    """List every registered model of every family, with its parameters and defaults; an oracle (a
    simulator's reference that reads the world's hidden state) is marked as one."""
    from rich.table import Table

    from penchant.models.registry import entry, model_names

    table = Table(title="Registered models", title_justify="left")
    for col in ("name", "family", "what", "parameters (default)"):
        table.add_column(col)
    listing = []
    for name in model_names(family):
        found = entry(name)
        params = [p.as_json() for p in found.params()]
        oracle = bool(getattr(found.cls, "oracle", False))
        table.add_row(name + "".join(f"\n(alias {a})" for a in found.aliases) + ("\n(oracle)" if oracle else ""),
                      found.family, found.summary,
                      "\n".join(f"{p['name']}={p['default']!r}  {p['help']}" for p in params) or "-")
        listing.append({"name": name, "family": found.family, "aliases": list(found.aliases),
                        "summary": found.summary, "params": params,
                        "search_space": sorted(found.search_space), "oracle": oracle})
    out.print(table)
    if json_out:
        write_json(json_out, listing)


def _type_label(param) -> str | None:
    """What a value looks like in --help, in the command line's words (PATH, TEXT, INTEGER, a|b),
    not Python's (<path>, <str>, <int>); flags take no value and show none."""
    desc = param.type_descriptor
    if getattr(param, "is_flag", False) or desc.annotation is bool:
        return None
    if desc.is_choice and desc.choices:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices)
    if desc.is_path:
        return "PATH"
    annotation = typing.get_args(desc.annotation)[0] if desc.is_list else desc.annotation
    return {int: "INTEGER", float: "NUMBER"}.get(annotation, "TEXT")


def _registry_names(command) -> None:
    """Fill ``{models:FAMILY}`` in ``command``'s parameter help with the registry's names of that
    family, when the help is shown: listing the registry imports every model, too slow for each start."""
    shown = command.format_help

    def format_help(ctx, formatter, shown=shown):
        from penchant.models.registry import model_names

        for param in command.params:
            if getattr(param, "help", None) and "{models:" in param.help:
                param.help = re.sub(r"\{models:([\w-]+)\}", lambda m: ", ".join(model_names(m.group(1))), param.help)
        return shown(ctx, formatter)

    command.format_help = format_help


def _plain_help(command) -> None:
    """Give every parameter of ``command`` and its subcommands the plain type label."""
    for param in command.params:
        param.display_type_rich = lambda ctx, param=param: _type_label(param)
    if any("{models:" in (getattr(param, "help", None) or "") for param in command.params):
        _registry_names(command)
    made = command.get_help_option  # --help is made afresh for each context

    def help_option(ctx, made=made):
        option = made(ctx)
        if option is not None:
            option.display_type_rich = lambda ctx: None
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def main(argv: list[str] | None = None) -> None:
    """Entry point: penchant's own errors become one line on stderr and exit code 2."""
    command = typer.main.get_command(app)
    _plain_help(command)
    try:
        command(args=argv, prog_name="penchant")
    except PenchantError as exc:
        sys.stderr.write(f"penchant: error: {exc}\n")
        sys.exit(2)
    except OSError as exc:
        sys.stderr.write(f"penchant: error: {exc.strerror or exc}: {exc.filename or ''}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
