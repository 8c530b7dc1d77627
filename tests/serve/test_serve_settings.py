"""The service's settings are one typed class read from flags > environment > file > defaults:
every setting reachable as PENCHANT_<NAME>, one precedence, and every wrong value one line that
names the setting and where it came from."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest

from penchant.errors import ConfigError
from penchant.serve.config import Settings, load_settings
from tests.conftest import ROOT, cli, write

#: a valid value other than the default for every setting, as the environment spells it, and what it reads as
NON_DEFAULT = {
    "data_dir": ("/srv/penchant", Path("/srv/penchant")),
    "database_url": ("postgresql://svc@db.internal/penchant", "postgresql://svc@db.internal/penchant"),
    "rate_limit_per_minute": ("7", 7),
    "max_request_bytes": ("1000", 1000),
    "max_model_bytes": ("5000", 5000),
    "max_restore_bytes": ("9000", 9000),
    "max_batch": ("500", 500),
    "retrain_every_s": ("3600", 3600.0),
    "answer_cache_entries": ("0", 0),
    "unknown_users": ("reject", "reject"),
    "unknown_items": ("reject", "reject"),
    "exploration_epsilon": ("0.1", 0.1),
    "thompson_noise": ("0.25", 0.25),
    "thompson_draws": ("200", 200),
    "log_impressions": ("false", False),
    "ann_min_items": ("0", 0),
    "job_lease_s": ("60", 60.0),
    "job_heartbeat_s": ("2", 2.0),
    "job_attempts": ("3", 3),
    "model": ("bpr", "bpr"),
    "model_params": ('{"factors": 32, "lr": 0.01}', {"factors": 32, "lr": 0.01}),
    "feedback_types": ('{"star": "positive", "skip": "negative"}', {"star": "positive", "skip": "negative"}),
    "feedback_weights": ('{"like": 2.5}', {"like": 2.5}),
}

#: the [service] keys of the file, in the class's order
SERVICE_KEYS = ("database_url, rate_limit_per_minute, max_request_bytes, max_model_bytes, max_restore_bytes, max_batch, "
                "retrain_every_s, answer_cache_entries, unknown_users, unknown_items, exploration_epsilon, thompson_noise, "
                "thompson_draws, log_impressions, ann_min_items, job_lease_s, job_heartbeat_s, job_attempts")

#: variables other parts of penchant read; the settings must neither take nor refuse them
OTHER_VARIABLES = {"PENCHANT_DATA": "/data", "PENCHANT_CACHE": "/cache", "PENCHANT_ADMIN_KEY": "pk_x_y",
                   "PENCHANT_LLM_URL": "http://localhost:1", "PENCHANT_LLM_MODEL": "m", "PENCHANT_RAY_ADDRESS": "auto",
                   "PENCHANT_MEMORY_LIMIT": "4GiB", "PENCHANT_THREADS": "2", "PENCHANT_TEST_DATABASE_URL": "sqlite://",
                   "PENCHANT_CONFIG": "/etc/nowhere.toml", "PENCHANT_MAX_BATCHES": "nonsense"}


def test_every_setting_has_an_environment_case_here():
    assert set(NON_DEFAULT) == set(Settings.model_fields)


@pytest.mark.parametrize("name", list(NON_DEFAULT))
def test_every_setting_is_read_from_its_environment_variable(tmp_path, name):
    text, expected = NON_DEFAULT[name]
    default = Settings.model_fields[name].get_default(call_default_factory=True)
    assert expected != default  # the case proves something only if it moves the value
    s = load_settings(None if name == "data_dir" else tmp_path, env={f"PENCHANT_{name.upper()}": text})
    assert getattr(s, name) == expected
    assert type(getattr(s, name)) is type(expected)


def test_feedback_types_from_the_environment_may_carry_weights(tmp_path):
    s = load_settings(tmp_path, env={"PENCHANT_FEEDBACK_TYPES": '{"click": "positive", '
                                                                '"like": {"meaning": "positive", "weight": 3}}'})
    assert s.feedback_types == {"click": "positive", "like": "positive"}
    assert s.weight("like") == 3.0 and s.weight("click") == 1.0 and s.meaning("dislike") is None


def test_flags_beat_the_environment_which_beats_the_file_which_beats_the_default(tmp_path):
    config = write(tmp_path / "s.toml", "[service]\nmax_batch = 100\n")
    env = {"PENCHANT_MAX_BATCH": "200"}
    flags = {"max-batch": "300"}
    assert load_settings(tmp_path, config_file=config, env=env, overrides=flags).max_batch == 300
    assert load_settings(tmp_path, config_file=config, env=env).max_batch == 200
    assert load_settings(tmp_path, config_file=config, env={}).max_batch == 100
    assert load_settings(tmp_path, env={}).max_batch == 10_000
    # --database-url and --data-dir are flags too
    s = load_settings(tmp_path / "flag", database_url="sqlite:///flag.db", config_file=config,
                      env={"PENCHANT_DATABASE_URL": "sqlite:///env.db", "PENCHANT_DATA_DIR": str(tmp_path / "env")})
    assert s.database_url == "sqlite:///flag.db" and s.data_dir == tmp_path / "flag"


def test_a_table_from_a_higher_place_replaces_the_lower_one_whole(tmp_path):
    config = write(tmp_path / "s.toml", '[model]\nname = "als"\nparams = { factors = 64, iterations = 5 }\n'
                                        '[feedback_types]\nclick = "positive"\nlike = { meaning = "positive", weight = 3.0 }\n')
    s = load_settings(tmp_path, config_file=config, env={"PENCHANT_MODEL_PARAMS": '{"factors": 32}',
                                                          "PENCHANT_FEEDBACK_TYPES": '{"star": "positive"}'})
    assert s.model_params == {"factors": 32}  # not merged with the file's iterations
    assert s.feedback_types == {"star": "positive"} and s.feedback_weights == {}  # the file's like went with its table
    # also where a caller passes a table as a dict, which pydantic-settings would otherwise merge
    assert load_settings(tmp_path, config_file=config, env={}, overrides={"model_params": {"factors": 8}}).model_params \
        == {"factors": 8}
    # a weight given as its own setting overrides the file's inline one
    s = load_settings(tmp_path, config_file=config, env={}, overrides={"feedback_weights": '{"like": 5}'})
    assert s.feedback_types == {"click": "positive", "like": "positive"} and s.weight("like") == 5.0


def test_the_file_keeps_its_layout(tmp_path):
    config = write(tmp_path / "s.toml", '[service]\ndatabase_url = "sqlite:///x.db"\nrate_limit_per_minute = 3\n'
                                        'retrain_every_s = 60\nunknown_items = "reject"\nlog_impressions = false\n'
                                        '[model]\nname = "bpr"\nparams = { factors = 16 }\n'
                                        '[feedback_types]\nclick = "positive"\nlike = { meaning = "positive", weight = 2 }\n')
    s = load_settings(tmp_path, config_file=config, env={})
    assert (s.database_url, s.rate_limit_per_minute, s.retrain_every_s, s.unknown_items, s.log_impressions) == \
        ("sqlite:///x.db", 3, 60.0, "reject", False)
    assert type(s.retrain_every_s) is float
    assert (s.model, s.model_params, s.feedback_types, s.feedback_weights) == \
        ("bpr", {"factors": 16}, {"click": "positive", "like": "positive"}, {"like": 2.0})


@pytest.mark.parametrize("text, message", [
    ("[service]\nmax_batch = 0\n", "{f}: service.max_batch must be at least 1, not 0"),
    ("[service]\nmax_batch = 'many'\n", '{f}: service.max_batch must be an integer, not "many"'),
    ("[service]\nmax_batch = 1.5\n", "{f}: service.max_batch must be an integer, not 1.5"),
    ("[service]\nlog_impressions = 1\n", "{f}: service.log_impressions must be a bool (true or false), not 1"),
    ("[service]\nlog_impressions = 'false'\n", '{f}: service.log_impressions must be a bool (true or false), not "false"'),
    ("[service]\nexploration_epsilon = 2\n", "{f}: service.exploration_epsilon must be at most 1, not 2"),
    ("[service]\nunknown_users = 'maybe'\n", '{f}: service.unknown_users must be "create" or "reject", not "maybe"'),
    ("[service]\nrate_limit = 3\n", "{f}: unknown key service.rate_limit; known: " + SERVICE_KEYS),
    ("[service]\ndata_dir = '/x'\n", "{f}: unknown key service.data_dir; known: " + SERVICE_KEYS),
    ("[servce]\nmax_batch = 3\n", "{f}: unknown section [servce]; known: service, model, feedback_types"),
    ("service = 3\n", "{f}: service must be a table ([service]), not 3"),
    ("[model]\nname = 'svd'\n", None),
    ("[model]\nparams = 3\n", "{f}: model.params must be a table (a JSON object in the environment or --set), not 3"),
    ("[model]\nfamily = 'x'\n", "{f}: unknown key model.family; known: name, params"),
    ("[feedback_types]\nstar = 'good'\n", '{f}: feedback_types.star must be one of positive, negative, exposure, not "good"'),
    ("[feedback_types]\nlike = { meaning = 'positive', weight = 0 }\n", "{f}: feedback_types.like.weight must be positive, not 0"),
    ("[feedback_types]\nlike = { meaning = 'positive', weight = true }\n", "{f}: feedback_types.like.weight must be a number, not true"),
    ("[feedback_types]\nlike = { meaning = 'positive', wait = 3 }\n", "{f}: feedback_types.like.wait is not a key (known: meaning, weight)"),
    ("[service\n", None),
])
def test_a_wrong_value_in_the_file_is_one_line_naming_its_key(tmp_path, text, message):
    config = write(tmp_path / "s.toml", text)
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path, config_file=config, env={})
    line = str(e.value)
    assert "\n" not in line and line.startswith(f"{config}: ")
    if message is not None:
        assert line == message.format(f=config)
    elif "svd" in text:
        assert line.startswith(f"{config}: model.name must be a registered model (") and line.endswith(', not "svd"')
        assert "als" in line and "bpr" in line


@pytest.mark.parametrize("env, message", [
    ({"PENCHANT_MAX_BATCH": "ten"}, "PENCHANT_MAX_BATCH='ten': max_batch must be an integer"),
    ({"PENCHANT_MAX_BATCH": "0"}, "PENCHANT_MAX_BATCH='0': max_batch must be at least 1"),
    ({"PENCHANT_RETRAIN_EVERY_S": "soon"}, "PENCHANT_RETRAIN_EVERY_S='soon': retrain_every_s must be a number"),
    ({"PENCHANT_EXPLORATION_EPSILON": "nan"}, "PENCHANT_EXPLORATION_EPSILON='nan': exploration_epsilon must be a finite number"),
    ({"PENCHANT_EXPLORATION_EPSILON": "1.5"}, "PENCHANT_EXPLORATION_EPSILON='1.5': exploration_epsilon must be at most 1"),
    ({"PENCHANT_LOG_IMPRESSIONS": "maybe"}, "PENCHANT_LOG_IMPRESSIONS='maybe': log_impressions must be a bool (true or false)"),
    ({"PENCHANT_UNKNOWN_ITEMS": "ignore"}, "PENCHANT_UNKNOWN_ITEMS='ignore': unknown_items must be \"create\" or \"reject\""),
    ({"PENCHANT_MODEL_PARAMS": "factors=32"},
     """PENCHANT_MODEL_PARAMS='factors=32': model_params must be a JSON object, e.g. {"factors": 32}"""),
    ({"PENCHANT_MODEL_PARAMS": "[32]"}, "PENCHANT_MODEL_PARAMS='[32]': model_params must be a JSON object, e.g. {\"factors\": 32}"),
    ({"PENCHANT_FEEDBACK_TYPES": '{"star": "good"}'},
     ("""PENCHANT_FEEDBACK_TYPES='{"star": "good"}': feedback_types.star must be one of positive, negative, """
      'exposure, not "good"')),
    ({"PENCHANT_FEEDBACK_WEIGHTS": '{"like": -2}'},
     """PENCHANT_FEEDBACK_WEIGHTS='{"like": -2}': feedback_weights.like must be positive, not -2"""),
    ({"PENCHANT_FEEDBACK_WEIGHTS": '{"star": 2}'},
     ("""PENCHANT_FEEDBACK_WEIGHTS='{"star": 2}': feedback_weights.star is not a feedback type """
      "(known: click, like, purchase, dislike, read)")),
])
def test_a_wrong_value_in_the_environment_is_one_line_naming_its_variable(tmp_path, env, message):
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path, env=env)
    assert str(e.value) == message


@pytest.mark.parametrize("overrides, message", [
    ({"max_batch": "0"}, "--set max_batch=0: max_batch must be at least 1"),
    ({"log-impressions": "sometimes"}, "--set log-impressions=sometimes: log_impressions must be a bool (true or false)"),
    ({"model": "svd"}, None),
    ({"max_batches": "5"}, "--set max_batches=5: unknown setting 'max_batches'; known: "),
])
def test_a_wrong_flag_is_one_line_naming_it(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path, env={"PENCHANT_MAX_BATCH": "50"}, overrides=overrides)
    line = str(e.value)
    assert "\n" not in line
    if message is None:
        assert line.startswith("--set model=svd: model must be a registered model (")
    else:
        assert line.startswith(message) and (line == message or message.endswith("known: "))


def test_a_wrong_value_is_an_error_even_where_a_higher_place_overrides_it(tmp_path):
    config = write(tmp_path / "s.toml", "[service]\nmax_batch = 0\n")
    with pytest.raises(ConfigError, match=r"s\.toml: service\.max_batch must be at least 1, not 0$"):
        load_settings(tmp_path, config_file=config, env={"PENCHANT_MAX_BATCH": "5"}, overrides={"max_batch": "6"})
    with pytest.raises(ConfigError, match=r"^PENCHANT_MAX_BATCH='ten': max_batch must be an integer$"):
        load_settings(tmp_path, env={"PENCHANT_MAX_BATCH": "ten"}, overrides={"max_batch": "6"})


def test_a_check_across_places_names_the_place_of_the_setting_it_fails(tmp_path):
    """Weights from the environment for a type that the flags' feedback types leave out."""
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path, env={"PENCHANT_FEEDBACK_WEIGHTS": '{"like": 2}'},
                      overrides={"feedback_types": '{"click": "positive"}'})
    assert str(e.value) == ("PENCHANT_FEEDBACK_WEIGHTS='{\"like\": 2}': feedback_weights.like is not a feedback type "
                            "(known: click)")


