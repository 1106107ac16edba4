"""Bad input reaches the user as one line and exit code 2; bugs keep their traceback."""

import pytest
import typer

from research_rl.cli.errors import user_errors
from research_rl.rollout import PromptTooLongError


def test_user_error_is_one_line_and_exit_2(capsys):
    @user_errors
    def command():
        raise PromptTooLongError("question q7: the prompt has 5000 tokens, over 4096")

    with pytest.raises(typer.Exit) as exit_info:
        command()
    assert exit_info.value.exit_code == 2
    assert capsys.readouterr().err.strip() == (
        "error: question q7: the prompt has 5000 tokens, over 4096"
    )


def test_a_bug_keeps_its_traceback():
    @user_errors
    def command():
        raise KeyError("internal")

    with pytest.raises(KeyError):
        command()
