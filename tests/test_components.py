"""The component bank: real writers' strokes of written characters lent to characters nobody wrote."""

import numpy as np
import pytest

from hccr.data.components import ComponentBank, build_bank
from hccr.data.writers import (
    KINDS,
    WriterModel,
    affine_fit,
    decompose,
    median_info,
    resample_fixed,
    writer_pot,
)


def _writer(slant: float, join: float = 0.0) -> WriterModel:
    """A simulated writer with a known slant: the medians, sheared, joined at rate ``join``."""
    zero4 = [0.0] * 4
    return WriterModel(global_mean=[0.0, 0.0, slant, 0.0], global_between=[[1e-8 if i == j else 0.0 for j in range(4)]
                       for i in range(4)], global_within=[1e-4] * 4, local_mean=[[zero4] * 9] * len(KINDS),
                       local_std=[zero4] * len(KINDS), shape_pcs=[[]] * len(KINDS),
                       join_p=[[[join] * 3] * len(KINDS)] * len(KINDS), join_writer_std=0.0, bend_mean=0.0,
                       bend_std=0.0, drop_p=[0.0] * len(KINDS), speed_profile=[1.0] * 10, density=40.0)


# 说 = 讠 + 兑 and 准 = 冫 + 隹: between them, every component of 谁 (讠 + 隹), which no one wrote.
WRITTEN = "说准永十木口"


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    d = tmp_path_factory.mktemp("pots")
    for w, slant in enumerate((0.0, 0.35)):
        for copy in range(3):  # a source run is lent only with a few clean samples
            (d / f"{w}{copy}.pot").write_bytes(writer_pot(list(WRITTEN), copy, 7 + w, _writer(slant)))
    return build_bank(sorted(str(p) for p in d.glob("*.pot")), workers=1, progress=False)


def _slant(strokes: list[np.ndarray], ch: str) -> float:
    got = resample_fixed([s / 1000 for s in strokes]).reshape(-1, 2)
    med = resample_fixed(median_info(ch).strokes).reshape(-1, 2)
    return float(decompose(affine_fit(med, got)[:, :2])[2])


def test_a_character_nobody_wrote_is_cut_into_the_components_of_those_written(bank):
    runs = bank.segment("谁")
    assert [(j, k) for j, k, _ in runs] == [(0, 2), (2, 8)]  # 讠 then 隹, each whole
    assert {chr(c) for c, _ in runs[0][2]} <= set("说") and {chr(c) for c, _ in runs[1][2]} == {"准"}
    assert all(j == 2 for _, j in runs[1][2])  # 隹 starts at 准's third stroke
    # a written character never borrows from itself
    assert all(chr(c) != "说" for _, _, cands in bank.segment("说") for c, _ in cands)


def test_cuts_made_ahead_equal_those_made_when_drawing(bank):
    ahead = ComponentBank(writers=bank.writers, char=bank.char, writer=bank.writer, affine=bank.affine,
                          cover=bank.cover, n_strokes=bank.n_strokes, n_points=bank.n_points, points=bank.points)
    ahead.prepare("谁说准永木")  # what `hccr synth` does before its drawing workers fork
    assert set(ahead._cuts) == set("谁说准永木")
    for ch in "谁说准永木":
        mine, theirs = ahead._cuts[ch], bank.segment(ch)
        assert [(j, k) for j, k, _ in mine] == [(j, k) for j, k, _ in theirs]
        assert all(np.array_equal(a, b) for (_, _, a), (_, _, b) in zip(mine, theirs, strict=True))


def test_lent_strokes_land_on_the_characters_medians_in_the_lending_writers_hand(bank):
    """Known answer: writer 0 writes upright, writer 1 with slant 0.35; 谁 drawn from their
    components keeps every median in place and the lending writer's slant."""
    rng = np.random.default_rng(0)
    w0 = bank.writers.index("00")
    w1 = bank.writers.index("10")
    upright = bank.trajectories("谁", {"writer": w0}, rng)
    slanted = bank.trajectories("谁", {"writer": w1}, rng)
    assert len(upright) == len(median_info("谁").strokes) == 10
    assert abs(_slant(upright, "谁")) < 0.03 and abs(_slant(slanted, "谁") - 0.35) < 0.05
    got = resample_fixed([s / 1000 for s in upright])
    med = resample_fixed(median_info("谁").strokes)
    assert np.abs((got - got.reshape(-1, 2).mean(0)) - (med - med.reshape(-1, 2).mean(0))).max() < 0.03


def test_component_style_writes_pot_files_that_convert_and_a_bad_bank_is_one_line(bank, tmp_path):
    from hccr.data.store import Store, convert
    from hccr.data.synth import SynthConfig, synth
    from hccr.errors import HccrError

    bank.save(tmp_path / "bank.npz")
    style = f"components:{tmp_path / 'bank.npz'}"
    files = synth(tmp_path / "syn", SynthConfig(chars="谁说", writers=2, seed=1, style=style), workers=1, progress=False)
    st = Store(convert([str(tmp_path / "syn")], tmp_path / "st", workers=1, progress=False).path)
    assert [f.suffix for f in files] == [".pot", ".pot"] and len(st) == 4
    assert st.images.reshape(4, -1).std(1).min() > 10  # ink on every image
    (tmp_path / "bad.npz").write_bytes(b"not a bank")
    with pytest.raises(HccrError, match="bad.npz: cannot read the component bank"):
        ComponentBank.load(tmp_path / "bad.npz")
