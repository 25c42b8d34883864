"""The package's rooms import only from rooms below them, and no module imports itself
back through others (an import circle)."""
import ast
import os.path as osp
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / 'dm3d_mm'
# bottom to top: a room may import from the rooms before it (and ``registry``)
ROOMS = ['compat', 'sparse', 'datasets', 'models', 'cost', 'spatial', 'binary', 'weight',
         'structured', 'distill', 'joint', 'pruning', 'hooks', 'apis', 'studies',
         'benches']


def module_imports(path: Path):
    """Absolute dm3d_mm module names imported by the file at ``path`` (also in functions)."""
    rel = path.relative_to(PKG.parent).with_suffix('')
    parts = list(rel.parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
        package = parts
    else:
        package = parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = '.'.join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ''
            if mod.startswith('dm3d_mm'):
                # 'from pkg import submodule' imports the submodule too
                out.add(mod)
                for alias in node.names:
                    if (PKG.parent / (mod.replace('.', '/') + '/' + alias.name + '.py')).exists() \
                            or (PKG.parent / mod.replace('.', '/') / alias.name).is_dir():
                        out.add(f'{mod}.{alias.name}')
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith('dm3d_mm'))
    return out


def all_modules():
    mods = {}
    for path in PKG.rglob('*.py'):
        rel = path.relative_to(PKG.parent).with_suffix('')
        parts = list(rel.parts)
        name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
        mods[name] = module_imports(path)
    return mods


def room_of(module: str):
    parts = module.split('.')
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else None


def test_every_room_is_placed():
    rooms = {p.name for p in PKG.iterdir() if p.is_dir() and (p / '__init__.py').exists()}
    assert rooms <= set(ROOMS), f'rooms not in the order: {sorted(rooms - set(ROOMS))}'


def test_no_room_imports_from_a_room_above_it():
    bad = []
    for mod, imports in all_modules().items():
        room = room_of(mod)
        if room is None:
            continue
        for imp in imports:
            other = room_of(imp)
            if other is not None and ROOMS.index(other) > ROOMS.index(room):
                bad.append(f'{mod} imports {imp}')
    assert not bad, '\n'.join(bad)


def test_no_import_circle_between_modules():
    mods = all_modules()
    # only module -> module edges inside a room (rooms are checked above); a package
    # __init__ importing its own modules is not a circle
    graph = {m: {i for i in imps if i in mods and i != m and not m == i.rsplit('.', 1)[0]}
             for m, imps in mods.items()}
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if n.rsplit('.', 1)[0] == m:  # the package's own submodule
                continue
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                if not all(osp.basename(c.replace('.', '/')) for c in cycle):
                    continue
                pytest.fail('import circle: ' + ' -> '.join(cycle))
            if not state.get(n):
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m)


def test_the_circle_check_finds_a_circle(tmp_path, monkeypatch):
    """The check fails on a deliberate circle (a.py <-> b.py)."""
    pkg = tmp_path / 'dm3d_mm'
    (pkg / 'weight').mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'weight' / '__init__.py').write_text('')
    (pkg / 'weight' / 'a.py').write_text('from .b import x\n')
    (pkg / 'weight' / 'b.py').write_text('def f():\n    from .a import y\n')
    monkeypatch.setattr(__import__(__name__), 'PKG', pkg)
    with pytest.raises(pytest.fail.Exception, match='import circle'):
        test_no_import_circle_between_modules()
