"""Send the chatter of a library call (mmengine's logs, progress bars, warnings) to a log file,
so that a tool's terminal shows its own results and progress lines only."""
import contextlib
import os
import os.path as osp
import sys


@contextlib.contextmanager
def logged_to(path: str):
    """Redirect Python-level stdout and stderr into ``path`` (appended) while inside."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'a') as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        yield
        f.flush()
