import struct
import zipfile

import numpy as np
import pytest
from conftest import random_samples, run_cli

from hccr.data.gnt import encode_record, iter_gnt, parse_gnt, read_gnt, write_gnt
from hccr.errors import HccrError


def test_round_trip_with_one_byte_symbols(tmp_path):
    samples = random_samples(60)
    path = tmp_path / "1001-c.gnt"
    assert write_gnt(path, samples) == 60
    rec = read_gnt(path)
    assert rec.problems == []
    assert rec.writer == "1001-c"
    assert len(rec) == 60
    for (img, ch), (img2, ch2) in zip(samples, rec, strict=True):
        assert ch2 == ch
        np.testing.assert_array_equal(img2, img)
    assert {"A", "1", "%"} <= set(rec.chars)
    # The one-byte symbol is stored as its byte followed by NUL.
    assert encode_record(np.zeros((1, 1), np.uint8), "A")[4:6] == b"A\x00"


def test_writer_is_byte_identical(tmp_path):
    samples = random_samples(30, seed=3)
    a, b = tmp_path / "a.gnt", tmp_path / "b.gnt"
    write_gnt(a, samples)
    write_gnt(b, read_gnt(a))
    assert a.read_bytes() == b.read_bytes()
    # Hand-built record: size, GBK tag, W, H, bitmap.
    img = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert encode_record(img, "安") == struct.pack("<I", 16) + "安".encode("gbk") + struct.pack("<HH", 3, 2) + img.tobytes()


def test_folder_tree_and_zip(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    write_gnt(tmp_path / "d" / "001-f.gnt", random_samples(5, 1))
    write_gnt(tmp_path / "d" / "sub" / "002-f.gnt", random_samples(7, 2))
    with zipfile.ZipFile(tmp_path / "d" / "x.zip", "w") as zf:
        zf.writestr("HWDB/003-f.gnt", b"".join(encode_record(i, c) for i, c in random_samples(4, 3)))
    got = list(iter_gnt(tmp_path / "d"))
    assert len(got) == 16
    assert [w for _, _, w in got].count("003-f") == 4
    assert len(list(iter_gnt(tmp_path / "d" / "x.zip"))) == 4


def _records(n=4):
    return [encode_record(img, ch) for img, ch in random_samples(n, 5)]


def test_truncated_record_keeps_the_good_ones():
    recs = _records()
    data = b"".join(recs)[:-7]
    rec = parse_gnt(data, "w.gnt")
    assert len(rec) == 3
    (p,) = rec.problems
    assert "truncated" in p.message and f"offset {sum(map(len, recs[:3]))}" in str(p)


def test_the_streaming_reader_says_a_damaged_record_unless_told_where_to_put_it(tmp_path):
    (tmp_path / "w.gnt").write_bytes(b"".join(_records())[:-7])
    with pytest.raises(HccrError, match="truncated"):  # as iter_pot does; it once dropped the record silently
        list(iter_gnt(tmp_path / "w.gnt"))
    seen = []
    assert len(list(iter_gnt(tmp_path / "w.gnt", on_problem=seen.append))) == 3 and len(seen) == 1


def test_size_disagreeing_with_dims():
    recs = _records()
    bad = bytearray(recs[1])
    bad[6:8] = struct.pack("<H", int.from_bytes(bad[6:8], "little") + 1)  # W + 1, size unchanged
    rec = parse_gnt(b"".join([recs[0], bytes(bad), *recs[2:]]), "w.gnt")
    assert len(rec) == 3
    assert "disagrees with 10 + W*H" in rec.problems[0].message
    assert f"record at offset {len(recs[0])}" in str(rec.problems[0])


def test_zero_width_and_bad_tag():
    zero = struct.pack("<I", 10) + "安".encode("gbk") + struct.pack("<HH", 0, 5)
    badtag = struct.pack("<I", 11) + b"\xff\xff" + struct.pack("<HH", 1, 1) + b"\x00"
    rec = parse_gnt(zero + badtag + _records(1)[0], "w.gnt")
    assert len(rec) == 1
    msgs = [p.message for p in rec.problems]
    assert any("zero width or height" in m for m in msgs)
    assert any("undecodable tag code 0xFFFF" in m for m in msgs)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(HccrError, match="no such file"):
        read_gnt(tmp_path / "nope.gnt")


def test_cli_error_is_one_line_without_traceback(tmp_path):
    r = run_cli("convert", tmp_path / "nope.gnt", tmp_path / "out")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.gnt'}: no such file or folder"]


def test_a_record_with_a_wrong_size_costs_only_itself():
    recs = _records()
    bad = bytearray(recs[1])
    bad[0:4] = struct.pack("<I", 7_000_000)  # the size field of record 1 is garbage
    rec = parse_gnt(b"".join([recs[0], bytes(bad), *recs[2:]]), "w.gnt")
    assert len(rec) == len(recs) - 1  # every record after the bad one is still read
    assert "skipped" in rec.problems[0].message and rec.problems[0].where.endswith(str(len(recs[0])))
