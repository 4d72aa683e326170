"""Progress bars: a refresh per second on a terminal, one line per 30 s in a job log."""

import io

from llm4sbr_core.logs import NON_TTY_PROGRESS_INTERVAL_S, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_log_file_refreshes_every_30_seconds():
    bar = progress(total=10, file=io.StringIO())
    assert bar.mininterval == NON_TTY_PROGRESS_INTERVAL_S == 30.0
    bar.close()


def test_progress_on_a_terminal_refreshes_every_second():
    bar = progress(total=10, file=_Terminal())
    assert bar.mininterval == 1.0
    bar.close()


def test_progress_in_a_log_writes_few_lines():
    out = io.StringIO()
    for _ in progress(range(10_000), file=out):
        pass
    # the first and the final refresh only: nothing per update
    assert out.getvalue().count("\r") <= 3
