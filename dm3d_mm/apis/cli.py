"""Command-line conventions of the tools: a user mistake gives one line, ``error: ...``, on
stderr and exit status 2 (as argparse does); anything else is a bug and shows its full
traceback. A user mistake is what dm3d_mm's input checks raise (:mod:`dm3d_mm.errors`),
plus the two that come from the libraries' own input checks: a config ``type`` no registry
knows (mmengine's registry) and a config file that does not parse; ``--debug`` shows the
traceback of those too."""
import sys
import traceback
from typing import Callable, Dict, Optional, Sequence

from ..errors import UserError


def _user_mistake(exc: BaseException) -> Optional[str]:
    """The one line of a user mistake, None for anything else (decided by where the error
    comes from, not by its class)."""
    if isinstance(exc, UserError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    origin = frames[-1].filename.replace('\\', '/') if frames else ''
    # mmengine's registry refusing a config type it does not know
    if isinstance(exc, KeyError) and '/mmengine/registry/' in origin and exc.args and \
            'is not in the' in str(exc.args[0]):
        return f'config: {exc.args[0]}'
    # mmengine's config parser refusing a file (syntax, a missing _base_)
    if isinstance(exc, (SyntaxError, FileNotFoundError)) and \
            ('/mmengine/config/' in origin or '/mmengine/fileio/' in origin):
        return f'config: {exc}'
    return None


def add_model_args(parser):
    """--device, --allow-partial and --cfg-options: how a tool builds and loads its model."""
    from mmengine.config import DictAction
    parser.add_argument('--device', help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--allow-partial', action='store_true',
                        help='load a checkpoint that does not fit the model (keys that fit)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser


def add_spatial_objective_args(parser):
    """--spatial-objective and --spatial-objective-scale: what a joint allocation minimises
    over the combinations of keep ratios (a ``JOINT_OBJECTIVES`` piece)."""
    from ..registry import JOINT_OBJECTIVES
    parser.add_argument('--spatial-objective', choices=sorted(JOINT_OBJECTIVES.module_dict),
                        help="what the joint allocation minimises over the combinations "
                             "(default 'sum': spatial + weight distortion; "
                             "'saturating_weight': D_s + c log(1 + D_w / c), c from "
                             '--spatial-objective-scale)')
    parser.add_argument('--spatial-objective-scale', type=float,
                        help="c of the 'saturating_weight' objective")
    return parser


def spatial_objective_of(args):
    """The ``objective`` of the ``spatial=`` section the two flags above ask for (None:
    neither given); a scale without 'saturating_weight', or that without a scale, is a
    ValueError."""
    kind, scale = args.spatial_objective, args.spatial_objective_scale
    if kind == 'saturating_weight':
        if scale is None:
            raise UserError("--spatial-objective saturating_weight needs "
                             '--spatial-objective-scale')
        return dict(type=kind, scale=scale)
    if scale is not None:
        raise UserError('--spatial-objective-scale is the scale of --spatial-objective '
                         'saturating_weight')
    return kind


def add_spatial_rerank_args(parser):
    """--spatial-rerank and its --spatial-rerank-top-k, -steps and -repeats: a re-rank of
    the joint allocation's best combinations (a ``JOINT_RERANKS`` piece)."""
    from ..registry import JOINT_RERANKS
    parser.add_argument('--spatial-rerank', choices=sorted(JOINT_RERANKS.module_dict),
                        help="re-rank the joint allocation's best combinations before one is "
                             "chosen ('finetune_probe': a short fine-tune of each, the least "
                             'distorted after it wins)')
    parser.add_argument('--spatial-rerank-top-k', type=int,
                        help='how many combinations of least objective are re-ranked '
                             '(default 3)')
    parser.add_argument('--spatial-rerank-steps', type=int,
                        help='fine-tune iterations of the probe per combination (default 30)')
    parser.add_argument('--spatial-rerank-repeats', type=int,
                        help='probes per combination on consecutive seeds, their mean '
                             'distortion decides (default 3)')
    return parser


def spatial_rerank_of(args):
    """The ``rerank`` of the ``spatial=`` section the flags above ask for (None: none);
    --spatial-rerank-top-k, -steps or -repeats without --spatial-rerank is a ValueError."""
    given = {k: v for k, v in (('top_k', args.spatial_rerank_top_k),
                               ('steps', args.spatial_rerank_steps),
                               ('repeats', args.spatial_rerank_repeats)) if v is not None}
    if args.spatial_rerank is None:
        if given:
            raise UserError('--spatial-rerank-top-k, -steps and -repeats set '
                             '--spatial-rerank finetune_probe')
        return None
    return dict(type=args.spatial_rerank, **given)


def keep_ratios_of(pairs: Sequence[str], module: str) -> Dict[str, float]:
    """Site name -> keep ratio of ``location=keep`` arguments (each may hold several, comma
    separated: ``['input=0.5', 'stage2=0.75,bev=0.25']``), the sites of ``module`` (e.g.
    ``middle_encoder``); ValueError naming the pair that is not one."""
    ratios = {}
    for pair in (p for arg in pairs for p in arg.split(',')):
        loc, _, keep = pair.partition('=')
        try:
            ratios[f'{module}.{loc.strip()}'] = float(keep)
        except ValueError:
            raise UserError(f'keep ratios: expected LOCATION=KEEP, got {pair!r}') from None
    return ratios


def add_debug_arg(parser):
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of an error')
    return parser


def run_cli(main: Callable[[], None]) -> None:
    """Run a tool's ``main``: a user mistake (see the module docstring) becomes one line on
    stderr and exit status 2 unless --debug; any other error propagates with its traceback.

    Args:
        main (Callable): the tool's main function.
    """
    debug = '--debug' in sys.argv
    try:
        main()
    except Exception as e:
        msg = None if debug else _user_mistake(e)
        if msg is None:
            raise
        print(f'error: {" ".join(msg.split())}', file=sys.stderr)
        sys.exit(2)
