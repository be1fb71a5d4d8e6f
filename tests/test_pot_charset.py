import numpy as np

from hccr.data.charset import Charset, gb2312_chars, resolve_charset
from hccr.data.pot import encode_pot_record, parse_pot
from hccr.data.render import render_trajectory


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
    rec = parse_pot(data, "w.pot")
    assert rec.problems == [] and [s.char for s in rec.samples] == ["十", "A"]
    np.testing.assert_array_equal(rec.samples[0].strokes[1], strokes[1])
    img = render_trajectory(rec.samples[0].strokes, size=48, stroke_width=3)
    assert max(img.shape) <= 50 and img.min() < 50 and img.max() == 255


def test_pot_truncated_is_reported():
    data = encode_pot_record("十", [np.array([[1, 1], [5, 5]])])
    rec = parse_pot(data + data[:9], "w.pot")
    assert len(rec.samples) == 1 and "truncated" in rec.problems[0].message


def test_pot_file_converts_to_a_store(tmp_path):
    from hccr.data.store import ConvertOptions, Store, convert

    data = b"".join(encode_pot_record(ch, [np.array([[0, 0], [100, 5 * k]]), np.array([[50, 0], [50, 100]])])
                    for k, ch in enumerate("十字十字"))
    (tmp_path / "001.pot").write_bytes(data)
    res = convert([str(tmp_path / "001.pot")], tmp_path / "st", ConvertOptions(size=32, stroke_width=3),
                  workers=1, progress=False)
    s = Store(res.path)
    assert len(s) == 4 and list(s.charset) == ["十", "字"] and s.writer_names == ["001"]
    assert s.images.max() > 200  # rendered ink, high after normalisation
