"""Command-line conventions of the tools: a user mistake gives one line, ``error: ...``, on
stderr and exit status 2 (as argparse does); ``--debug`` shows the traceback instead."""
import sys
from typing import Callable

# what bad input raises in dm3d_mm, mmengine (configs) and numpy (point files)
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, KeyError, NotADirectoryError,
               IsADirectoryError, TypeError)


def add_model_args(parser):
    """--device, --allow-partial and --cfg-options: how a tool builds and loads its model."""
    from mmengine.config import DictAction
    parser.add_argument('--device', help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--allow-partial', action='store_true',
                        help='load a checkpoint that does not fit the model (keys that fit)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser


def add_debug_arg(parser):
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of an error')
    return parser


def run_cli(main: Callable[[], None]) -> None:
    """Run a tool's ``main``; user errors become one line and exit 2 unless --debug."""
    debug = '--debug' in sys.argv
    try:
        main()
    except USER_ERRORS as e:
        if debug:
            raise
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        print(f'error: {" ".join(msg.split())}', file=sys.stderr)
        sys.exit(2)
