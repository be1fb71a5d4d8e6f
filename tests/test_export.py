import numpy as np
import pytest
from conftest import run_cli

pytest.importorskip("onnxruntime")

from hccr.api import Ensemble, load  # noqa: E402
from hccr.data.store import Store  # noqa: E402
from hccr.errors import HccrError  # noqa: E402
from hccr.export import export_onnx  # noqa: E402
from hccr.runtime import OnnxRecognizer  # noqa: E402


def _images(store, n=24):
    s = Store(store)
    return [255 - s.images[i] for i in range(0, len(s), max(1, len(s) // n))][:n]


def test_single_model_parity(tiny_run, tiny_store, tmp_path):
    path = export_onnx([str(tiny_run)], tmp_path / "m.onnx")
    onnx_rec, torch_rec = OnnxRecognizer(path), load(tiny_run)
    imgs = _images(tiny_store)
    a, b = onnx_rec.predict_proba(imgs), torch_rec.predict_proba(imgs, crops=5)
    assert np.abs(a - b).max() <= 1e-4
    assert (a.argmax(1) == b.argmax(1)).all()
    assert list(onnx_rec.charset) == list(torch_rec.charset)
    one = export_onnx([str(tiny_run)], tmp_path / "m1.onnx", crops=1)
    assert np.abs(OnnxRecognizer(one).predict_proba(imgs) - torch_rec.predict_proba(imgs, crops=1)).max() <= 1e-4
    with pytest.raises(HccrError, match="exported with 5 crop"):
        onnx_rec.predict_proba(imgs, crops=1)


def _head_changed(run, out, change) -> str:
    """``run``'s network saved to ``out`` after ``change(classifier)`` (its last linear layer, under no_grad)."""
    import torch

    from hccr.checkpoint import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(run)
    with torch.no_grad():
        change([m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1])
    return str(save_checkpoint(out, model, meta))


def _variant(run, out, seed: int) -> str:
    """``run``'s network with its classifier bias moved at random: a member that answers differently."""
    import torch

    return _head_changed(run, out, lambda head: head.bias.add_(
        torch.randn(head.bias.shape, generator=torch.Generator().manual_seed(seed)) * 2))


def test_a_one_crop_graph_reads_five_crops_as_a_five_crop_graph_does(tiny_run, tiny_store, tmp_path):
    # the tiny model made surer of itself: its crops answer further apart
    sure = _head_changed(tiny_run, tmp_path / "sure", lambda head: head.weight.mul_(40))
    one = OnnxRecognizer(export_onnx([sure], tmp_path / "one.onnx", crops=1))
    imgs = _images(tiny_store)
    five, graph5, torch5 = (one.predict_proba(imgs, crops=5), OnnxRecognizer(export_onnx([sure], tmp_path / "five.onnx")
                            ).predict_proba(imgs), load(sure).predict_proba(imgs, crops=5))
    assert np.abs(five - graph5).max() <= 1e-5 and np.abs(five - torch5).max() <= 1e-4  # no torch needed for it
    assert np.abs(five - one.predict_proba(imgs)).max() > 2e-4  # and five crops are not one (2e-3 measured)


def test_ensemble_graph_parity_and_batch_axis(tiny_run, tiny_store, tmp_path):
    members = [str(tiny_run), _variant(tiny_run, tmp_path / "b", 1), _variant(tiny_run, tmp_path / "c", 2)]
    path = export_onnx(members, tmp_path / "ens.onnx", weights=[0.3, 0.2, 0.5])
    imgs = _images(tiny_store)
    each = [load(m).predict_proba(imgs, crops=5) for m in members]
    ref = 0.3 * each[0] + 0.2 * each[1] + 0.5 * each[2]  # the paper's weighted average, member by member
    assert np.abs(Ensemble(members, weights=(0.3, 0.2, 0.5)).predict_proba(imgs) - ref).max() <= 1e-5
    assert np.abs(ref - sum(each) / 3).max() > 0.01  # the members differ: the weights matter
    rec = OnnxRecognizer(path)
    for batch in (1, 7, 24):  # dynamic batch size
        got = rec.predict_proba(imgs, batch_size=batch)
        assert np.abs(got - ref).max() <= 1e-4 and (got.argmax(1) == ref.argmax(1)).all()
    assert rec.identity["weights"] == pytest.approx([0.3, 0.2, 0.5])
    one = OnnxRecognizer(export_onnx(members, tmp_path / "ens1.onnx", weights=[0.3, 0.2, 0.5], crops=1))
    with pytest.raises(HccrError, match=r"ens1.onnx: exported with 1 crop\(s\) and 3 members; export it again"):
        one.predict_proba(imgs, crops=5)  # its members' answers are mixed inside: crops cannot be averaged outside


def test_cli_export_and_predict_with_onnx(tiny_run, tiny_store, tmp_path):
    r = run_cli("export", tiny_run, "--out", tmp_path / "m.onnx", "--int8")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.int8.onnx").exists()
    r = run_cli("predict", tmp_path / "m.int8.onnx", tiny_store, "--out", tmp_path / "q.npz")
    assert r.returncode == 0 and "accuracy on " in r.stdout, r.stderr  # the int8 copy loads as hccr wrote it
    r = run_cli("predict", tmp_path / "m.onnx", tiny_store, "--out", tmp_path / "p.npz")
    assert r.returncode == 0, r.stderr
    assert "accuracy on " in r.stdout and "top1" in r.stdout
    from hccr.runtime import Predictions

    full, int8 = Predictions.load(tmp_path / "p.npz"), Predictions.load(tmp_path / "q.npz")
    # the int8 copy answers as the float one does: probabilities within 0.01 (3e-4 measured), and the same top-1
    # wherever the float copy's is not a near-tie (the tiny test model is unsure of most images)
    p, q = full.probs.astype(np.float32), int8.probs.astype(np.float32)
    top2 = np.sort(p, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.02
    assert np.abs(p - q).max() < 0.01 and (p.argmax(1) == q.argmax(1))[clear].all()
    r = run_cli("predict", tmp_path / "nope.onnx", tiny_store)
    assert r.returncode != 0 and "no such ONNX file" in r.stderr and "Traceback" not in r.stderr
