from pathlib import Path

import numpy as np
import pytest

from hccr.data.charset import Charset, gb2312_chars, resolve_charset
from hccr.data.pot import encode_pot_record, iter_pot, parse_pot, read_pot
from hccr.data.render import Pen, PenDraw, render_framed, render_trajectory

# The first 8 records of writer 1001's file in CASIA-OLHWDB1.1 (2.6 KB): CASIA's own byte layout.
REAL_POT = Path(__file__).parent / "data" / "1001-c.pot"


def test_gb2312_sets_come_from_the_codec():
    l1, full = gb2312_chars(True), gb2312_chars()
    assert len(l1) == 3755 and len(full) == 6763
    assert l1[0] == "啊" and full[-1] == "齄" and full[:3755] == l1


def test_charset_file_round_trip(tmp_path):
    cs = resolve_charset("安宁家")
    cs.save(tmp_path / "c.txt")
    back = Charset.load(tmp_path / "c.txt")
    assert back == cs and back.id("宁") == 1
    assert len(resolve_charset("gb2312-1")) == 3755


def test_pot_round_trip_and_render():
    strokes = [np.array([[10, 10], [90, 12]]), np.array([[50, 0], [52, 100], [40, 90]])]
    data = encode_pot_record("十", strokes) + encode_pot_record("A", strokes[:1])
    assert data[2:4] == "十".encode("gb2312")[::-1]  # CASIA's swapped tag
    rec = parse_pot(data, "w.pot")
    assert rec.problems == [] and [s.char for s in rec.samples] == ["十", "A"]
    np.testing.assert_array_equal(rec.samples[0].strokes[1], strokes[1])
    img = render_trajectory(rec.samples[0].strokes, size=48, stroke_width=3)
    assert max(img.shape) <= 50 and img.min() < 50 and img.max() == 255


def test_a_real_casia_pot_file_reads_with_its_labels():
    """A writer's file lists the characters in GB2312 code order from where it starts: 角 is BD C7,
    and the next records are BD C8, BD C9, ... (CASIA stores the two bytes swapped)."""
    rec = read_pot(REAL_POT)
    assert rec.problems == [] and len(rec.samples) == 8 and rec.writer == "1001-c"
    expected = [bytes((0xBD, 0xC7 + i)).decode("gb2312") for i in range(8)]
    assert [s.char for s in rec.samples] == expected == list("角饺缴绞剿教酵轿")
    assert [len(s.strokes) for s in rec.samples][:2] == [6, 8]  # the header's stroke counts agree
    # hccr writes the same layout: a record re-encoded is byte for byte the file's
    raw = REAL_POT.read_bytes()
    again = b"".join(encode_pot_record(s.char, s.strokes) for s in rec.samples)
    assert again == raw
    # hccr.data.iter_pot streams them drawn: dark ink on white, cropped, with the file's labels
    drawn = list(iter_pot(REAL_POT, size=48))
    assert [ch for _, ch, _ in drawn] == expected and {w for _, _, w in drawn} == {"1001-c"}
    assert all(46 <= max(img.shape) <= 48 and img.min() < 140 and img.max() == 255 for img, _, _ in drawn)


def test_pen_draws_real_trajectories_framed_as_prediction_frames_scans():
    from hccr.preprocess import normalize

    s = read_pot(REAL_POT).samples[0]
    pen = Pen()
    img = render_framed(s.strokes, 64, pen)
    assert img.shape == (64, 64) and img.min() < 140  # grey ink, as scans have it
    ink = np.argwhere(img < 200)
    assert ink.min(0).min() <= 2 and ink.max(0).max() >= 61  # the longer side spans the square
    # prediction frames a cropped image the same way: the two agree closely
    assert np.abs(normalize(img, 64).astype(int) - (255 - img.astype(int))).mean() < 8
    heavy = render_framed(s.strokes, 64, Pen(width=6.0))
    assert (heavy < 200).sum() > 1.5 * (img < 200).sum()  # the pen width is what it says
    a, b = (pen.draw([6, 8], "w1") for _ in range(2))
    assert a[0].width == b[0].width and a[0].width != pen.draw([6, 8], "w2")[0].width  # per writer, repeatable


