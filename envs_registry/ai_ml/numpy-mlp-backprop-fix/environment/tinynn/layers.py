"""Layers with explicit forward/backward passes.

Conventions (all arrays are float64 numpy arrays):
  * a batch of inputs has shape (N, features);
  * Linear computes y = x @ W + b with W of shape (in_dim, out_dim) and b of shape (out_dim,);
  * backward(grad_out) receives dLoss/dOutput and returns dLoss/dInput; layers with parameters
    also store dLoss/dW and dLoss/db in self.dW and self.db.
"""
import numpy as np


class Linear:
    def __init__(self, in_dim, out_dim, rng):
        scale = np.sqrt(2.0 / in_dim)
        self.W = rng.standard_normal((in_dim, out_dim)) * scale
        self.b = np.zeros(out_dim)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self._x = None

    def forward(self, x):
        self._x = x
        return x @ self.W + self.b

    def backward(self, grad_out):
        self.dW = self._x.T @ grad_out
        self.db = grad_out.sum(axis=0)
        return grad_out @ self.W.T


class ReLU:
    def __init__(self):
        self._out = None

    def forward(self, x):
        self._out = np.maximum(x, 0.0)
        return self._out

    def backward(self, grad_out):
        return grad_out * (self._out >= 0)


class SoftmaxCrossEntropy:
    """Softmax followed by the mean negative log-likelihood over the batch."""

    def __init__(self):
        self._probs = None
        self._labels = None

    def forward(self, logits, labels):
        exp = np.exp(logits)
        self._probs = exp / exp.sum(axis=1, keepdims=True)
        self._labels = labels
        n = logits.shape[0]
        return float(-np.log(self._probs[np.arange(n), labels]).mean())

    def backward(self):
        n = self._probs.shape[0]
        grad = self._probs.copy()
        grad[np.arange(n), self._labels] -= 1.0
        return grad
