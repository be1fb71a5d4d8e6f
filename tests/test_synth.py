from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from hccr.data.charset import gb2312_chars
from hccr.data.gnt import read_gnt
from hccr.data.strokes import char_strokes, covered
from hccr.data.synth import SynthConfig, compose_top_bottom, synth, writer_samples
from hccr.errors import HccrError


def test_asset_covers_all_of_gb2312():
    assert set(gb2312_chars()) <= covered()
    s = char_strokes("安")
    assert len(s) == 6 and all(p.shape[1] == 2 for p in s)
    assert 0 <= min(p[:, 1].min() for p in s) and max(p[:, 1].max() for p in s) <= 1024  # y down, in the box


def test_gnt_output_reads_back_with_labels(tmp_path):
    files = synth(tmp_path / "s", SynthConfig(chars="安宁家永", writers=3, seed=1), workers=1, progress=False)
    assert [f.name for f in files] == ["synth0000.gnt", "synth0001.gnt", "synth0002.gnt"]
    for f in files:
        rec = read_gnt(f)
        assert rec.problems == [] and rec.chars == list("安宁家永")
        for img, _ in rec:
            assert img.dtype == np.uint8 and 20 <= max(img.shape) <= 120
            assert img.min() < 128 and (img == 255).mean() > 0.3  # dark ink on a white background


def test_same_seed_is_byte_identical_and_writers_differ(tmp_path):
    cfg = SynthConfig(chars="安宁家", writers=2, seed=7)
    a = synth(tmp_path / "a", cfg, workers=2, progress=False)
    b = synth(tmp_path / "b", cfg, workers=1, progress=False)
    assert [f.read_bytes() for f in a] == [f.read_bytes() for f in b]
    assert a[0].read_bytes() != a[1].read_bytes()
    other = synth(tmp_path / "c", SynthConfig(chars="安宁家", writers=1, seed=8), workers=1, progress=False)
    assert other[0].read_bytes() != a[0].read_bytes()


def test_writer_style_is_consistent_within_a_writer():
    cfg = SynthConfig(chars="", writers=1, seed=3)
    ink = [np.mean([img[img < 200].mean() for img, _ in writer_samples("三三三三三三", w, cfg)]) for w in range(6)]
    per_writer = [[img[img < 200].mean() for img, _ in writer_samples("三三三三", w, cfg)] for w in range(6)]
    within = np.mean([np.std(v) for v in per_writer])
    assert np.std(ink) > within  # writers differ more from each other than samples of one writer


def test_composed_character():
    strokes = compose_top_bottom(char_strokes("安")[:3], char_strokes("成"))
    assert len(strokes) == 3 + len(char_strokes("成"))
    img, ch = writer_samples(["宬"], 0, SynthConfig(), extra={"宬": strokes})[0]
    assert ch == "宬" and img.min() < 128


DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.mark.skipif(not DEJAVU.exists(), reason="DejaVu font not installed")
def test_font_source(tmp_path):
    cfg = SynthConfig(chars="AB", writers=1, fonts=(str(DEJAVU),), font_fraction=1.0)
    (img, ch), _ = writer_samples(["A", "B"], 0, cfg)
    assert ch == "A" and img.min() < 128 and img.shape[0] > 20


def test_cli_synth_and_preview(tmp_path):
    r = run_cli("synth", tmp_path / "s", "--chars", "安宁", "--writers", "2", "--preview", tmp_path / "p.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.png").stat().st_size > 1000 and len(list((tmp_path / "s").glob("*.gnt"))) == 2
    r = run_cli("synth", tmp_path / "t", "--chars", "宬")
    assert r.returncode != 0 and "no stroke data" in r.stderr and "--font" in r.stderr and "Traceback" not in r.stderr


