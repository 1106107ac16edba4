import pytest

from research_rl.config import ConfigError, StrictModel, load_config


class Inner(StrictModel):
    topk: int = 5


class Outer(StrictModel):
    name: str
    inner: Inner = Inner()


def test_valid_file_loads(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\ninner:\n  topk: 3\n")
    cfg = load_config(p, Outer)
    assert cfg.inner.topk == 3


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\ninner:\n  top_k: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, Outer)
    assert "inner.top_k" in str(err.value) and str(p) in str(err.value)


def test_mistyped_value_names_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\ninner:\n  topk: many\n")
    with pytest.raises(ConfigError, match=r"inner\.topk"):
        load_config(p, Outer)


def test_overrides_win(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\n")
    assert load_config(p, Outer, {"inner.topk": 9}).inner.topk == 9


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", Outer)
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p, Outer)


def test_dotted_overrides_make_sections_and_refuse_a_leaf_as_parent():
    from research_rl.config import ConfigError, parse_set_options, with_overrides

    data = with_overrides({"grpo": {"beta": 0.0}}, {"grpo.max_steps": 3, "run.output_dir": "x"})
    assert data == {"grpo": {"beta": 0.0, "max_steps": 3}, "run": {"output_dir": "x"}}
    with pytest.raises(ConfigError, match=r"'grpo.beta' is not a section"):
        with_overrides(data, {"grpo.beta.x": 1})
    assert parse_set_options(["grpo.max_steps=10", "a.b=[1, 2]", "c= true"]) == {
        "grpo.max_steps": 10,
        "a.b": [1, 2],
        "c": True,
    }
    with pytest.raises(ConfigError, match=r"--set 'max_steps': expected KEY=VALUE"):
        parse_set_options(["max_steps"])
