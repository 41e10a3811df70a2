import hashlib
import re
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, "/app")

from tinynn import MLP, SGD, Linear, ReLU, SoftmaxCrossEntropy  # noqa: E402


def ref_loss(logits, labels):
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    return float((lse - logits[np.arange(len(labels)), labels]).mean())


def test_relu_backward_masks_inactive_units():
    relu = ReLU()
    x = np.array([[-2.0, 0.5, 0.0, 3.0], [1.0, -0.1, -4.0, 2.0]])
    relu.forward(x)
    g = relu.backward(np.ones_like(x) * 2.0)
    assert np.array_equal(g, np.array([[0.0, 2.0, 0.0, 2.0], [2.0, 0.0, 0.0, 2.0]]))


def test_softmax_cross_entropy_large_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 999.0, 1000.0], [3.0, 1.0, 0.2], [0.0, 0.0, 0.0]])
    labels = np.array([0, 1, 2, 1])
    ce = SoftmaxCrossEntropy()
    with np.errstate(over="raise", invalid="raise"):
        loss = ce.forward(logits.copy(), labels)
    assert np.isfinite(loss)
    assert abs(loss - ref_loss(logits, labels)) < 1e-9
    grad = ce.backward()
    m = logits.max(axis=1, keepdims=True)
    p = np.exp(logits - m)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(4), labels] -= 1.0
    assert np.allclose(grad, p / 4.0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_gradients_match_finite_differences(seed):
    rng = np.random.default_rng(100 + seed)
    model = MLP([3, 7, 5, 4], seed=seed)
    x = rng.standard_normal((6, 3)) * 1.5
    y = rng.integers(0, 4, size=6)
    ce = SoftmaxCrossEntropy()
    ce.forward(model.forward(x), y)
    gin = model.backward(ce.backward())
    eps = 1e-6
    for layer in model.linear_layers():
        for name in ("W", "b"):
            p = getattr(layer, name)
            analytic = getattr(layer, "d" + name).copy()
            numeric = np.zeros_like(p)
            for idx in np.ndindex(p.shape):
                old = p[idx]
                p[idx] = old + eps
                lp = ref_loss(model.forward(x), y)
                p[idx] = old - eps
                lm = ref_loss(model.forward(x), y)
                p[idx] = old
                numeric[idx] = (lp - lm) / (2 * eps)
            err = np.abs(analytic - numeric).max() / max(1e-8, np.abs(numeric).max())
            assert err < 1e-6, (name, p.shape, err)
    # gradient w.r.t. the input as well
    num_in = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        lp = ref_loss(model.forward(x), y)
        x[idx] = old - eps
        lm = ref_loss(model.forward(x), y)
        x[idx] = old
        num_in[idx] = (lp - lm) / (2 * eps)
    assert np.abs(gin - num_in).max() / np.abs(num_in).max() < 1e-6


def test_sgd_matches_documented_update():
    rng = np.random.default_rng(5)
    layer = Linear(3, 2, rng)
    w = layer.W.copy()
    b = layer.b.copy()
    vw = np.zeros_like(w)
    vb = np.zeros_like(b)
    opt = SGD([("W", layer), ("b", layer)], lr=0.1, momentum=0.8, weight_decay=0.05)
    for _ in range(4):
        gw = rng.standard_normal(w.shape)
        gb = rng.standard_normal(b.shape)
        layer.dW = gw.copy()
        layer.db = gb.copy()
        opt.step()
        vw = 0.8 * vw + gw + 0.05 * w
        vb = 0.8 * vb + gb + 0.05 * b
        w = w - 0.1 * vw
        b = b - 0.1 * vb
        assert np.allclose(layer.W, w, atol=1e-12)
        assert np.allclose(layer.b, b, atol=1e-12)


def load_test():
    data = np.loadtxt("/app/data/test.csv", delimiter=",", skiprows=1)
    return data[:, :2], data[:, 2].astype(int)


def test_saved_model_accuracy():
    state = np.load("/app/model.npz")
    assert sorted(state.files) == ["W0", "W1", "W2", "b0", "b1", "b2"]
    assert state["W0"].shape == (2, 64) and state["W2"].shape == (64, 3)
    x, y = load_test()
    h = np.maximum(x @ state["W0"] + state["b0"], 0)
    h = np.maximum(h @ state["W1"] + state["b1"], 0)
    pred = (h @ state["W2"] + state["b2"]).argmax(axis=1)
    assert (pred == y).mean() >= 0.95


def test_training_script_learns():
    out = subprocess.run([sys.executable, "-m", "tinynn.train", "--epochs", "40", "--out", "/tmp/check_model.npz"],
                         cwd="/app", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "nan" not in out.stdout.lower()
    acc = float(re.search(r"test_acc\s+([0-9.]+)", out.stdout).group(1))
    assert acc >= 0.9, out.stdout


def test_data_unchanged():
    digests = {name: hashlib.sha256(open(f"/app/data/{name}", "rb").read()).hexdigest()
               for name in ("train.csv", "test.csv")}
    assert digests == {
        "train.csv": "13541d30d3ca27dfdd3752d8314e752391815e35ff1a53c3b5d28aee442ae4c4",
        "test.csv": "56fa40b27622d68805f8e306e16462bda7021f1daa8145f36d582859f2459e06",
    }
