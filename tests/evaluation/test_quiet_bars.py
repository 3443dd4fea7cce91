"""lmms-eval's progress bars are kept out of the grid's output without patching lmms-eval."""
import contextlib
import io

from tqdm import tqdm

from ablate.evaluation.runner import _WithoutProgressBars


def test_a_forced_progress_bar_is_dropped_and_other_text_passes():
    err = io.StringIO()
    with contextlib.redirect_stderr(_WithoutProgressBars(err)):
        import sys

        bar = tqdm(total=3, desc="Postprocessing", disable=False)   # what lmms-eval does
        for _ in range(3):
            bar.update(1)
        bar.close()
        print("a warning that must reach the user", file=sys.stderr)
    assert "Postprocessing" not in err.getvalue()
    assert err.getvalue() == "a warning that must reach the user\n"
