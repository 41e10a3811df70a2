"""Train the spiral classifier: python3 -m tinynn.train [--epochs N] [--out /app/model.npz]"""
import argparse

import numpy as np

from .layers import SoftmaxCrossEntropy
from .model import MLP
from .optim import SGD


def load(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :2], data[:, 2].astype(int)


def accuracy(model, x, y):
    return float((model.predict(x) == y).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", default="/app/data/train.csv")
    ap.add_argument("--test", default="/app/data/test.csv")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--out", default="/app/model.npz")
    args = ap.parse_args()

    x_train, y_train = load(args.train)
    x_test, y_test = load(args.test)
    model = MLP([2, 64, 64, 3], seed=0)
    loss_fn = SoftmaxCrossEntropy()
    opt = SGD(model.params(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(1)
    n = len(x_train)
    for epoch in range(1, args.epochs + 1):
        x_train = x_train[rng.permutation(n)]
        y_train = y_train[rng.permutation(n)]
        total = 0.0
        for start in range(0, n, args.batch_size):
            xb = x_train[start:start + args.batch_size]
            yb = y_train[start:start + args.batch_size]
            loss = loss_fn.forward(model.forward(xb), yb)
            model.backward(loss_fn.backward())
            opt.step()
            total += loss * len(xb)
        if epoch % 25 == 0 or epoch == 1:
            print(f"epoch {epoch:4d}  loss {total / n:.4f}  train_acc {accuracy(model, x_train, y_train):.3f}")
    print(f"test_acc {accuracy(model, x_test, y_test):.4f}")
    np.savez(args.out, **model.state_dict())


if __name__ == "__main__":
    main()
