"""A mistyped command gets the closest one ("did you mean"), at either level of the command line."""
from __future__ import annotations

import pytest

from ablate.cli import main


@pytest.mark.parametrize("argv, wanted", [(["rnu", "g.yaml"], "run"), (["shwo"], "show"), (["reprot"], "report"),
                                          (["zoo", "lss"], "ls"), (["zoo", "biuld"], "build")])
def test_a_mistyped_command_gets_did_you_mean(argv, wanted, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid choice: '{argv[-1] if argv[0] == 'zoo' else argv[0]}'" in err
    assert err.rstrip().endswith(f"did you mean '{wanted}'?")


def test_nothing_close_gets_no_guess(capsys):
    with pytest.raises(SystemExit):
        main(["xyzzy"])
    assert "did you mean" not in capsys.readouterr().err


def test_zoo_help_does_not_call_shipped_weights_built_here(capsys):
    with pytest.raises(SystemExit):
        main(["zoo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "installed from the weights shipped with ablate, or built (pretrained) here" in out
    assert "the tiny pretrained backbones built here" not in out