def test_no_data_folder_anywhere_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(None, env={})
    assert str(e.value) == "data_dir is required: give --data-dir or PENCHANT_DATA_DIR"


def test_other_penchant_variables_are_neither_read_nor_refused(tmp_path, monkeypatch):
    defaults = load_settings(tmp_path, env={})
    assert load_settings(tmp_path, env=OTHER_VARIABLES) == defaults
    for var, value in OTHER_VARIABLES.items():  # and through the real environment, as the CLI reads it
        monkeypatch.setenv(var, value)
    assert load_settings(tmp_path) == defaults
    assert Settings(data_dir=tmp_path) == defaults
    monkeypatch.setenv("PENCHANT_MAX_BATCH", "9")  # while one of its own is read from there
    assert load_settings(tmp_path).max_batch == 9 and Settings(data_dir=tmp_path).max_batch == 9


def test_empty_variables_count_as_unset_and_names_ignore_case(tmp_path):
    s = load_settings(tmp_path, env={"PENCHANT_MAX_BATCH": "", "penchant_rate_limit_per_minute": "3"})
    assert s.max_batch == 10_000 and s.rate_limit_per_minute == 3


def test_settings_travel_to_worker_processes_and_copy_with_changes(tmp_path):
    s = load_settings(tmp_path, env={"PENCHANT_FEEDBACK_TYPES": '{"like": {"meaning": "positive", "weight": 2}}',
                                     "PENCHANT_MODEL_PARAMS": '{"factors": 8}'})
    back = pickle.loads(pickle.dumps(s))
    assert back == s and back.weight("like") == 2.0 and back.model_params == {"factors": 8}
    changed = s.model_copy(update={"exploration_epsilon": 1.0})
    assert changed.exploration_epsilon == 1.0 and s.exploration_epsilon == 0.0
    with pytest.raises(Exception, match="frozen"):
        s.max_batch = 3
    assert "database_url" not in repr(load_settings(tmp_path, database_url="postgresql://u:secret@h/db", env={}))