def test_pen_is_round_at_sharp_turns():
    """A thick pen over a zig-zag inks all around each turn, as a round nib does: PIL's wide polylines
    alone leave a notch on the outside of every sharp turn."""
    pts = np.array([[0, 0], [12, 100], [24, 0], [36, 100], [48, 0]], float)
    pen = Pen(press=0, speed=0, taper=0, stroke_spread=0)
    img = render_framed([pts], 64, pen, PenDraw(6.0, 1.0, None))
    scale = (64 - 6.0) / 100  # the framing: the longer side spans the square less the pen
    path = (pts - (pts.min(0) + pts.max(0)) / 2) * scale + 32
    yx = np.stack(np.mgrid[0:64, 0:64], -1).reshape(-1, 2)
    centres = yx[:, ::-1] + 0.5
    a, b = path[:-1], path[1:]  # distance of every pixel centre to the nearest segment
    t = np.clip(((centres[:, None] - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum(-1), 0, 1)
    dist = np.linalg.norm(centres[:, None] - (a + t[..., None] * (b - a)), axis=-1).min(1)
    inked = img.reshape(-1) < 128
    assert inked[dist <= 3.0 - 1.0].all()  # everything well inside the nib's reach is ink (radius 3 px)
    assert not inked[dist >= 3.0 + 1.0].any()  # and nothing beyond it


def test_pot_truncated_is_reported():
    data = encode_pot_record("十", [np.array([[1, 1], [5, 5]])])
    rec = parse_pot(data + data[:9], "w.pot")
    assert len(rec.samples) == 1 and "truncated" in rec.problems[0].message


@pytest.mark.parametrize("content", [b"", bytes(range(100))], ids=["empty", "garbage"])
def test_a_pot_file_without_a_readable_record_is_one_line_not_a_crash(tmp_path, content):
    from conftest import run_cli

    f = tmp_path / "w.pot"
    f.write_bytes(content)
    assert Pen().draw([], "w") == []  # nothing to draw is nothing drawn
    assert parse_pot(content, str(f)).problems  # an empty file is reported, as an empty .gnt is
    assert list(iter_pot(f, on_problem=lambda p: None)) == []
    for args in (["predict", str(f)], ["predict", "--on-error", "skip", str(f)], ["convert", str(f), str(tmp_path / "st")]):
        r = run_cli(*args)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert "w.pot" in r.stderr.strip().splitlines()[-1], r.stderr  # the last line names the file
    assert not (tmp_path / "st").exists() and not (tmp_path / "st.partial").exists()


def test_pot_file_converts_to_a_store(tmp_path):
    from hccr.data.store import ConvertOptions, Store, convert

    data = b"".join(encode_pot_record(ch, [np.array([[0, 0], [100, 5 * k]]), np.array([[50, 0], [50, 100]])])
                    for k, ch in enumerate("十字十字"))
    (tmp_path / "001.pot").write_bytes(data)
    res = convert([str(tmp_path / "001.pot")], tmp_path / "st", ConvertOptions(size=32, pen_width=3),
                  workers=1, progress=False)
    s = Store(res.path)
    assert len(s) == 4 and list(s.charset) == ["十", "字"] and s.writer_names == ["001"]
    assert s.images.max() > 120  # rendered ink (grey, as scans), high after normalisation


def test_pen_spread_varies_the_pen_between_one_writers_samples(tmp_path):
    """--pen-spread: the same character written 40 times by one writer is drawn with pens of clearly
    different widths, where hccr's fitted pen keeps them within a few tenths of a pixel."""
    from hccr.data.store import ConvertOptions, Store, convert

    strokes = [np.array([[0, 0], [100, 0]]), np.array([[50, -50], [50, 50]]), np.array([[0, 40], [100, 40]])]
    (tmp_path / "001.pot").write_bytes(b"".join(encode_pot_record("干", strokes) for _ in range(40)))

    def ink_area_spread(**pen) -> float:
        out = tmp_path / f"st{len(pen)}"
        convert([str(tmp_path / "001.pot")], out, ConvertOptions(size=64, **pen), workers=1, progress=False)
        area = (Store(out).images[:] > 64).sum(axis=(1, 2)).astype(float)
        return float(area.std() / area.mean())

    fitted, wide = ink_area_spread(), ink_area_spread(pen_spread=0.4)
    assert fitted < 0.1 and wide > 2.5 * fitted, (fitted, wide)


def test_jitter_strokes_shifts_turns_and_sizes_each_stroke_by_the_stated_spread():
    """jitter_strokes(A): over many draws a stroke's centre moves with sigma A x the character's longer side,
    its direction with sigma 2A radians and its log-length with sigma 2A; the other stroke is drawn apart."""
    from hccr.data.render import jitter_strokes

    a, rng = 0.04, np.random.default_rng(0)
    strokes = [np.array([[0.0, 0], [100, 0]]), np.array([[50.0, -50], [50, 50]])]  # longer side 100
    moves = [jitter_strokes(strokes, a, rng)[0] for _ in range(4000)]
    centre = np.array([m.mean(0) - [50, 0] for m in moves])
    span = np.array([m[1] - m[0] for m in moves])
    turn = np.arctan2(span[:, 1], span[:, 0])
    grow = np.log(np.hypot(*span.T) / 100)
    assert np.allclose(centre.std(0), a * 100, rtol=0.08) and np.allclose(abs(centre.mean(0)), 0, atol=0.3)
    assert abs(turn.std() - 2 * a) < 0.008 and abs(grow.std() - 2 * a) < 0.008
    assert [len(s) for s in jitter_strokes([np.zeros((0, 2)), np.ones((1, 2))], a, rng)] == [0, 1]
    assert all(np.array_equal(x, y) for x, y in zip(jitter_strokes(strokes, 0.0, rng), strokes, strict=True))


def test_stroke_jitter_moves_strokes_apart_the_same_way_every_time(tmp_path):
    """--stroke-jitter: one writer's 30 identical 十 are drawn 30 different ways (the crossing moves
    along the strokes, which a whole-image warp cannot do), the same ways when converted again, and
    an amount out of range is refused in one line."""
    from hccr.data.store import ConvertOptions, Store, convert
    from hccr.errors import HccrError

    strokes = [np.array([[0, 50], [100, 50]]), np.array([[50, 0], [50, 100]])]
    (tmp_path / "001.pot").write_bytes(b"".join(encode_pot_record("十", strokes) for _ in range(30)))

    def images(name: str, jitter: float) -> np.ndarray:
        convert([str(tmp_path / "001.pot")], tmp_path / name, ConvertOptions(size=64, pen_spread=0, stroke_jitter=jitter),
                workers=1, progress=False)
        return Store(tmp_path / name).images[:].astype(int)

    still, moved, again = images("a", 0.0), images("b", 0.04), images("c", 0.04)
    assert np.array_equal(moved, again)

    def crossing(img: np.ndarray) -> tuple[int, int]:  # the ink's densest row and column
        ink = img > 64
        return int(ink.sum(1).argmax()), int(ink.sum(0).argmax())

    centre = {(r, c) for r in range(30, 34) for c in range(30, 34)}
    assert {crossing(m) for m in still} <= centre  # as written, the strokes cross in the middle every time
    spots = {crossing(m) for m in moved}
    assert len(spots) >= 10 and not spots <= centre
    # a sample's moves do not depend on which other characters --charset keeps
    (tmp_path / "002.pot").write_bytes(b"".join(encode_pot_record(ch, strokes) for ch in "一十" * 15))
    for name, charset in (("all", None), ("ten", "十")):
        convert([str(tmp_path / "002.pot")], tmp_path / name, ConvertOptions(size=64, pen_spread=0, stroke_jitter=0.04,
                charset=charset), workers=1, progress=False)
    every, ten = Store(tmp_path / "all"), Store(tmp_path / "ten")
    assert np.array_equal(every.images[1::2], ten.images[:]) and np.array_equal(every.sizes[1::2], ten.sizes[:])
    with pytest.raises(HccrError, match="--stroke-jitter must be in"):
        convert([str(tmp_path / "001.pot")], tmp_path / "d", ConvertOptions(stroke_jitter=0.5), workers=1,
                progress=False)


def test_device_packs_carry_real_pot_files_losslessly(tmp_path):
    """scripts/pack_for_device.py: what a lent GPU machine unpacks reads as the same samples."""
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "scripts" / "pack_for_device.py"
    pots = tmp_path / "pots"
    pots.mkdir()
    for f in REAL_POT.parent.glob("*.pot"):
        (pots / f.name).write_bytes(f.read_bytes())
    # a stroke with a step too long for one byte takes the escape path
    (pots / "9999-x.pot").write_bytes(encode_pot_record("十", [np.array([[0, 0], [300, -5], [310, 0]]), np.array([[5, 9]])]))
    subprocess.run([sys.executable, str(script), "pack", str(pots), str(tmp_path / "p.xz")], check=True, capture_output=True)
    subprocess.run([sys.executable, str(script), "unpack", str(tmp_path / "p.xz"), "--out", str(tmp_path / "out")],
                   check=True, capture_output=True)
    for f in sorted(pots.glob("*.pot")):
        a, b = read_pot(f), read_pot(tmp_path / "out" / f.name)
        assert [s.char for s in a.samples] == [s.char for s in b.samples] and not b.problems
        for x, y in zip(a.samples, b.samples, strict=True):
            assert all(np.array_equal(p, q) for p, q in zip(x.strokes, y.strokes, strict=True))
