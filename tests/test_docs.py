"""The docs stay guides and their links hold: every docs page is at most 250 lines (results
live beside their configs, configs/*/README.md), and every relative link of the README, the
docs and the configs' READMEs names a file that exists and, with an anchor, a heading of it
(GitHub's slugs)."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md')),
         *sorted((REPO / 'configs').rglob('README.md'))]
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors_of(page: Path) -> set:
    text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)  # no headings in code
    return {slug(line.lstrip('#')) for line in text.splitlines() if line.startswith('#')}


def links_of(page: Path):
    text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)
    return [m.group(1) for m in LINK.finditer(text)
            if not re.match(r'^[a-z]+:', m.group(1))]


@pytest.mark.parametrize('page', sorted((REPO / 'docs').glob('*.md')), ids=lambda p: p.name)
def test_every_docs_page_is_a_guide_of_at_most_250_lines(page):
    assert len(page.read_text().splitlines()) <= 250


def test_every_relative_link_names_a_file_and_a_heading_that_exist():
    broken = []
    for page in PAGES:
        for target in links_of(page):
            path, _, anchor = target.partition('#')
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f'{page.relative_to(REPO)}: {target} (no such file)')
            elif anchor and dest.suffix == '.md' and anchor not in anchors_of(dest):
                broken.append(f'{page.relative_to(REPO)}: {target} (no such heading)')
    assert not broken, '\n'.join(broken)
