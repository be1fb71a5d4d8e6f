"""The recognizer shipped in hccr/assets: what a user gets by naming no model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

import hccr
from hccr.data.charset import gb2312_chars
from hccr.data.synth import SynthConfig, synth, writer_samples
from hccr.errors import HccrError
from hccr.zoo import ASSETS, SHIPPED, shipped_files


@pytest.fixture(scope="module")
def shipped():
    return hccr.load()


def test_asset_files_stay_within_the_size_limits():
    files = [p for p in ASSETS.iterdir() if p.is_file()]
    assert all(p.stat().st_size <= 16 * 2**20 for p in files), [(p.name, p.stat().st_size) for p in files]
    assert sum(p.stat().st_size for p in files) <= 40 * 2**20
    for stem in SHIPPED.values():
        meta = json.loads(stem.with_suffix(".json").read_text())
        text = json.dumps(meta, ensure_ascii=False)
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text  # no absolute paths
        assert meta["weights_dtype"] == "float16" and not meta["model_args"].get("aux", False)  # no auxiliary heads
        assert stem.with_suffix(".onnx").exists()


def test_load_without_arguments_gives_all_of_gb2312(shipped):
    assert len(shipped.charset) == 6763
    assert "".join(shipped.charset) == "".join(gb2312_chars())


@pytest.mark.parametrize("name", list(SHIPPED))
def test_reads_200_gb2312_characters_from_unseen_synthetic_writers(name):
    # 200 characters spread over both levels, each from a writer (seed) that neither shipped model's
    # training used (2312, 4242), drawn by hccr's built-in simulated writers (gb2312-synth's teachers;
    # gb2312's level 2 learnt from real writers' components since its round 4, and still reads them).
    chars = list(gb2312_chars())[::34][:200]
    style = str(ASSETS / "style-builtin.json")
    samples = writer_samples(chars, 0, SynthConfig(chars="".join(chars), writers=1, seed=5150, style=style))
    answers = hccr.load(name).predict([img for img, _ in samples], topk=1)
    top1 = np.mean([a[0][0] == ch for a, (_, ch) in zip(answers, samples, strict=True)])
    assert top1 >= 0.90, top1


def test_every_command_that_takes_a_checkpoint_takes_a_shipped_name(tmp_path, monkeypatch):
    from hccr.checkpoint import resolve

    assert resolve("gb2312") == shipped_files("gb2312")[0] and resolve("gb2312-synth") == shipped_files("gb2312-synth")[0]
    monkeypatch.chdir(tmp_path)
    r = run_cli("export", "gb2312", "--out", "g.onnx", "--crops", "1")  # export, average, package: as predict does
    assert r.returncode == 0 and "note:" not in r.stderr, r.stderr
    assert (tmp_path / "g.onnx").stat().st_size > 10e6
    # the user's own gb2312 (a run folder, or what `average --out gb2312` wrote): the name still means the shipped
    # model in every command, a note says so, and ./gb2312 reaches the user's
    (tmp_path / "gb2312").mkdir()
    (tmp_path / "gb2312" / "best.json").write_text("{}")
    assert resolve("gb2312") == shipped_files("gb2312")[0]
    assert resolve("./gb2312") == Path("gb2312") / "best.json"
    r = run_cli("predict", "g.onnx", "--model", "gb2312")
    assert "note: gb2312 is the shipped model; for the gb2312 here, give ./gb2312" in r.stderr


def test_pytorch_and_onnx_copies_agree():
    from hccr.runtime import load_recognizer

    chars = "永安家学中国人我们的"
    samples = writer_samples(list(chars), 1, SynthConfig(chars=chars, writers=1, seed=77))
    images = [im for im, _ in samples]
    a = load_recognizer("gb2312", backend="onnx").predict_proba(images)
    b = load_recognizer("gb2312", backend="torch").predict_proba(images, 1)
    assert (a.argmax(1) == b.argmax(1)).all() and np.abs(a - b).max() < 5e-3


def test_allowed_characters_restrict_the_answer(shipped):
    img = writer_samples(["天"], 3, SynthConfig(chars="天", writers=1, seed=5))[0][0]
    out = shipped.predict(img, topk=3, allowed="夫天")
    assert {ch for ch, _ in out[0]} <= {"夫", "天"} and abs(sum(p for _, p in out[0]) - 1) < 1e-4
    with pytest.raises(HccrError, match="none of its characters"):
        shipped.predict(img, allowed="ABC")
    assert shipped.predict(img, topk=3, allowed=["夫", "天"]) == out  # a list of characters as well as a string
    for bad in ("5", 0, -1, True):
        with pytest.raises(hccr.HccrError, match="topk must be"):
            shipped.predict(img, topk=bad)
    ens = hccr.Ensemble("gb2312")  # one model named, not its letters
    assert {ch for ch, _ in ens.predict(img, topk=3, allowed="夫天")[0]} <= {"夫", "天"}


def test_cli_predict_charset_answers_only_among_the_allowed_characters(tmp_path):
    """The README's `hccr predict a.png --charset 天夫`: two characters, each with a probability, and the saved
    file sums to 1 over them, also where the model gives the allowed characters almost nothing (float16 underflow)."""
    from PIL import Image

    img = writer_samples(["国"], 2, SynthConfig(chars="国", writers=1, seed=11))[0][0]
    Image.fromarray(img).save(tmp_path / "char.png")
    r = run_cli("predict", tmp_path / "char.png", "--charset", "天夫", "--out", tmp_path / "p.npz")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(str(tmp_path / "char.png")))
    assert "nan" not in line and sorted(line.split()[1::2]) == sorted("天夫"), line
    probs = np.load(tmp_path / "p.npz")["probs"].astype(np.float32)
    assert not np.isnan(probs).any() and abs(probs.sum() - 1) < 1e-3
    # a labelled image of a character outside --charset can never be read right: no top-k counts it
    (tmp_path / "lab" / "国").mkdir(parents=True)
    Image.fromarray(img).save(tmp_path / "lab" / "国" / "0.png")
    r = run_cli("predict", tmp_path / "lab", "--charset", "天夫", "--topk", "1")
    assert r.returncode == 0, r.stderr
    assert "top1 0.0000, top5 0.0000" in r.stdout, r.stdout
    r = run_cli("predict", tmp_path / "char.png", "--charset", "天夫國學")  # two of them not in GB2312: said
    assert r.returncode == 0 and "--charset: 2 of its characters the model does not know, never answered: 國學" \
        in r.stderr, r.stderr


def test_cli_predict_uses_the_shipped_model_when_none_is_named(tmp_path):
    from PIL import Image

    img = writer_samples(["国"], 2, SynthConfig(chars="国", writers=1, seed=11))[0][0]
    Image.fromarray(img).save(tmp_path / "char.png")
    r = run_cli("predict", tmp_path / "char.png", "--topk", "3")
    assert r.returncode == 0, r.stderr
    assert "char.png: 国" in r.stdout
    # the probabilities printed are the ones the Python API answers (a few images are never halved to float16)
    r = run_cli("predict", tmp_path / "char.png", "--topk", "3", "--format", "jsonl")
    printed = [(t["char"], t["prob"]) for t in json.loads(r.stdout.splitlines()[0])["top"]]
    api = hccr.load().predict(np.asarray(Image.open(tmp_path / "char.png")), topk=3)[0]
    assert [c for c, _ in printed] == [c for c, _ in api]
    assert np.allclose([p for _, p in printed], [p for _, p in api], atol=2e-6, rtol=0), (printed, api)
    # five crops with the shipped model: its one-crop ONNX file reads them (the crops cut in numpy) as its PyTorch
    # checkpoint does, to ONNX Runtime's arithmetic (2e-4 to 6e-4 apart at the shipped temperature)
    r = run_cli("predict", tmp_path / "char.png", "--topk", "1", "--crops", "5", "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    five = json.loads(r.stdout.splitlines()[0])["top"][0]
    from hccr.predict import Recognizer
    from hccr.zoo import shipped_files

    ckpt = Recognizer.from_checkpoint(shipped_files("gb2312")[0])
    want = ckpt.predict(np.asarray(Image.open(tmp_path / "char.png")), topk=1, crops=5)[0][0]
    assert five["char"] == want[0] and abs(five["prob"] - want[1]) < 2e-3
    assert abs(five["prob"] - printed[0][1]) > 0.05  # not the one-crop answer (0.61 against 0.96 measured)
    # --topk beyond the 6,763 classes: a CSV whose header is as wide as its rows; --topk 0 named in one line
    r = run_cli("predict", tmp_path / "char.png", "--topk", "100000", "--format", "csv")
    header, row = r.stdout.splitlines()[:2]
    assert header.count(",") == row.count(",") == 2 * 6763
    r = run_cli("predict", tmp_path / "char.png", "--topk", "0")
    assert r.returncode == 2 and r.stderr.strip() == "error: --topk must be at least 1, got 0"


def test_cli_predict_reads_a_real_casia_pot_file_and_reports_its_accuracy():
    """The README's `hccr predict writer.pot`: a few records cut from a real OLHWDB file (writer 1001, one of the
    training writers), their labels read from the file, the accuracy printed."""
    pot = Path(__file__).parent / "data" / "1001-c.pot"
    r = run_cli("predict", pot, "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["file"] for x in rows] == [f"{pot}#{i}" for i in range(8)]
    assert "accuracy on 8 images: top1 " in r.stderr
    top1 = float(r.stderr.split("top1 ")[1].split(",")[0])
    assert top1 >= 7 / 8  # the shipped model reads this training writer's characters


def test_serve_uses_the_shipped_model_when_none_is_named():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from hccr.serve.app import create_app

    with TestClient(create_app()) as client:
        r = client.get("/healthz")
        assert r.status_code == 200 and r.json()["classes"] == 6763 and r.json()["model"] == "gb2312"


def test_model_card_is_generated_from_the_metadata(tmp_path):
    r = run_cli("model-card", "--out", tmp_path / "card.md")
    assert r.returncode == 0, r.stderr
    card = (tmp_path / "card.md").read_text()
    assert "6,763 classes" in card and "Arphic Public License" in card and "unseen synthetic writers" in card
    # the shipped file is a fourth round: every round it continued is named, with its recipe or budget
    assert "continued from `gb2312-r3/run` (4171 steps" in card and "continued from `gb2312` (itself `scripts/" in card
    assert "40 writers drawn from real writers' components" in card  # its level-2's source
    assert "/work/" not in shipped_files("gb2312")[0].read_text()  # no home folders in the shipped metadata
    # the committed card is what the metadata gives today (a stale card misleads; regenerate with hccr model-card)
    assert card == (Path(__file__).parents[1] / "docs" / "model-card.md").read_text()
    assert run_cli("model-card", "-m", "gb2312-synth", "--out", tmp_path / "synth.md").returncode == 0
    assert (tmp_path / "synth.md").read_text() == (Path(__file__).parents[1] / "docs" / "model-card-gb2312-synth.md").read_text()


def test_model_card_from_an_onnx_file_and_by_default_beside_the_user(tmp_path):
    r = run_cli("model-card", "--model", ASSETS / "gb2312.onnx", cwd=tmp_path)  # the .json beside it holds the metadata
    assert r.returncode == 0, r.stderr
    assert "6,763 classes" in (tmp_path / "model-card.md").read_text() and not (tmp_path / "docs").exists()
    r = run_cli("export", ASSETS / "gb2312.onnx", "--out", tmp_path / "x.onnx")
    assert r.returncode == 2 and "already an ONNX file" in r.stderr and "Traceback" not in r.stderr


def test_model_card_counts_each_earlier_round_once():
    """An average of a round and its continuation shares that round's ancestors: the card's training total
    counts every round once, not only the averaged runs (which undercounts) nor each chain in full."""
    from hccr.packaging import lineage_totals

    root = {"recipe": "round 1", "steps": 100, "train_seconds": 10.0, "lr": 1e-3}
    a = {"recipe": "round 2", "total_steps": 30, "train_seconds": 3.0, "lr": 5e-4, "continued_from": root}
    b = {"recipe": "round 3", "total_steps": 20, "train_seconds": 2.0, "lr": 5e-4,
         "continued_from": {**{k: v for k, v in a.items() if k != "total_steps"}, "steps": 30}}
    assert lineage_totals({"averaged": [a, b], "steps": 50}) == (150, 15.0)
    assert lineage_totals({"recipe": "round 2", "steps": 30, "train_seconds": 3.0, "continued_from": root}) == (130, 13.0)
    # an average of that average (a shipped soup, its prior put back) and a round continued from it: each round once
    soup = {"recipe": "soup of 2 and 3", "averaged": [a, b], "steps": 50, "train_seconds": 5.0}
    c = {"recipe": "round 4", "total_steps": 7, "train_seconds": 0.5, "lr": 3e-4,
         "continued_from": {k: v for k, v in soup.items() if k != "averaged"}}
    assert lineage_totals({"averaged": [soup, c]}) == (157, 15.5)
    # in either order, also when the continued round recorded the average it started from without its parts
    assert lineage_totals({"averaged": [c, soup]}) == (157, 15.5)


def test_model_card_names_the_runs_of_an_average_inside_an_average(tmp_path):
    from hccr.packaging import parts_lines, parts_lr

    root = {"model": "gb2312", "recipe": "round 1", "steps": 100, "train_seconds": 10.0, "lr": 1e-3}
    soup = {"recipe": "soup of 2 and 3", "averaged": [{"lr": 5e-4, "continued_from": root}, {"lr": 2e-4}]}
    lines = parts_lines([soup, {"lr": 3e-4, "continued_from": {"model": "gb2312", "recipe": "soup of 2 and 3",
                                                                  "steps": 50, "train_seconds": 5.0}}])
    assert lines[0] == "- run 1 is itself an average of 2 runs (`soup of 2 and 3`):"
    assert lines[1].startswith("  - run 1 continued from `gb2312` (itself `round 1`: 100 steps at lr 0.001")
    assert lines[2] == "- run 2 continued from `gb2312` (itself `soup of 2 and 3`: 50 steps, 5.0 s of training-loop time)"
    assert parts_lr([soup, {"lr": 3e-4}]) == "(0.0005 then 0.0002) then 0.0003"


def test_package_turns_a_run_into_a_shippable_model(tiny_store, tmp_path):
    from hccr.config import apply_overrides, get_preset
    from hccr.packaging import package, store_class_counts
    from hccr.predict import Recognizer
    from hccr.runtime import OnnxRecognizer
    from hccr.train import fit

    cfg = apply_overrides(get_preset("gb2312"), ["image_size=32", "batch_size=32", "steps=6", "warmup_epochs=0",
                                                 "model_args.widths=8,16,16,32"])
    fit(cfg, tiny_store, tmp_path / "run", progress=False)
    j, o = package(tmp_path / "run", tmp_path / "pkg" / "tiny", {"recipe": "test"})
    meta = json.loads(j.read_text())
    assert meta["store"] == "store" and meta["provenance"] == {"recipe": "test"}
    assert "prior_correction" not in meta
    # a user's run: its card claims no synthetic writers, writer split or calibration it does not have
    from hccr.packaging import write_model_card

    card = write_model_card(str(j), tmp_path / "card.md").read_text()
    assert "?" not in card.split("## Training data")[1].split("## Recipe")[0] and "held out whole" not in card
    assert "probabilities are not calibrated" in card and "- ``" not in card
    with pytest.raises(HccrError, match="--crops must be 1 or 5, got 3"):
        package(tmp_path / "run", tmp_path / "bad" / "tiny", crops=3)
    assert not (tmp_path / "bad").exists()  # nothing written that would then be blamed
    counts, _ = store_class_counts(tmp_path / "run")  # --divide-prior reads the run's own store
    assert len(counts) == meta["model_args"]["num_classes"] and sum(counts) > 0
    # a dot in the output's name is part of the name: both files keep it, and the stem finds them again
    jp, op = package(tmp_path / "run", tmp_path / "pkg" / "prior-p0.5", {"recipe": "test"}, class_counts=counts)
    assert (jp.name, op.name) == ("prior-p0.5.json", "prior-p0.5.onnx") and op.exists()
    assert (tmp_path / "pkg" / "prior-p0.5.safetensors").exists()
    assert not any((tmp_path / "pkg" / f"prior-p0{ext}").exists() for ext in (".json", ".onnx", ".safetensors"))
    assert json.loads(jp.read_text())["prior_correction"]["max_count"] == max(counts)
    assert len(Recognizer.from_checkpoint(tmp_path / "pkg" / "prior-p0.5").charset) == meta["model_args"]["num_classes"]
    # a run started from a packaged model with its prior divided out: packaging it with --divide-prior says that the
    # prior is divided a second time; a run started from the unpackaged run does not
    from hccr.packaging import init_prior_note

    for src, name in ((jp, "from-packaged"), (tmp_path / "run", "from-run")):
        fit(apply_overrides(cfg, ["steps=1", f"init={src}"]), tiny_store, tmp_path / name, progress=False)
    res = run_cli("package", tmp_path / "from-packaged", "--out", tmp_path / "pkg" / "twice", "--divide-prior")
    assert res.returncode == 0 and "divided out (power 1); --divide-prior divides again" in res.stdout
    assert init_prior_note(tmp_path / "from-run") is None
    torch_rec, onnx_rec = Recognizer.from_checkpoint(j), OnnxRecognizer(o)
    img = [np.full((40, 30), 255, np.uint8)]
    img[0][5:35, 12:16] = 0
    assert np.abs(torch_rec.predict_proba(img, 1) - onnx_rec.predict_proba(img)).max() < 1e-3
    assert "/" not in "".join(onnx_rec.identity["members"])  # no paths in the ONNX metadata
    # calibrating the packaged checkpoint records the temperature in its ONNX twin as well
    from hccr.packaging import write_temperature
    assert len(write_temperature(j, 2.0, {"images": 1})) == 2
    assert Recognizer.from_checkpoint(j).temperature == OnnxRecognizer(o).temperature == 2.0

    # a run with auxiliary heads (the paper's and the fast presets': the quickstart's models) packages without them
    # and reads as the run did
    fast = apply_overrides(get_preset("fast-1"), ["image_size=32", "batch_size=32", "steps=2", "warmup_epochs=0"])
    fit(fast, tiny_store, tmp_path / "aux", progress=False)
    ja, oa = package(tmp_path / "aux", tmp_path / "pkg" / "aux")
    assert json.loads(ja.read_text())["model_args"]["aux"] is False
    packed, run = Recognizer.from_checkpoint(ja), Recognizer.from_checkpoint(tmp_path / "aux")
    from hccr.checkpoint import load_checkpoint

    assert not len(load_checkpoint(ja)[0].aux_heads) and len(load_checkpoint(tmp_path / "aux")[0].aux_heads)
    assert np.abs(packed.predict_proba(img, 1) - run.predict_proba(img, 1)).max() < 5e-3  # fp16 weights
    assert np.abs(OnnxRecognizer(oa).predict_proba(img, 1) - run.predict_proba(img, 1)).max() < 5e-3

    # a run and its continuation, averaged (`hccr average`), package with both runs' provenance
    from safetensors.torch import load_file

    from hccr.checkpoint import average_checkpoints, save_checkpoint
    from hccr.packaging import run_provenance

    fit(apply_overrides(cfg, [f"init={tmp_path / 'run'}", "steps=4", "seed=5"]), tiny_store, tmp_path / "more",
        progress=False)
    more = run_provenance(tmp_path / "more")  # a further round names the model it started from, and its budget
    assert more["continued_from"]["model"] == f"{tmp_path.name}/run" and more["continued_from"]["steps"] == 6
    # its card names the round it continued and the generator its synthetic writers came from
    from hccr.packaging import write_model_card
    jm, _ = package(tmp_path / "more", tmp_path / "pkg" / "more", {
        **more, "real": "real writers", "synthetic": {"writers": 40, "characters": 6763, "seed": 7,
                                                      "style": "components:bank.npz"},
        "synthetic_more": [{"writers": 30, "characters": 6763, "seed": 8, "style": None}]})
    card = write_model_card(str(jm), tmp_path / "more.md").read_text()
    assert f"continued from `{tmp_path.name}/run` (6 steps at lr" in card
    assert "40 writers drawn from real writers' components" in card
    assert "- and: 30 simulated writers x 6763 characters (seed 8)" in card  # the second generator's writers
    save_checkpoint(tmp_path / "soup", *average_checkpoints([tmp_path / "run", tmp_path / "more"]))
    a, b, avg = (load_file(str(p)) for p in (tmp_path / "run" / "best.safetensors",
                                             tmp_path / "more" / "best.safetensors", tmp_path / "soup.safetensors"))
    key = next(k for k in avg if avg[k].is_floating_point() and not torch.equal(a[k], b[k]))
    assert torch.allclose(avg[key], (a[key] + b[key]) / 2)
    from hccr.checkpoint import resolve
    assert resolve(tmp_path / "soup") == tmp_path / "soup.json"  # the stem `hccr average --out` was given
    with pytest.raises(HccrError, match="no checkpoint there"):
        resolve(tmp_path / "soupe")
    prov = run_provenance(tmp_path / "soup.json", "soup")
    assert len(prov["averaged"]) == 2 and prov["steps"] == 6 + 4
    # parts trained on one store name its synthetic writers once, and their held-out writers carry over
    from hccr.packaging import averaged_provenance
    shared = {"validation": "10 writers held out whole", "synthetic": {"writers": 40, "seed": 7},
              "synthetic_more": [{"writers": 30, "seed": 8}]}
    merged = averaged_provenance([{**shared, "steps": 6}, {**shared, "steps": 4, "synthetic_more": [
        {"writers": 30, "seed": 8}, {"writers": 60, "seed": 9, "characters": 3008}]}])
    assert merged["synthetic"]["writers"] == 40 and [s["seed"] for s in merged["synthetic_more"]] == [8, 9]
    assert merged["validation"] == "10 writers held out whole" and merged["steps"] == 10
    js, _ = package(tmp_path / "soup.json", tmp_path / "pkg" / "soup", prov)
    shipped = json.loads(js.read_text())
    assert "averaged_from" not in shipped  # the parts' absolute paths stay home
    assert shipped["config"]["init"] == "run"  # the continuation's init, made portable
    # a packaged model as a part (e.g. the shipped gb2312 and a run continued from it): its recorded lineage stays
    save_checkpoint(tmp_path / "soup2", *average_checkpoints([jm, tmp_path / "run"]))
    part = run_provenance(tmp_path / "soup2.json")["averaged"][0]
    assert part["continued_from"]["steps"] == 6 and part["synthetic"]["style"] == "components:bank.npz"
    # a part brought back from another machine: its last checkpoint alone, no best.* beside it
    (tmp_path / "copied").mkdir()
    for f in ("last.json", "last.safetensors", "config.json", "metrics.jsonl"):
        shutil.copy(tmp_path / "more" / f, tmp_path / "copied" / f)
    save_checkpoint(tmp_path / "soup2", *average_checkpoints([tmp_path / "run", tmp_path / "copied" / "last.json"]))
    prov2 = run_provenance(tmp_path / "soup2.json", "soup2")
    assert prov2["steps"] == 6 + 4 and prov2["device"] == "cpu"  # both parts ran on the CPU: said once
    with pytest.raises(HccrError, match="arch differs"):
        average_checkpoints([tmp_path / "run", tmp_path / "aux"])


def test_dividing_out_the_class_prior_balances_the_answers():
    import torch

    from hccr.packaging import divide_out_prior

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.randn(16, 1, 2, 2)
    before = torch.softmax(model(x), -1).detach().numpy()
    counts = np.array([300.0, 10.0, 10.0])  # class 0 seen 30x as often, as real images of a few characters
    assert divide_out_prior(model, counts) == 1  # the common classes keep their bias
    after = torch.softmax(model(x), -1).detach().numpy()
    expected = before / (counts / counts.sum())
    assert np.allclose(after, expected / expected.sum(1, keepdims=True), atol=1e-5)
    assert (after[:, 0] < before[:, 0]).all()  # the over-represented class no longer pulls the answers
    with pytest.raises(HccrError, match="classifier layer"):
        divide_out_prior(model, np.ones(5))
    # a power below 1 divides part of the prior out: p / prior**0.5, between the two
    torch.manual_seed(0)
    half = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))  # the same initial weights
    divide_out_prior(half, counts, power=0.5)
    mid = torch.softmax(half(x), -1).detach().numpy()
    expected = before / np.sqrt(counts / counts.sum())
    assert np.allclose(mid, expected / expected.sum(1, keepdims=True), atol=1e-5)
    assert (after[:, 0] < mid[:, 0]).all() and (mid[:, 0] < before[:, 0]).all()
    with pytest.raises(HccrError, match="power"):
        divide_out_prior(half, counts, power=0)
    # undo puts it back: the answers as before the division (a packaged model's bias as training left it)
    assert divide_out_prior(half, counts, power=0.5, undo=True) == 1
    assert np.allclose(torch.softmax(half(x), -1).detach().numpy(), before, atol=1e-6)


def test_evaluate_the_shipped_model_on_casia_gnt_files(tmp_path):
    from hccr.data.synth import synth

    chars = "".join(list(gb2312_chars())[100:6700:330])  # 20 characters of both levels
    synth(tmp_path / "gnt", SynthConfig(chars=chars, writers=2, seed=808), workers=1, progress=False)
    r = run_cli("evaluate", tmp_path / "gnt", "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    top1 = float(r.stdout.split("top-1")[1].split()[0])
    assert top1 >= 0.8 and (tmp_path / "rep" / "report.md").exists()
    assert (tmp_path / "rep" / "predictions.npz").exists()
    # a second evaluation into the same report folder reads its own files, not the first one's
    synth(tmp_path / "gnt2", SynthConfig(chars=chars[:3], writers=1, seed=809), workers=1, progress=False)
    r = run_cli("evaluate", tmp_path / "gnt2", "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert len(np.load(tmp_path / "rep" / "predictions.npz")["labels"]) == 3


def test_provenance_names_every_generator_a_store_was_drawn_from(tmp_path):
    """A store converted from two folders of synthetic writers (scripts/train_gb2312.sh L2=components+builtin)
    gives the model card both: the first folder's writers, then the other's."""
    from hccr.data.store import ConvertOptions, convert
    from hccr.data.synth import synth
    from hccr.packaging import run_provenance

    synth(tmp_path / "synth", SynthConfig(chars="永安", writers=2, seed=1), workers=1, progress=False)
    synth(tmp_path / "synth-builtin", SynthConfig(chars="永安", writers=1, seed=2, prefix="builtin"), workers=1,
          progress=False)
    # a third generator's writers in the first folder, under their own prefix: their settings are kept apart too
    synth(tmp_path / "synth", SynthConfig(chars="永安", writers=1, seed=3, prefix="more"), workers=1, progress=False)
    convert([str(tmp_path / "synth"), str(tmp_path / "synth-builtin")], tmp_path / "store",
            ConvertOptions(size=32), progress=False)
    assert json.loads((tmp_path / "store" / "manifest.json").read_text())["writers"] == 4  # prefixes keep them apart
    from hccr.config import apply_overrides, get_preset
    from hccr.train import fit

    cfg = apply_overrides(get_preset("gb2312"), ["image_size=32", "batch_size=4", "steps=1", "warmup_epochs=0",
                                                 "val_fraction=0", "model_args.widths=8,8,8,8"])
    fit(cfg, tmp_path / "store", tmp_path / "run", progress=False)
    prov = run_provenance(tmp_path / "run")
    assert (prov["synthetic"]["writers"], prov["synthetic"]["seed"]) == (2, 1)
    assert [(s["writers"], s["seed"]) for s in prov["synthetic_more"]] == [(1, 3), (1, 2)]


def test_a_round_remembers_its_starting_model_as_it_was_when_it_began(tiny_store, tmp_path):
    """`INIT=gb2312` means the shipped file of the day: once a later round replaces it, the card of a run
    that started from it must still name the model it really started from (its steps, its recipe)."""
    from hccr.config import apply_overrides, get_preset
    from hccr.packaging import run_provenance
    from hccr.train import fit

    def cfg(*more):  # apply_overrides changes the config it is given
        return apply_overrides(get_preset("gb2312"), ["image_size=32", "batch_size=32", "warmup_epochs=0",
                                                      "model_args.widths=8,8,8,8", *more])

    fit(cfg("steps=3"), tiny_store, tmp_path / "base", progress=False)
    fit(cfg("steps=2", f"init={tmp_path / 'base'}"), tiny_store, tmp_path / "child", progress=False)
    shutil.rmtree(tmp_path / "base")  # the starting model is replaced by another with the same name
    fit(cfg("steps=5"), tiny_store, tmp_path / "base", progress=False)
    assert run_provenance(tmp_path / "child")["continued_from"]["steps"] == 3


def test_calibrate_never_rewrites_the_shipped_model(tmp_path, tiny_store, monkeypatch, capsys):
    """`hccr calibrate DATA` without --model fits and reports, and leaves the package's files as they were."""
    from hccr.cli import SplitChoice, calibrate

    for suffix in (".json", ".onnx", ".safetensors"):
        shutil.copy(ASSETS / f"gb2312{suffix}", tmp_path / f"gb2312{suffix}")
    monkeypatch.setitem(SHIPPED, "gb2312", tmp_path / "gb2312")
    before = {f.name: f.read_bytes() for f in tmp_path.glob("gb2312.*")}
    synth(tmp_path / "gnt", SynthConfig(chars="永安家学中国人我们的", writers=6, seed=3), workers=1, progress=False)
    calibrate([str(tmp_path / "gnt")], model=None, split=SplitChoice.all, write=True)
    assert "not recorded" in capsys.readouterr().out
    assert {f.name: f.read_bytes() for f in tmp_path.glob("gb2312.*")} == before


