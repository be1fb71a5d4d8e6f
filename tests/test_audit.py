import json

import numpy as np
import pytest
from conftest import run_cli

from hccr.data.gnt import read_gnt
from hccr.data.store import ConvertOptions, Store, convert
from hccr.data.synth import SynthConfig, synth

CHARS = "永安家察寒宿它守完宏国人大小山川日月水火"


@pytest.fixture(scope="module")
def merged_store(tmp_path_factory):
    """Synthetic handwriting of 20 characters in which every 安 is labelled 永 (two folders merged)."""
    root = tmp_path_factory.mktemp("audit")
    synth(root / "gnt", SynthConfig(chars=CHARS, writers=60, seed=1), workers=1, progress=False)
    store = convert([str(root / "gnt")], root / "store", ConvertOptions(size=64), workers=1, progress=False).path
    st = Store(store)
    labels = np.asarray(st.labels).copy()
    labels[labels == st.charset.index["安"]] = st.charset.index["永"]
    (store / "labels.npy").unlink()
    np.save(store / "labels.npy", labels)
    return store


def test_audit_finds_a_merged_class_and_the_samples_it_holds(merged_store, tmp_path):
    r = run_cli("audit", merged_store, "--model", "gb2312", "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert "class 永 looks like two characters" in r.stdout
    res = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert [c["char"] for c in res["two_character_classes"]] == ["永"]  # and no other class
    assert sorted(res["two_character_classes"][0]["groups"]) == [60, 60]  # split exactly into its two characters
    assert (tmp_path / "a" / "class-永.png").exists()
    # A model that knows 安 reads the 安 samples filed under 永 as what they are.
    wrong = [s for s in res["mislabelled"] if s["label"] == "永"]
    assert len(wrong) >= 50 and all(s["predicted"] == "安" for s in wrong)
    # ... and names where each came from, so the source can be mended: FILE#k, the k-th record of FILE.
    path, k = wrong[0]["source"].rsplit("#", 1)
    assert chr(read_gnt(path).codepoints[int(k)]) == "安"
    assert wrong[0]["source"] in (tmp_path / "a" / "audit.md").read_text()
    assert "## Classes that look like two characters" in (tmp_path / "a" / "audit.md").read_text()


def test_convert_exclude_leaves_out_what_the_audit_listed(merged_store, tmp_path):
    r = run_cli("audit", merged_store, "--model", "gb2312", "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    listed = {s["source"] for s in json.loads((tmp_path / "a" / "audit.json").read_text())["mislabelled"]}
    gnt = merged_store.parent / "gnt"
    r = run_cli("convert", gnt, tmp_path / "clean", "--exclude", tmp_path / "a" / "audit.json")
    assert r.returncode == 0, r.stderr
    assert f"excluded (--exclude): {len(listed)}" in r.stdout
    clean = Store(tmp_path / "clean")
    assert len(clean) == len(Store(merged_store)) - len(listed)
    assert listed.isdisjoint(clean.sample_ids())
    # A list that matches nothing (made from other files) is an error, not a silent no-op.
    (tmp_path / "other.txt").write_text("# checked by hand\n/elsewhere/1.gnt#3\n")
    r = run_cli("convert", gnt, tmp_path / "c2", "--exclude", tmp_path / "other.txt")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--exclude: none of its 1 sample ids" in r.stderr
    r = run_cli("convert", gnt, tmp_path / "c3", "--exclude", tmp_path / "missing.json")
    assert r.returncode != 0 and "missing.json: cannot read the exclude list" in r.stderr
    # an audit that flagged nothing, passed on by a script all the same: nothing left out (it was an error)
    (tmp_path / "none.json").write_text(json.dumps({"mislabelled": []}))
    r = run_cli("convert", gnt, tmp_path / "c4", "--exclude", tmp_path / "none.json")
    assert r.returncode == 0 and "the audit flagged no sample; nothing is excluded" in r.stderr, r.stderr
    assert len(Store(tmp_path / "c4")) == len(Store(merged_store))


def test_audit_with_a_model_leaves_out_characters_it_does_not_know(tmp_path):
    """宬 is not in GB2312: the shipped model cannot read it, so its samples are counted apart, never listed as
    label faults (nor left out by a later convert --exclude)."""
    synth(tmp_path / "gnt", SynthConfig(chars="永安", writers=8, seed=2), workers=1, progress=False)
    store = convert([str(tmp_path / "gnt")], tmp_path / "store", ConvertOptions(size=64), workers=1, progress=False).path
    # no stroke data draws 宬: its samples here are 安's images, relabelled (the model's answer does not matter)
    (store / "charset.txt").write_text((store / "charset.txt").read_text(encoding="utf-8").replace("安", "宬"),
                                       encoding="utf-8")
    r = run_cli("audit", store, "--model", "gb2312", "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert res["unknown_to_model"] == {"samples": 8, "characters": "宬"}
    assert not [s for s in res["mislabelled"] if s["label"] == "宬"]
    assert "does not know (宬)" in (tmp_path / "a" / "audit.md").read_text()


def test_audit_without_a_model_trains_out_of_fold_models_and_still_finds_the_merged_class(merged_store, tmp_path):
    r = run_cli("audit", merged_store, "--folds", "2", "--epochs", "1", "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert "class 永 looks like two characters" in r.stdout  # features of gb2312-synth, which never saw these labels
    assert all((tmp_path / "a" / "folds" / f"model-{k}" / "done").exists() for k in (0, 1))
    res = json.loads((tmp_path / "a" / "audit.json").read_text())
    # one epoch of each fold learns little (the folds' answers are not what this test checks); every sample was
    # answered by the fold that did not train on it
    assert res["source"].startswith("2-fold out-of-fold fast-1") and res["samples"] == len(Store(merged_store))


def test_audit_of_characters_no_shipped_model_knows_is_refused_before_any_training(tmp_path):
    synth(tmp_path / "gnt", SynthConfig(chars="永安", writers=8, seed=2), workers=1, progress=False)
    store = convert([str(tmp_path / "gnt")], tmp_path / "store", ConvertOptions(size=64), workers=1, progress=False).path
    (store / "charset.txt").write_text("AB", encoding="utf-8")  # characters outside GB2312's level 1 and 2
    r = run_cli("audit", store, "--out", tmp_path / "a")
    assert r.returncode != 0 and "knows none of the characters" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "a" / "folds").exists()  # refused before the out-of-fold models trained
