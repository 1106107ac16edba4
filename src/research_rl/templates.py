"""Prompt templates: how a question is put to the model.

- ``base``: one plain-text prompt explaining the protocol and ending in ``Assistant:`` (for base
  models, which continue text);
- ``instruct``: a system prompt explaining the protocol plus a user turn, rendered with the
  tokenizer's chat template and the assistant turn opened (``add_generation_prompt=True``).

Each protocol profile (``research_rl.profiles``) has its own built-in wording: ``research`` gives
ReSearch's instructions in ReSearch's structure (search *during* thinking, the final answer boxed
inside the answer tags; the base prompt is one line ending ``User: <question> Assistant:``, the
instruct user turn is the bare question); ``strict`` keeps research-rl's earlier prompts.

A user template file holds the text with a ``{question}`` slot: for ``base`` the whole prompt, for
``instruct`` the user turn (the system prompt can be replaced with its own file). The slot is filled
by plain replacement, not ``str.format``, so the ``\\boxed{}`` braces need no escaping.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from research_rl.config import ConfigError
from research_rl.profiles import PROFILES

SLOT = "{question}"
TemplateKind = Literal["base", "instruct"]


class TemplateError(ConfigError):
    """A template file that cannot be used (missing, or without a ``{question}`` slot). A config
    error, so every command reports it as one."""


def _builtin(name: str) -> str:
    return resources.files("research_rl").joinpath("templates", name).read_text(encoding="utf-8")


def _read(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise TemplateError(f"{path}: template file not found")
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class PromptTemplate:
    kind: TemplateKind
    text: str  # base: the whole prompt; instruct: the user turn. Holds the {question} slot.
    system: str | None = None  # instruct only
    source: str = "<builtin>"

    def __post_init__(self) -> None:
        if SLOT not in self.text:
            raise TemplateError(f"{self.source}: template has no {SLOT} slot")

    def render(self, question: str, tokenizer: Any = None) -> str:
        """The prompt text for ``question``; ``instruct`` needs the tokenizer's chat template."""
        filled = self.text.replace(SLOT, question.strip())
        if self.kind == "base":
            return filled
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise TemplateError(
                f"{self.source}: the instruct template needs a tokenizer with a chat template; "
                "use the base template for base models"
            )
        messages = [{"role": "user", "content": filled}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def load_template(
    kind: TemplateKind = "base",
    path: str | Path | None = None,
    system_path: str | Path | None = None,
    profile: str = "research",
) -> PromptTemplate:
    """The built-in template of ``kind`` for ``profile``, or the user's file at ``path``
    (``{question}`` slot)."""
    if kind not in ("base", "instruct"):
        raise TemplateError(f"unknown template kind {kind!r}: expected 'base' or 'instruct'")
    if profile not in PROFILES:
        raise TemplateError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    if path is not None:
        text, source = _read(path), str(path)
    else:
        name = f"{profile}_base.txt" if kind == "base" else f"{profile}_instruct_user.txt"
        text, source = _builtin(name), f"<builtin {profile} {kind}>"
    # A file's final newline is not part of the prompt: the base prompt must end in "Assistant:".
    text = text.rstrip("\n")
    system = None
    if kind == "instruct":
        system = (
            _read(system_path) if system_path else _builtin(f"{profile}_instruct_system.txt")
        ).strip()
    elif system_path is not None:
        raise TemplateError(f"{system_path}: a system prompt only applies to the instruct template")
    return PromptTemplate(kind=kind, text=text, system=system, source=source)
