"""The writer model learned from real pen trajectories: alignment, fitting, sampling."""

from pathlib import Path

import numpy as np
import pytest

from hccr.data.pot import parse_pot, read_pot
from hccr.data.writers import KINDS, WriterModel, align, collect, fit, median_info, resample_fixed, writer_pot

REAL_POT = Path(__file__).parent / "data" / "1023-c.pot"  # 6 records of a validation writer of CASIA-OLHWDB1.1


def test_real_strokes_align_to_the_medians_joins_and_all():
    """Writer 1023 writes 暑 in 7 strokes where the medians have 12: the alignment finds which
    real stroke covers which medians, in order, and leaves no median and no stroke unexplained."""
    rec = read_pot(REAL_POT)
    by_char = {s.char: s for s in rec.samples}
    s = by_char["暑"]
    info = median_info("暑")
    assert (len(s.strokes), len(info.strokes)) == (7, 12)
    al = align(s.strokes, info)
    covered = [q for j, g, _ in al.match for q in range(j, j + g + 1)]
    assert covered == list(range(12)) and al.dropped == []  # every median once, in writing order
    assert al.status == "joined" and al.cost < 0.12
    assert al.match[0] == (0, 0, False)  # 日's first stroke on its own, forwards
    statuses = [align(x.strokes, median_info(x.char)).status for x in rec.samples]
    assert statuses.count("extra stroke") <= 1
    # a wrong character does not align as well: the cost tells
    assert align(s.strokes, median_info("薯")).cost > al.cost


def test_a_reversed_stroke_is_found():
    info = median_info("十")
    strokes = [s * 1000 for s in info.strokes]
    strokes[0] = strokes[0][::-1].copy()
    al = align(strokes, info)
    assert al.match[0][2] is True and al.match[1][2] is False and al.cost < 0.02


def _known_model(aspect: float, slant: float, join: float) -> WriterModel:
    zero4 = [0.0] * 4
    return WriterModel(global_mean=[0.0, float(np.log(aspect)), slant, 0.0], global_between=[[1e-6 if i == j else 0.0
                       for j in range(4)] for i in range(4)], global_within=[0.005] * 4,
                       local_mean=[[zero4] * 9] * len(KINDS), local_std=[zero4] * len(KINDS),
                       shape_pcs=[[]] * len(KINDS), join_p=[[[join] * 3] * len(KINDS)] * len(KINDS),
                       join_writer_std=0.0, bend_mean=0.0, bend_std=0.05, drop_p=[0.0] * len(KINDS),
                       speed_profile=[1.0] * 10, density=40.0)


def test_fitting_recovers_a_known_writer():
    """Samples drawn from a writer with known aspect, slant and join rate, aligned and fitted: the
    fitted model gives those values back."""
    from hccr.data.charset import gb2312_chars

    chars = list(gb2312_chars(True)[1000:1150])
    truth = _known_model(aspect=0.8, slant=0.2, join=0.3)
    cols = []
    for w in range(2):
        rec = parse_pot(writer_pot(chars, w, 5, truth), f"w{w}.pot")
        assert len(rec.samples) == len(chars) and not rec.problems
        cols.append(collect([(s.char, s.strokes) for s in rec.samples], f"w{w}"))
    got = fit(cols[0] + cols[1])
    log_s, log_a, slant, rot = got.global_mean
    assert abs(np.exp(log_a) - 0.8) < 0.05 and abs(slant - 0.2) < 0.05 and abs(rot) < 0.05
    j = (cols[0] + cols[1]).joins
    assert abs(j[..., 1].sum() / j.sum() - 0.3) < 0.08  # the joins found are the joins made
    # a different writer is told apart: the measurement can fail
    other = _known_model(aspect=1.2, slant=-0.1, join=0.0)
    rec = parse_pot(writer_pot(chars, 0, 5, other), "o.pot")
    got_other = fit(collect([(s.char, s.strokes) for s in rec.samples], "o"))
    assert got_other.global_mean[1] > 0.1 and got_other.global_mean[2] < 0


def test_zeroed_deformations_draw_the_medians_and_the_full_model_does_not():
    truth = _known_model(aspect=0.7, slant=0.3, join=0.9)
    rng = np.random.default_rng(0)
    w = truth.sample_writer(rng)
    info = median_info("永")
    zero = [s / 1000 for s in truth.zeroed().trajectories("永", truth.zeroed().sample_writer(rng), rng)]
    assert len(zero) == len(info.strokes)  # no joins, no drops
    a, b = resample_fixed(zero), resample_fixed(info.strokes)
    assert np.abs((a - a.reshape(-1, 2).mean(0)) - (b - b.reshape(-1, 2).mean(0))).max() < 0.02
    full = truth.trajectories("永", w, rng)
    assert len(full) < len(info.strokes)  # joined
    assert align(full, info).cost > align([s * 1000 for s in zero], info).cost


def test_learned_style_writes_pen_trajectories_that_convert(tmp_path):
    from hccr.data.store import Store, convert
    from hccr.data.synth import SynthConfig, synth

    model = _known_model(aspect=0.9, slant=0.1, join=0.4)
    model.save(tmp_path / "m.json")
    files = synth(tmp_path / "syn", SynthConfig(chars="永安家", writers=2, seed=1, style=str(tmp_path / "m.json")),
                  workers=1, progress=False)
    assert [f.suffix for f in files] == [".pot", ".pot"]
    st = Store(convert([str(tmp_path / "syn")], tmp_path / "st", workers=1, progress=False).path)
    assert len(st) == 6 and "".join(st.charset) == "安家永"
    again = synth(tmp_path / "syn2", SynthConfig(chars="永安家", writers=2, seed=1, style=str(tmp_path / "m.json")),
                  workers=1, progress=False)
    assert files[0].read_bytes() == again[0].read_bytes()  # deterministic for a seed
    # options only the image-drawing writers have are refused, not silently ignored
    from hccr.errors import HccrError

    for opts, what in (({"size": 50.0}, "leave --size out"), ({"fonts": ("k.ttf",)}, "use one or the other")):
        with pytest.raises(HccrError, match=what):
            synth(tmp_path / "syn3", SynthConfig(chars="永", writers=1, style=str(tmp_path / "m.json"), **opts),
                  workers=1, progress=False)


def test_a_bad_writer_model_is_one_line(tmp_path):
    from hccr.errors import HccrError

    (tmp_path / "bad.json").write_text('{"format": "hccr-writer-model/1", "density": 3}')
    with pytest.raises(HccrError, match="missing"):
        WriterModel.load(tmp_path / "bad.json")


def test_the_shipped_writer_model_draws_level_2_characters_nobody_wrote_for_it(tmp_path):
    from hccr.data.store import Store, convert
    from hccr.data.synth import SynthConfig, synth
    from hccr.data.writers import LEARNED, resolve_model

    model = resolve_model("learned")
    assert "210 writers" in model.source  # fitted on the training writers; the validation writers kept out
    files = synth(tmp_path / "syn", SynthConfig(chars="亍丌兀", writers=2, seed=3, style="learned"), workers=1,
                  progress=False)  # level-2 characters: no real writer in hccr's data wrote them
    st = Store(convert([str(tmp_path / "syn")], tmp_path / "st", workers=1, progress=False).path)
    assert len(st) == 6 and st.images.reshape(6, -1).std(1).min() > 10  # ink on every image
    assert LEARNED.stat().st_size < 200_000 and [f.suffix for f in files] == [".pot", ".pot"]
