"""Typed parameters: one class per model, derived from its constructor, from which the registry
reads names, types, defaults and help, and which validates every value set by name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penchant.errors import ConfigError
from penchant.models.registry import convert_params, entry, model_names, param_specs, params_class


@pytest.mark.parametrize("name", model_names())
def test_every_model_has_one_typed_parameter_class(name):
    cls = entry(name).cls
    config = params_class(cls)
    assert config is params_class(cls)  # derived once
    defaults = config.model_validate({})
    assert {p.name: p.default for p in entry(name).params()} == dict(defaults)
    assert set(entry(name).search_space) <= set(config.model_fields)
    assert {s["name"] for s in param_specs(name)} == set(config.model_fields)


def test_values_by_hand():
    assert convert_params("als", {"factors": "12", "values": "Yes", "regularization": "1e-3"}) == \
        {"factors": 12, "values": True, "regularization": 0.001}
    assert convert_params("itemknn", {"k": " none "}) == {"k": None}
    assert convert_params("als", {}) == {}
    with pytest.raises(ConfigError, match="'als' has no parameter 'factor'; its parameters: factors"):
        convert_params("als", {"factor": 3})
    with pytest.raises(ConfigError, match=r"factors='3\.5' is not a valid int"):
        convert_params("als", {"factors": "3.5"})
    with pytest.raises(ConfigError, match="values='t' is not a boolean"):
        convert_params("als", {"values": "t"})  # one rule of words, not pydantic's wider set


@given(st.text(max_size=12))
def test_any_string_for_a_number_is_a_number_or_one_line_error(text):
    try:
        got = convert_params("als", {"factors": text})["factors"]
    except ConfigError as exc:
        assert "\n" not in str(exc) and "factors=" in str(exc)
    else:
        assert isinstance(got, int) and got == int(text.strip())
