"""The report's outline: every section shows its heading and something, even with no runs."""
from IPython.display import Markdown

from vitlab.report import outline


def test_every_section_shows_its_heading_and_what_fills_it_with_no_runs(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(outline, "display", shown.append)
    runs = outline.Runs.load(tmp_path)
    for section in outline.SECTIONS:
        start = len(shown)
        section.show(runs)
        heading, *parts = shown[start:]
        assert isinstance(heading, Markdown) and heading.data.startswith(f"## {section.title}")
        assert parts, f"{section.title}: nothing shown"


def test_sections_have_distinct_titles_that_name_no_markup():
    titles = [s.title for s in outline.SECTIONS]
    assert len(set(titles)) == len(titles)
    assert not any("#" in t or "\n" in t for t in titles)
