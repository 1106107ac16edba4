"""Turn the project's input errors into one clear line and exit code 2, not a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import typer

F = TypeVar("F", bound=Callable)


def _user_error_types() -> tuple[type[BaseException], ...]:
    # Imported only once an exception is in flight, so commands start without these modules.
    from research_rl.backends.openai import ServerBackendError
    from research_rl.config import ConfigError
    from research_rl.corpus import CorpusError
    from research_rl.evaluation.judge import JudgeError
    from research_rl.questions import QuestionFileError
    from research_rl.report.rundir import RunDirError
    from research_rl.retrieval.base import RetrieverError
    from research_rl.rollout import PromptTooLongError
    from research_rl.training.checkpoints import CheckpointError

    return (
        ConfigError,  # TemplateError too
        CorpusError,
        QuestionFileError,  # DatasetFormatError, PredictionFileError too
        RetrieverError,  # IndexLoadError too
        PromptTooLongError,
        ServerBackendError,
        JudgeError,
        RunDirError,
        CheckpointError,
        FileNotFoundError,
    )


def user_errors(func: F) -> F:
    """Decorate a command: errors the project raises for bad input (a config, corpus, question
    file, index, prompt, server or run directory that is wrong) print as ``error: ...`` and exit 2.
    Anything else is a bug and keeps its traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as err:
            if not isinstance(err, _user_error_types()):
                raise
            print(f"error: {err}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
