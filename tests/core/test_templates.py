"""Prompt templates: built-in wording, the user's file, the {question} slot."""

from __future__ import annotations

import pytest

from research_rl.templates import TemplateError, load_template


@pytest.mark.parametrize("profile", ["research", "strict"])
def test_base_template_explains_the_protocol_and_ends_in_assistant(profile):
    prompt = load_template("base", profile=profile).render("Who wrote Dune?")
    assert prompt.endswith("Assistant:")
    assert "User: Who wrote Dune?" in prompt
    for tag in ("<think>", "</search>", "<result>", "</answer>", "\\boxed{}"):
        assert tag in prompt


def test_research_templates_have_researchs_structure(tokenizer):
    """One line that ends right after the question with "Assistant:"; searching *during*
    thinking; the final answer boxed inside the answer tags; the instruct user turn is the bare
    question and the system prompt carries the same instructions."""
    base = load_template("base").render("Who wrote Dune?")
    assert "\n" not in base and base.endswith("User: Who wrote Dune? Assistant:")
    assert "While it reasons, the Assistant can call a Wikipedia search tool" in base
    assert "<answer> The final answer is \\[ \\boxed{the answer} \\] </answer>" in base
    instruct = load_template("instruct")
    assert instruct.text == "{question}" and "\n" not in instruct.system
    assert "While you reason, you can call the Wikipedia search tool" in instruct.system
    assert "\\boxed{the answer}" in instruct.system
    prompt = instruct.render("Who wrote Dune?", tokenizer)
    assert prompt.endswith("<|user|>\nWho wrote Dune?\n<|assistant|>\n")


@pytest.mark.parametrize("profile, user", [("research", ""), ("strict", "Question: ")])
def test_instruct_template_uses_the_chat_template(tokenizer, profile, user):
    prompt = load_template("instruct", profile=profile).render("Who wrote Dune?", tokenizer)
    assert prompt.startswith("<|system|>\n") and "<search>" in prompt
    assert f"<|user|>\n{user}Who wrote Dune?\n" in prompt
    assert prompt.endswith("<|assistant|>\n")  # the generation prompt opens the assistant turn


def test_instruct_needs_a_chat_template():
    with pytest.raises(TemplateError, match="chat template"):
        load_template("instruct").render("q", tokenizer=None)


def test_user_template_file(tmp_path, tokenizer):
    path = tmp_path / "mine.txt"
    path.write_text("Q: {question} use \\boxed{} please\nA:\n", encoding="utf-8")
    assert load_template("base", path).render(" x? ") == "Q: x? use \\boxed{} please\nA:"
    system = tmp_path / "sys.txt"
    system.write_text("Be brief.", encoding="utf-8")
    prompt = load_template("instruct", path, system).render("x?", tokenizer)
    assert prompt.startswith("<|system|>\nBe brief.\n<|user|>\nQ: x? use")


def test_template_without_slot_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("no slot here", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"bad\.txt.*\{question\}"):
        load_template("base", path)


def test_missing_file_and_unknown_kind(tmp_path):
    with pytest.raises(TemplateError, match="not found"):
        load_template("base", tmp_path / "nope.txt")
    with pytest.raises(TemplateError, match="unknown template kind"):
        load_template("chat")  # type: ignore[arg-type]
    with pytest.raises(TemplateError, match="unknown profile 'paper'"):
        load_template("base", profile="paper")
