"""Measuring and calibrating the synthetic writers' style against (here: stand-in) real handwriting."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import run_cli

from hccr.data.store import ConvertOptions, convert
from hccr.data.style import (
    StyleProfile,
    calibrate_store,
    domain_classifier,
    measure,
    synthetic_features,
)
from hccr.data.synth import SynthConfig, synth
from hccr.errors import HccrError

CHARS = "安字家国"
# A deliberately shifted style: the "real" handwriting the calibration must find its way to.
TARGET = StyleProfile(pen_scale=1.6, ink_base=70.0, size_mean=80.0, aspect_mu=0.0)


@pytest.fixture(scope="module")
def shifted_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("style")
    prof = TARGET.save(root / "target.json")
    synth(root / "gnt", SynthConfig(chars=CHARS, writers=40, seed=3, style=str(prof)), workers=1, progress=False)
    return convert([str(root / "gnt")], root / "store", ConvertOptions(), workers=1, progress=False).path


def test_calibration_recovers_a_shifted_profile(shifted_store):
    prof = calibrate_store(shifted_store, StyleProfile(), progress=False)
    assert abs(prof.pen_scale / TARGET.pen_scale - 1) < 0.2, prof
    assert abs(prof.ink_base - TARGET.ink_base) < 20, prof
    assert abs(prof.size_mean / TARGET.size_mean - 1) < 0.1, prof
    assert abs(prof.aspect_mu - TARGET.aspect_mu) < 0.08, prof


def test_profile_round_trip_drives_synthesis_deterministically(tmp_path, shifted_store):
    r = run_cli("synth", "--calibrate", shifted_store, "--style-out", tmp_path / "mine.json", "--writers", "8")
    assert r.returncode == 0, r.stderr
    loaded = StyleProfile.load(tmp_path / "mine.json")
    assert loaded.pen_scale > 1.2 and "store" in loaded.source
    for run in ("a", "b"):
        r = run_cli("synth", tmp_path / run, "--chars", CHARS, "--writers", "3", "--seed", "9",
                    "--style", tmp_path / "mine.json")
        assert r.returncode == 0, r.stderr
    a, b = (tmp_path / "a" / "synth0002.gnt").read_bytes(), (tmp_path / "b" / "synth0002.gnt").read_bytes()
    assert a == b  # same seed and profile -> same handwriting
    # ... and the profile is what the writers follow: strokes as heavy as the calibration found.
    imgs, sizes = synthetic_features(list(CHARS), loaded, writers=6, seed=1)
    base, bsizes = synthetic_features(list(CHARS), StyleProfile(), writers=6, seed=1)
    assert np.median(measure(imgs, sizes)["stroke_width"]) > 1.15 * np.median(measure(base, bsizes)["stroke_width"])


def test_compare_prints_the_table_and_draws_the_plot(tmp_path, shifted_store, monkeypatch):
    """Against fresh synthetic writers, and between two stores (with --against, where --plot was silently
    ignored). The domain classifier (a minute of CPU each time; its own test is below) is stood in for: these
    are about the command's output."""
    from typer.testing import CliRunner

    import hccr.data.style as style_mod
    from hccr.cli import app

    monkeypatch.setattr(style_mod, "domain_classifier", lambda a, b, seed=0: 0.5)
    r = CliRunner().invoke(app, ["synth", "--compare", str(shifted_store), "--writers", "10"])
    assert r.exit_code == 0 and "stroke_width" in r.output, r.output  # 40 synthetic images: the table alone
    assert "domain classifier (real vs synthetic): not run, it needs at least 100 images on each side" in r.output
    r = CliRunner().invoke(app, ["synth", "--compare", str(shifted_store), "--writers", "30", "--plot",
                                 str(tmp_path / "h.png")])
    assert r.exit_code == 0, r.output
    for feature in ("stroke_width", "ink", "coverage", "aspect", "size", "slant"):
        assert feature in r.output
    assert "domain classifier (real vs synthetic, held out): 0.500" in r.output
    assert (tmp_path / "h.png").stat().st_size > 1000
    plain = convert([str(shifted_store.parent / "gnt")], tmp_path / "plain", ConvertOptions(size=48), workers=1,
                    progress=False).path
    r = CliRunner().invoke(app, ["synth", "--compare", str(shifted_store), "--against", str(plain), "--plot",
                                 str(tmp_path / "two.png")])
    assert r.exit_code == 0, r.output
    assert "stroke_width" in r.output and "domain classifier (first vs second, held out): 0.500" in r.output
    assert (tmp_path / "two.png").stat().st_size > 1000
    for extra in ([str(tmp_path / "syn")], ["--preview", str(tmp_path / "p.png")]):  # were skipped without a word
        r = CliRunner().invoke(app, ["synth", *extra, "--compare", str(shifted_store), "--writers", "10"])
        assert "--compare writes no handwriting" in str(r.exception), r.output  # one line through hccr's main
    assert not (tmp_path / "syn").exists() and not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON style profile"),
    ('{"pen_scale": 1}', "not an hccr style profile"),
    ('{"format": "hccr-style/1", "pen_scale": -3}', "pen_scale = -3.0 is out of range"),
    ('{"format": "hccr-style/1", "pen": 1}', "unknown style field(s) pen"),
    ('{"format": "hccr-style/1", "proportion": 9}', "proportion = 9.0 is out of range"),
])
def test_bad_profile_is_one_line_naming_the_file(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    r = run_cli("synth", tmp_path / "out", "--chars", "安", "--writers", "1", "--style", bad)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(bad) in r.stderr and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(HccrError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StyleProfile.load(bad)


def test_proportion_scales_the_spread_of_part_proportions():
    from hccr.data.synth import WriterStyle

    def spread(prop: float) -> float:
        rng = np.random.default_rng(0)
        p = StyleProfile(proportion=prop)
        ys = [WriterStyle.sample(rng, p).compress_y for _ in range(400)]
        return float(np.std(np.log(ys)))

    assert spread(0.0) == 0.0  # every writer keeps the stroke data's proportions
    assert spread(1.0) == pytest.approx(0.15, rel=0.15)
    assert spread(2.0) == pytest.approx(2 * spread(1.0), rel=1e-6)  # same draws, twice the spread


def test_simplify_shrinks_short_strokes_and_is_off_by_default():
    from hccr.data.strokes import char_strokes
    from hccr.data.synth import WriterStyle, distort_strokes

    strokes = char_strokes("容")  # the two dots of 宀 and the short strokes of 谷's top
    lengths = np.array([np.hypot(*np.diff(np.asarray(s, float).reshape(-1, 2), axis=0).T).sum() for s in strokes])
    short, long = lengths < 300, lengths > 500

    def extents(simplify: float) -> np.ndarray:  # (seeds, strokes): each stroke's longer side
        style = replace(WriterStyle.sample(np.random.default_rng(0), StyleProfile()), simplify=simplify, wobble=0.0)
        return np.array([[np.ptp(p, axis=0).max() for p in distort_strokes(
            strokes, style, np.random.default_rng(seed), jitter=0.0, speed=0.0)] for seed in range(20)])

    assert short.sum() >= 5 and long.sum() >= 3
    ratio = (extents(0.9) / extents(0.0)).mean(0)
    assert ratio[short].mean() < 0.8  # dots and short strokes shrink ...
    assert ratio[long].mean() > 0.95  # ... long ones do not
    # Off unless a profile asks: the default profile draws the same writers as before the knob existed.
    a = WriterStyle.sample(np.random.default_rng(5), StyleProfile())
    b = WriterStyle.sample(np.random.default_rng(5), StyleProfile(simplify=0.5))
    assert a.simplify == 0.0 and b.simplify > 0 and a.size == b.size and a.warp_phase == b.warp_phase


@pytest.mark.slow
def test_domain_classifier_control_tells_a_heavier_pen_apart():
    # Control: the classifier must see a difference we know is there (pen x1.5, other spreads narrow).
    base = replace(StyleProfile(), pen_sigma=0.03, size_sigma=0.03)
    a, _ = synthetic_features(list("安字家国永宝"), base, writers=120, seed=5)
    b, _ = synthetic_features(list("安字家国永宝"), replace(base, pen_scale=1.5), writers=120, seed=6)
    assert domain_classifier(a, b) >= 0.95
    c, _ = synthetic_features(list("安字家国永宝"), base, writers=120, seed=7)
    assert domain_classifier(a, c) < 0.65  # same style: close to chance
    with pytest.raises(HccrError, match="at least 100 images on each side, got 12"):  # said at once, not after a minute
        domain_classifier(a[:12], c)
