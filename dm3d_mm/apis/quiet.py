"""Send the chatter of a library call (mmengine's logs and progress bars, warnings, C++
messages) to a log file, so that a tool's terminal shows its own results and progress lines.

The redirection is at the file-descriptor level: mmengine's ProgressBar binds the original
``sys.stdout`` at import and torch's C++ warnings bypass Python, so swapping ``sys.stdout``
alone would leak both."""
import contextlib
import os
import os.path as osp
import sys


@contextlib.contextmanager
def logged_to(path: str):
    """Redirect stdout and stderr (file descriptors 1 and 2, and ``sys.stdout`` /
    ``sys.stderr``) into ``path`` (appended)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, 'a') as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:  # and the Python objects, wherever they point (a test's capture, say)
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
