"""Run a registered benchmark: ``tools/bench.py NAME [its arguments]``; ``--list`` names
them; ``tools/bench.py NAME --help`` gives a bench's arguments.

Example:
  python tools/bench.py host_syncs --frames 2
"""
import argparse
import importlib
import pkgutil
import sys

import dm3d_mm.benches
from dm3d_mm.apis.cli import add_debug_arg, run_cli
from dm3d_mm.errors import UserError
from dm3d_mm.registry import BENCHES


def load_benches() -> None:
    """Import every module of ``dm3d_mm.benches`` (each registers its bench)."""
    for mod in pkgutil.iter_modules(dm3d_mm.benches.__path__):
        importlib.import_module(f'dm3d_mm.benches.{mod.name}')


def main():
    load_benches()
    names = sorted(BENCHES.module_dict)
    if len(sys.argv) < 2 or sys.argv[1] in ('-h', '--help', '--list'):
        width = max(len(n) for n in names)
        print('tools/bench.py NAME [arguments]; NAME --help for its arguments\n')
        for n in names:
            print(f'  {n:<{width}}  {BENCHES.get(n).description()}')
        return
    name = sys.argv[1]
    if name not in BENCHES.module_dict:
        raise UserError(f'unknown bench {name!r}; known: {names} (tools/bench.py --list)')
    bench = BENCHES.get(name)()
    p = argparse.ArgumentParser(prog=f'tools/bench.py {name}', description=bench.description())
    bench.add_arguments(p)
    add_debug_arg(p)
    bench.run(p.parse_args(sys.argv[2:]))


if __name__ == '__main__':
    run_cli(main)
