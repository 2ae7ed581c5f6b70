"""The repository's papers: the licence pyproject names, and a CITATION.cff that cffconvert validates."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_licence_is_the_one_pyproject_names():
    license_text = (ROOT / "LICENSE").read_text()
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    assert license_text.startswith("MIT License") and "Permission is hereby granted" in license_text


def test_citation_cff_is_valid_and_cites_the_paper_it_reproduces():
    from cffconvert import Citation

    text = (ROOT / "CITATION.cff").read_text()
    citation = Citation(text)
    citation.validate()
    assert citation.cffobj["license"] == "MIT"
    paper = citation.cffobj["references"][0]
    assert paper["title"] == "Intriguing properties of neural networks" and paper["year"] == 2013
    assert {"type": "other", "value": "arXiv:1312.6199"} in paper["identifiers"]
    with pytest.raises(Exception, match="'year' was unexpected"):
        Citation(text.replace("license: MIT", "license: MIT\nyear: 2026")).validate()
