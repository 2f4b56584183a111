"""Same seed and arguments give byte-identical files; another seed gives other data."""

from __future__ import annotations

from ingestion.generate import generate


def _checksums(manifest):
    return {f.file: f.sha256 for f in manifest.files}


def test_same_seed_same_bytes(tmp_path):
    first = generate(tmp_path / "a", 120, 99, days=60, block_size=50)
    second = generate(tmp_path / "b", 120, 99, days=60, block_size=50)
    assert _checksums(first) == _checksums(second)
    assert (tmp_path / "a" / "_manifest.json").read_bytes() == (
        tmp_path / "b" / "_manifest.json"
    ).read_bytes()


def test_other_seed_other_data(tmp_path):
    first = generate(tmp_path / "a", 120, 99, days=60)
    other = generate(tmp_path / "b", 120, 100, days=60)
    assert _checksums(first)["customers__part0001.csv"] != _checksums(other)["customers__part0001.csv"]


def test_refuses_to_mix_with_previous_output_unless_overwrite(tmp_path):
    generate(tmp_path, 20, 1, days=30)
    try:
        generate(tmp_path, 20, 1, days=30)
    except FileExistsError:
        pass
    else:
        raise AssertionError("expected FileExistsError")
    generate(tmp_path, 20, 2, days=30, overwrite=True)