def test_cli_synth_resumes_with_its_own_prefix_and_says_what_it_kept(tmp_path):
    """Two generators' writers share a store only with different file names; a resumed run keeps its files."""
    r = run_cli("synth", tmp_path / "s", "--chars", "安宁", "--writers", "1", "--prefix", "builtin")
    assert r.returncode == 0, r.stderr
    r = run_cli("synth", tmp_path / "s", "--chars", "安宁", "--writers", "2", "--prefix", "builtin")
    assert r.returncode == 0 and "wrote 1 .gnt file to" in r.stdout and "1 written before were kept" in r.stdout
    assert sorted(f.name for f in (tmp_path / "s").glob("*.gnt")) == ["builtin0000.gnt", "builtin0001.gnt"]
    r = run_cli("synth", tmp_path / "s", "--chars", "安", "--prefix", "../x")
    assert r.returncode != 0 and "--prefix" in r.stderr and "Traceback" not in r.stderr


def test_gb2312_level_2_is_the_3008_characters_after_level_1():
    from hccr.data.charset import resolve_charset

    level2 = resolve_charset("gb2312-2").chars
    assert len(level2) == 3008 and not set(level2) & set(gb2312_chars(level1_only=True))
    assert set(level2) | set(gb2312_chars(level1_only=True)) == set(gb2312_chars())


def test_synth_rerun_with_other_characters_is_refused_not_silently_kept(tmp_path):
    """A rerun into a folder adds missing writers; one asking for other characters or another seed would keep the
    old files as if they were its own, so it is refused, naming what differs."""
    synth(tmp_path / "s", SynthConfig(chars="安", writers=1, seed=0), workers=1, progress=False)
    assert len(synth(tmp_path / "s", SynthConfig(chars="安", writers=2, seed=0), workers=1, progress=False)) == 2
    for cfg in (SynthConfig(chars="宴家", writers=2, seed=0), SynthConfig(chars="安", writers=2, seed=1)):
        with pytest.raises(HccrError, match="other settings"):
            synth(tmp_path / "s", cfg, workers=1, progress=False)
    synth(tmp_path / "s", SynthConfig(chars="宴家", writers=1, seed=0, prefix="other"), workers=1, progress=False)
    # each prefix keeps its own record: a rerun of either with another seed is still refused
    for prefix, chars in (("synth", "安"), ("other", "宴家")):
        with pytest.raises(HccrError, match="seed 0 not 5"):
            synth(tmp_path / "s", SynthConfig(chars=chars, writers=1, seed=5, prefix=prefix), workers=1, progress=False)
    for cfg, what in ((SynthConfig(chars="", writers=1), "names no characters"), (SynthConfig(chars="安", writers=0), "at least 1")):
        with pytest.raises(HccrError, match=what):
            synth(tmp_path / "t", cfg, workers=1, progress=False)


def test_a_synth_run_killed_half_way_is_checked_on_a_rerun_with_other_settings(tmp_path, monkeypatch):
    """Its settings were recorded only at the end: a rerun with other characters kept the killed run's writers as
    its own (a store of 3,755 classes where 5 were asked for)."""
    import hccr.data.synth as sy
    from hccr.errors import HccrError

    real, done = sy._write_writer, []

    def killed_after_one(args):
        if done:
            raise KeyboardInterrupt
        done.append(real(args))
        return done[-1]

    monkeypatch.setattr(sy, "_write_writer", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        sy.synth(tmp_path / "s", sy.SynthConfig(chars="安宁家", writers=3, seed=0), workers=1, progress=False)
    monkeypatch.setattr(sy, "_write_writer", real)
    with pytest.raises(HccrError, match="holds synthetic writers made with other settings"):
        sy.synth(tmp_path / "s", sy.SynthConfig(chars="安宴", writers=3, seed=1), workers=1, progress=False)
    sy.synth(tmp_path / "s", sy.SynthConfig(chars="安宁家", writers=3, seed=0), workers=1, progress=False)  # resumes
    assert len(list((tmp_path / "s").glob("*.gnt"))) == 3
