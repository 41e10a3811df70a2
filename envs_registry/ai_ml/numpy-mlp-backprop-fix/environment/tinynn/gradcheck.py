"""Quick numerical gradient check: python3 -m tinynn.gradcheck"""
import numpy as np

from .layers import SoftmaxCrossEntropy
from .model import MLP


def main():
    rng = np.random.default_rng(42)
    model = MLP([2, 8, 8, 3], seed=3)
    x = rng.standard_normal((5, 2))
    y = rng.integers(0, 3, size=5)
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())
    eps = 1e-6
    worst = 0.0
    for name, layer in model.params():
        p = getattr(layer, name)
        analytic = getattr(layer, "d" + name).copy()
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            lp = loss_fn.forward(model.forward(x), y)
            p[idx] = old - eps
            lm = loss_fn.forward(model.forward(x), y)
            p[idx] = old
            numeric[idx] = (lp - lm) / (2 * eps)
        rel = np.abs(analytic - numeric).max() / max(1e-8, np.abs(numeric).max())
        worst = max(worst, rel)
        print(f"{name} {p.shape}: max relative error {rel:.2e}")
    print("OK" if worst < 1e-5 else "GRADIENT CHECK FAILED")


if __name__ == "__main__":
    main()
