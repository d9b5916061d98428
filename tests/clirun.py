"""`hamq` run in the test process, for the tests of its parsing and messages."""
import subprocess


def hamq_here(*args):
    """The same command in this process (``cli.main``, what ``python -m hamqcore.study.cli`` runs), for
    checks of its parsing and messages: no fresh interpreter and torch import (about 3 s) per call. An
    exception that escapes main fails the test itself."""
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    from hamqcore.study import cli

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = cli.main(list(args))
        except SystemExit as e:   # argparse's own errors and --help
            rc = e.code
    return subprocess.CompletedProcess(list(args), rc, out.getvalue(), err.getvalue())
