"""Recognising without PyTorch: the shipped model, .onnx files, prediction files and the server."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

# Run the CLI (or a snippet) in a Python where `import torch` and `import safetensors` fail.
NO_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['safetensors'] = None; "


def _cli_without_torch(*args: str) -> subprocess.CompletedProcess:
    code = NO_TORCH + "from hccr.cli import main; sys.argv = ['hccr', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cross_png(tmp_path_factory) -> Path:
    img = np.full((60, 60), 255, np.uint8)
    img[10:50, 28:32] = 0
    img[28:32, 10:50] = 0
    path = tmp_path_factory.mktemp("img") / "ten.png"
    Image.fromarray(img).save(path)
    return path


def test_cli_recognises_with_the_shipped_model_and_onnx_files_without_torch(cross_png, tmp_path):
    r = _cli_without_torch("predict", cross_png, "--topk", "3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(":", 1)[1].split()[0] == "十"
    r = _cli_without_torch("predict", "--model", ROOT / "hccr" / "assets" / "gb2312.onnx", cross_png,
                           "--out", tmp_path / "p.npz")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "p.npz")["probs"].shape == (1, 6763)
    assert "p.npz: 1 sample x 6763 classes" in r.stdout  # one image is counted as one


def test_a_pytorch_checkpoint_without_torch_says_what_to_install(tiny_run, cross_png):
    r = _cli_without_torch("predict", "--model", tiny_run, cross_png)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tiny_run) in r.stderr and "pip install 'hccr[train]'" in r.stderr and "hccr export" in r.stderr


def test_options_that_need_the_checkpoint_say_so_without_torch(cross_png):
    r = _cli_without_torch("predict", cross_png, "--crops", "5")  # the shipped one-crop ONNX file reads five too
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(":", 1)[1].split()[0] == "十"
    r = _cli_without_torch("predict", cross_png, "--crops", "5", "--amp")  # bf16 runs the checkpoint
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--amp runs its PyTorch checkpoint" in r.stderr and "pip install 'hccr[train]'" in r.stderr
    r = _cli_without_torch("predict", "--model", ROOT / "hccr" / "assets" / "gb2312.onnx", cross_png, "--amp")
    assert r.returncode == 2 and "--amp" in r.stderr and "float32" in r.stderr  # not silently ignored


def test_training_side_commands_without_torch_say_which_extra_to_install(tiny_run, tmp_path):
    for args in (["model-card", "--out", tmp_path / "card.md"], ["export", tiny_run, "--out", tmp_path / "m.onnx"],
                 ["quickstart", "--tiny", "--out", tmp_path / "q"]):
        r = _cli_without_torch(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1] == "error: this command needs torch, which is not installed: pip " \
                                                    "install 'hccr[train]'"
    # nothing written: quickstart used to write 41 MB of synthetic data before it found torch missing
    assert not (tmp_path / "card.md").exists() and not (tmp_path / "m.onnx").exists() and not (tmp_path / "q").exists()


def test_a_device_without_torch_is_named_and_a_typo_caught():
    code = NO_TORCH + "import hccr\nprint(type(hccr.load(device='cpu:0')).__name__)"  # torch's name for the CPU
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "OnnxRecognizer", r.stderr
    for device, said in (("gpu", "device 'gpu': not a device name hccr runs on (cpu, cuda"), (0, "device 'cuda:0': a GPU runs"),
                         ("cuda", "device 'cuda': a GPU runs a model's PyTorch checkpoint, which needs torch")):
        code = NO_TORCH + f"import hccr\ntry: hccr.load(device={device!r})\nexcept hccr.HccrError as e: print(e)"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and said in r.stdout and "hccr export" not in r.stdout, (device, r.stdout, r.stderr)


def test_evaluate_without_matplotlib_writes_the_report_and_says_how_to_get_the_plots(tmp_path):
    from hccr.runtime import Predictions

    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    Predictions(probs, "十一", np.array([0, 1, 1]), np.array(["a", "b", "c"]), "test", {}).save(tmp_path / "p.npz")
    code = NO_TORCH + "sys.modules['matplotlib'] = None; from hccr.cli import main; sys.argv = ['hccr', *sys.argv[1:]]; main()"
    r = subprocess.run([sys.executable, "-c", code, "evaluate", str(tmp_path / "p.npz"), "--out", str(tmp_path / "rep")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "top-1 0.6667  top-5 n/a" in r.stdout  # two classes: no top-5 to print, not nan
    report = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "| p | 0.6667 | n/a | n/a |" in report and "pip install 'hccr[plot]'" in report
    assert (tmp_path / "rep" / "per_class.csv").exists() and not (tmp_path / "rep" / "confusion.png").exists()


def test_python_api_and_server_without_torch(cross_png):
    code = NO_TORCH + (
        "import hccr, json\n"
        "rec = hccr.load()\n"
        f"print(rec.predict({str(cross_png)!r}, topk=1)[0][0][0])\n"
        "from fastapi.testclient import TestClient\n"
        "from hccr.serve.app import create_app\n"
        "c = TestClient(create_app(None))\n"
        f"r = c.post('/v1/recognize', files={{'file': open({str(cross_png)!r}, 'rb')}})\n"
        "print(r.status_code, r.json()['candidates'][0]['char'])\n"
        "print('torch' in sys.modules and sys.modules['torch'] is not None)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["十", "200", "十", "False"]


@pytest.mark.slow
def test_pip_install_without_extras_recognises_and_installs_no_torch(cross_png, tmp_path):
    """A fresh virtual environment, `pip install hccr` from this checkout (dependencies from PyPI)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", str(ROOT)], capture_output=True,
                         text=True, timeout=900, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if pip.returncode and ("NewConnectionError" in pip.stderr or "Could not fetch" in pip.stderr):
        pytest.skip(f"no package index reachable: {pip.stderr.strip().splitlines()[-1]}")
    assert pip.returncode == 0, pip.stderr
    has_torch = subprocess.run([venv / "bin" / "python", "-c", "import torch"], capture_output=True)
    assert has_torch.returncode != 0  # recognising pulled no PyTorch
    r = subprocess.run([venv / "bin" / "hccr", "predict", cross_png], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(":", 1)[1].split()[0] == "十"


def test_recognising_runs_with_torch_blocked():
    """The runtime, the Python API and the shipped-model registry import and predict with the shipped
    ONNX model while ``import torch`` fails."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of torch now raises ImportError\n"
        "import hccr.runtime, hccr.api, hccr.zoo\n"
        "import numpy as np\n"
        "img = np.full((80, 80), 255, np.uint8)\n"
        "img[38:43, 8:72] = 0\n"
        "rec = hccr.api.load()\n"
        "print(type(rec).__name__, rec.predict(img)[0][0][0])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["OnnxRecognizer", "一"]


def test_the_runtime_side_never_imports_the_training_side():
    """No import circle: runtime, api and zoo import nothing that needs torch, at any depth of the
    package's own imports (function-level imports included)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "hccr"

    def imports(module: str) -> set[str]:
        path = root.joinpath(*module.split(".")[1:])
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = set()
        pkg = module.rsplit(".", 1)[0] if not path.name == "__init__.py" else module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.rsplit(".", node.level - 1)[0] if node.level > 1 else pkg
                target = f"{base}.{node.module}" if node.module else base
                found |= {target} | {f"{target}.{a.name}" for a in node.names
                                     if root.joinpath(*f"{target}.{a.name}".split(".")[1:]).with_suffix(".py").exists()}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("hccr")}
        return {m for m in found if root.joinpath(*m.split(".")[1:]).with_suffix(".py").exists()
                or root.joinpath(*m.split(".")[1:]).is_dir()}

    seen, todo = set(), ["hccr.runtime", "hccr.api", "hccr.zoo"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += sorted(imports(m))
    training_side = {"hccr.predict", "hccr.packaging", "hccr.export", "hccr.checkpoint", "hccr.train", "hccr.augment"}
    assert not seen & training_side, sorted(seen & training_side)
    assert "hccr.runtime" not in imports("hccr.zoo")  # the registry stands alone


def test_python_dash_m_hccr_is_the_hccr_command():
    """`python -m hccr` (and `torchrun -m hccr`), the form users type first: "No module named hccr.__main__"."""
    r = subprocess.run([sys.executable, "-m", "hccr", "predict", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--charset" in r.stdout, r.stderr