def test_the_shipped_onnx_file_is_opened_only_when_it_answers(shipped, monkeypatch):
    from hccr import runtime

    # the .json says how many crops its ONNX file reads; load() trusts it, so the two must agree
    own = json.loads(shipped_files("gb2312")[0].read_text())["preprocessing"]["crops"]
    assert isinstance(shipped, runtime.OnnxRecognizer) and shipped.crops == own
    assert own == 1 and isinstance(runtime.load_recognizer("gb2312", crops=5), runtime.OnnxRecognizer)  # 5 in numpy
    # --amp goes to the checkpoint without building an ONNX session first (a second or so thrown away)
    monkeypatch.setattr(runtime, "OnnxRecognizer", lambda *a, **k: pytest.fail("ONNX session built"))
    rec = runtime.load_recognizer("gb2312", amp=True)
    assert not isinstance(rec, type(shipped)) and rec.spec.crops == own


def test_an_average_keeps_no_figure_measured_on_one_of_its_parts(tiny_run, tmp_path):
    """`hccr average` of a packaged model (figures, temperature, prior divided out of its bias) and a plain run: the
    average claims none of the packaged part's figures or temperature, whichever side it is on, and a note says the
    two biases were in different frames; two parts packaged alike keep their shared prior correction."""
    from hccr.utils import read_json, write_json

    shipped = read_json(shipped_files("gb2312")[0])
    (tmp_path / "pkg").mkdir()
    meta = read_json(tiny_run / "best.json")
    meta.update(evaluations=[{"what": "measured on the packaged part", "result": {"top1": 0.99}, "command": "x"}],
                calibration=shipped["calibration"], prior_correction=shipped["prior_correction"],
                provenance={"recipe": "the packaged part's"}, weights_dtype="float16")
    write_json(tmp_path / "pkg" / "best.json", meta)
    shutil.copy(tiny_run / "best.safetensors", tmp_path / "pkg" / "best.safetensors")
    for order, name in (((tmp_path / "pkg", tiny_run), "a"), ((tiny_run, tmp_path / "pkg"), "b")):
        r = run_cli("average", *order, "--out", tmp_path / name)
        assert r.returncode == 0, r.stderr
        assert "had the training class prior divided out" in r.stderr and str(tmp_path / "pkg") in r.stderr
        avg = read_json(tmp_path / f"{name}.json")
        assert not {"evaluations", "calibration", "prior_correction", "provenance", "weights_dtype"} & set(avg), sorted(avg)
    r = run_cli("average", tmp_path / "pkg", tmp_path / "pkg", "--out", tmp_path / "c")
    assert r.returncode == 0 and "note:" not in r.stderr, r.stderr
    assert read_json(tmp_path / "c.json")["prior_correction"] == shipped["prior_correction"]
    # both divided, but not alike (another power): dropped, and said
    shutil.copytree(tmp_path / "pkg", tmp_path / "pkg2")
    write_json(tmp_path / "pkg2" / "best.json", {**meta, "prior_correction": {**shipped["prior_correction"], "power": 0.25}})
    r = run_cli("average", tmp_path / "pkg", tmp_path / "pkg2", "--out", tmp_path / "d")
    assert "prior_correction" not in read_json(tmp_path / "d.json") and "not alike" in r.stderr, r.stderr


