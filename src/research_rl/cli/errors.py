"""Turn the project's input errors into one clear line and exit code 2, not a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import typer

F = TypeVar("F", bound=Callable)


def user_errors(func: F) -> F:
    """Decorate a command: ValueError/FileNotFoundError/RuntimeError subclasses the project raises
    for bad input are printed as ``error: ...`` and exit 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from research_rl.config import ConfigError
        from research_rl.corpus import CorpusError
        from research_rl.questions import QuestionFileError
        from research_rl.retrieval.base import RetrieverError

        try:
            return func(*args, **kwargs)
        except (ConfigError, CorpusError, QuestionFileError, RetrieverError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