def test_the_command_line_refuses_a_bad_variable_in_one_line_with_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv("PENCHANT_ADMIN_KEY", raising=False)
    monkeypatch.setenv("PENCHANT_MAX_BATCH", "ten")
    code, out, err = cli("serve", "--data-dir", tmp_path / "d", "--port", "0")
    assert (code, out, err) == (2, "", "penchant: error: PENCHANT_MAX_BATCH='ten': max_batch must be an integer\n")
    assert not (tmp_path / "d").exists()  # refused before anything was made
    monkeypatch.delenv("PENCHANT_MAX_BATCH")
    code, out, err = cli("serve", "--data-dir", tmp_path / "d", "--port", "0", "--set", "exploration_epsilon=2")
    assert (code, err) == (2, "penchant: error: --set exploration_epsilon=2: exploration_epsilon must be at most 1\n")
    code, out, err = cli("serve", "--data-dir", tmp_path / "d", "--set", "max_batch")
    assert (code, err) == (2, "penchant: error: --set max_batch: expected KEY=VALUE, e.g. --set max_batch=500\n")
    code, out, err = cli("serve", "--port", "0")
    assert (code, err) == (2, "penchant: error: data_dir is required: give --data-dir or PENCHANT_DATA_DIR\n")


def test_the_command_line_reads_flags_over_the_environment(tmp_path, monkeypatch):
    """`store restore` takes its feedback types from the settings: a dump of "star" events is refused
    unless star is a type, and --set beats PENCHANT_FEEDBACK_TYPES."""
    dump = write(tmp_path / "dump.jsonl", json.dumps({"kind": "event", "event_id": "e1", "user_id": "u", "item_id": "i",
                                                      "type": "star", "value": 1.0, "timestamp": 1.0}) + "\n")
    code, _, err = cli("store", "restore", "--in", dump, "--data-dir", tmp_path / "a")
    assert code == 2 and "unknown feedback type 'star'" in err and len(err.splitlines()) == 1
    monkeypatch.setenv("PENCHANT_FEEDBACK_TYPES", '{"star": "positive"}')
    code, out, err = cli("store", "restore", "--in", dump, "--data-dir", tmp_path / "b")
    assert code == 0 and "events 1" in out, err
    code, _, err = cli("store", "restore", "--in", dump, "--data-dir", tmp_path / "c", "--set",
                       'feedback_types={"click": "positive"}')
    assert code == 2 and "unknown feedback type 'star'" in err
    monkeypatch.setenv("PENCHANT_DATA_DIR", str(tmp_path / "from-env"))  # the folder from the environment too
    code, out, err = cli("store", "restore", "--in", dump)
    assert code == 0 and (tmp_path / "from-env" / "penchant.db").exists(), err


def test_the_documentation_lists_every_setting_with_its_variable_and_default():
    doc = (ROOT / "docs" / "service.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \| `PENCHANT_\w+` \|.*$", doc, re.MULTILINE)}
    assert set(rows) == set(Settings.model_fields)
    for name, f in Settings.model_fields.items():
        assert f"`PENCHANT_{name.upper()}`" in rows[name]
        default = f.get_default(call_default_factory=True)
        if name not in ("data_dir", "database_url", "feedback_types"):
            shown = json.dumps(default) if isinstance(default, bool | dict | str) else f"{default:_}".replace("_", ",")
            assert f"`{shown}`" in rows[name], (name, shown)


def test_the_service_model_is_one_it_can_train_not_a_policy(tmp_path):
    """Conversation and simulator policies are registered too, but the service trains and serves
    models of the file-learning families only."""
    for policy in ("maxent", "uniform", "greedy-recommender"):
        with pytest.raises(ConfigError, match=f"PENCHANT_MODEL='{policy}': model must be a registered model \\(als,"):
            load_settings(tmp_path, env={"PENCHANT_MODEL": policy})
    assert load_settings(tmp_path, env={"PENCHANT_MODEL": "bt"}).model == "bt"