def test_the_card_of_a_users_run_on_their_own_images_says_what_it_validated_on(tmp_path):
    """A run on a user's own scans (no synthetic writers, no --real-data): its card called them "unseen synthetic
    writers" and, with --real-data, said the last checkpoint was shipped where package ships the best."""
    from hccr.data.synth import SynthConfig, writer_samples

    for w in range(10):  # a folder of "scans" as a user has them: <char>/<n>.png, no record of any simulation
        for img, ch in writer_samples("一十口人", w, SynthConfig(chars="一十口人", seed=5)):
            (tmp_path / "scans" / ch).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(tmp_path / "scans" / ch / f"{w}.png")
    assert run_cli("convert", tmp_path / "scans", tmp_path / "s.store", "--size", "32", "--val-fraction", "0.2",
                   ).returncode == 0
    r = run_cli("train", "--data", tmp_path / "s.store", "--out", tmp_path / "run", "--set", "steps=2",
                "--set", "image_size=32", "--set", "amp_probe=false")
    assert r.returncode == 0, r.stderr[-1500:]
    for extra in ([], ["--real-data", "my scans"]):
        stem = tmp_path / f"pk{len(extra)}"
        assert run_cli("package", tmp_path / "run", "--out", stem, *extra).returncode == 0
        assert run_cli("model-card", "--model", f"{stem}.json", "--out", tmp_path / "card.md").returncode == 0
        card = (tmp_path / "card.md").read_text()
        assert "unseen synthetic writers" not in card and "mostly synthetic" not in card, card
        assert "last checkpoint" not in card, card
        assert "8 samples of its store's validation split; the checkpoint that read them best" in card, card
        assert "- its validation samples, 4-way: top-1" in card, card
    assert run_cli("average", tmp_path / "run", tmp_path / "run", "--out", tmp_path / "avg").returncode == 0
    assert run_cli("model-card", "--model", tmp_path / "avg.json", "--out", tmp_path / "card.md").returncode == 0
    assert "read them best" not in (tmp_path / "card.md").read_text()  # an average is no checkpoint chosen by them
    # a packaged (calibrated) model at the stem is not replaced by accident, as package refuses it too
    r = run_cli("average", tmp_path / "run", tmp_path / "run", "--out", tmp_path / "pk0")
    assert r.returncode == 2 and "a model is already there; --overwrite replaces it" in r.stderr
    r = run_cli("average", tmp_path / "run", tmp_path / "run", "--out", tmp_path / "pk0", "--overwrite")
    assert r.returncode == 0 and not (tmp_path / "pk0.onnx").exists()  # the old export no longer answers for it
