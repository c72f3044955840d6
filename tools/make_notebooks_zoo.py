"""Write the model-zoo notebooks (03 CNN on Fashion-MNIST, 04 residual connections,
05 attention and Transformers, 06 a tour of the zoo, 07 VAE and GAN on Fashion-MNIST).

    python tools/make_notebooks_zoo.py

The notebooks are saved WITHOUT outputs: CI executes them, so what a reader sees is
always what the current code does. Each runs in well under a minute on two cores: tiny
subsets of the embedded Fashion-MNIST sample and few steps. Edit the cells here, not in
the .ipynb files.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str):
    return new_code_cell(text.strip())


LOAD_FASHION = """
import numpy as np
import matplotlib.pyplot as plt
import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F
from tinynn import models
from tinynn.datasets import embedded_fashion_mnist
from tinynn.optim import Adam

tn.manual_seed(0)
train_set = embedded_fashion_mnist(train=True)     # the sample bundled with tinynn: 10,000 / 2,000 images
test_set = embedded_fashion_mnist(train=False)
CLASSES = train_set.classes

def as_batch(dataset, n):
    \"\"\"The first n images as an N×1×28×28 float tensor in [0, 1] and their labels.\"\"\"
    images = np.asarray(dataset.data[:n], dtype=np.float32)[:, None] / 255.0
    return tn.from_numpy(images), tn.from_numpy(np.asarray(dataset.targets[:n], dtype=np.int64))
"""

# ----------------------------------------------------------------------------------------- 03
CNN_FASHION_MNIST = [
    md("""
# 03 · A convolutional network on Fashion-MNIST

An MLP sees an image as 784 unrelated numbers. A convolutional network slides small
filters over it, so the same detector (an edge, a corner) is used everywhere, and pools
to become tolerant of small shifts. Here we train **LeNet-5** (LeCun et al., 1998) and an
MLP of similar size on the same small subset, look inside the CNN, and test what the
convolution buys: robustness to an image moved by a few pixels.

To keep this notebook fast we use 1,000 training images and two epochs (40 steps), so the
accuracies are modest; with so little training the MLP may even be ahead on plain accuracy.
"""),
    code(LOAD_FASHION + """
x_train, y_train = as_batch(train_set, 1000)
x_test, y_test = as_batch(test_set, 500)
mean, std = 0.2860, 0.3530                        # Fashion-MNIST's pixel statistics
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
fig, axes = plt.subplots(1, 8, figsize=(10, 1.6))
for ax, image, label in zip(axes, x_train.numpy()[:8, 0], y_train.numpy()[:8]):
    ax.imshow(image, cmap="gray"); ax.set_title(CLASSES[label], fontsize=7); ax.axis("off")
"""),
    md("""
## Two models

`models.lenet5()` is conv(6@5×5, pad 2) → pool → conv(16@5×5) → pool → 120 → 84 → 10.
`models.mlp` flattens the image first. Count the parameters: the CNN has far fewer, because
a 5×5 filter has 25 weights however large the image is.
"""),
    code("""
cnn = models.lenet5(num_classes=10)
mlp = models.mlp(784, hidden_sizes=(64, 32), num_classes=10)
for name, model in [("LeNet-5", cnn), ("MLP", mlp)]:
    print(f"{name:8s} {models.count_parameters(model):7,d} parameters")
print(cnn)
"""),
    code("""
def train(model, epochs=2, batch_size=50, lr=5e-3):
    opt = Adam(model.parameters(), lr=lr)
    losses = []
    n = x_train.shape[0]
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(n)
        model.train()
        for start in range(0, n, batch_size):
            idx = tn.from_numpy(order[start:start + batch_size])
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses

def accuracy(model, x, y):
    model.eval()
    with tn.no_grad():
        return float((model(x).argmax(-1).numpy() == y.numpy()).mean())

curves = {name: train(model) for name, model in [("LeNet-5", cnn), ("MLP", mlp)]}
for name, model in [("LeNet-5", cnn), ("MLP", mlp)]:
    print(f"{name:8s} test accuracy on 500 images: {accuracy(model, x_test, y_test):.3f}")
plt.figure(figsize=(6, 3))
for name, losses in curves.items():
    plt.plot(losses, label=name)
plt.xlabel("step"); plt.ylabel("training loss"); plt.legend(); plt.title("Two epochs on 1,000 images");
"""),
    md("""
## Move the images: what weight sharing buys

Shift every test image 3 pixels to the right. For the MLP, each pixel now feeds different
weights than during training; the CNN's filters find the same patterns one position over,
and pooling absorbs part of the move.
"""),
    code("""
shifted = tn.from_numpy(np.roll(x_test.numpy(), 3, axis=3))
for name, model in [("LeNet-5", cnn), ("MLP", mlp)]:
    original, moved = accuracy(model, x_test, y_test), accuracy(model, shifted, y_test)
    print(f"{name:8s} accuracy {original:.3f} -> {moved:.3f} when shifted (relative drop {1 - moved / original:.0%})")
"""),
    md("""
## What the first layer learned

Each of the six 5×5 filters of `features.0` is a small template; its **feature map** shows
where in the image the template matches.
"""),
    code("""
filters = cnn.features[0].weight.numpy()[:, 0]
with tn.no_grad():
    maps = F.relu(cnn.features[0](x_test[:1])).numpy()[0]
fig, axes = plt.subplots(2, 6, figsize=(9, 3))
for i in range(6):
    axes[0, i].imshow(filters[i], cmap="bwr"); axes[0, i].axis("off"); axes[0, i].set_title(f"filter {i}", fontsize=8)
    axes[1, i].imshow(maps[i], cmap="viridis"); axes[1, i].axis("off")
"""),
    md("""
## Where it goes wrong: the confusion matrix

Rows are true classes, columns predictions. Shirts, T-shirts, pullovers and coats are the
usual confusions, with this little training more so.
"""),
    code("""
cnn.eval()
with tn.no_grad():
    predicted = cnn(x_test).argmax(-1).numpy()
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (y_test.numpy(), predicted), 1)
plt.figure(figsize=(4.5, 4.5))
plt.imshow(confusion, cmap="Blues")
plt.xticks(range(10), CLASSES, rotation=90, fontsize=7); plt.yticks(range(10), CLASSES, fontsize=7)
plt.xlabel("predicted"); plt.ylabel("true");
"""),
    md("""
**Try:** `models.lenet5(activation="tanh", pool="avg")` is LeCun's original; more epochs
or the full 10,000-image sample close most of the gap to published numbers (≈ 90 %).
"""),
]

# ----------------------------------------------------------------------------------------- 04
RESIDUAL = [
    md("""
# 04 · Residual connections

Stack many layers and training gets *harder*, not easier: the gradient that reaches the
first layers is a product of many Jacobians and tends to vanish. He et al. (2015) fixed this
with a skip: a block computes `y = x + F(x)`. Then `∂y/∂x = I + ∂F/∂x`, so the gradient
always has a path that multiplies by the identity.

We build a deep plain network and the same network with skips (`models.Residual`),
look at the gradient each layer receives, and train both for a few steps.
"""),
    code(LOAD_FASHION + """
from tinynn import viz

x_train, y_train = as_batch(train_set, 1000)
x_train = (x_train - 0.2860) / 0.3530
DEPTH, WIDTH = 20, 32

def block():
    return nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.Tanh())

def deep_net(residual: bool):
    tn.manual_seed(0)
    body = [models.Residual(block()) if residual else block() for _ in range(DEPTH)]
    return nn.Sequential(nn.Flatten(), nn.Linear(784, WIDTH), *body, nn.Linear(WIDTH, 10))

plain, resnet = deep_net(False), deep_net(True)
"""),
    md("""
## The graph of one residual block

`viz.make_dot` draws the autograd graph; the skip is the edge from `x` straight to the `Add`
node, around the `Addmm` (the Linear layer) and the `Tanh`. (Paste the text into any Graphviz viewer, or call
`viz.render_dot(text, "graph.svg")` when Graphviz is installed.)
"""),
    code("""
tiny = models.Residual(nn.Sequential(nn.Linear(3, 3), nn.Tanh()))
x = tn.randn(2, 3, requires_grad=True)       # requires_grad so the input appears in the graph
out = tiny(x).sum()
out.backward()
print(viz.make_dot(out, {"x": x, **dict(tiny.named_parameters())}))
"""),
    md("""
## Gradient flow at initialisation

One backward pass through each network, then the mean |gradient| of every weight matrix,
from input (left) to output (right).
"""),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
for ax, (name, net) in zip(axes, [("plain", plain), ("residual", resnet)]):
    net.zero_grad()
    F.cross_entropy(net(x_train[:200]), y_train[:200]).backward()
    viz.plot_grad_flow(net.named_parameters(), ax=ax)
    ax.set_title(f"{name}: gradient per layer")
    ax.set_xticklabels([])
first = lambda net: np.abs(net[1].weight.grad.numpy()).mean()
print(f"mean |grad| of the first layer: plain {first(plain):.2e}, residual {first(resnet):.2e}")
"""),
    md("""
## Training both

Same data, same optimiser, same number of steps.
"""),
    code("""
def train(net, steps=60, batch_size=100):
    opt = Adam(net.parameters(), lr=1e-3)
    losses = []
    for step in range(steps):
        start = (step * batch_size) % x_train.shape[0]
        loss = F.cross_entropy(net(x_train[start:start + batch_size]), y_train[start:start + batch_size])
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    return losses

plt.figure(figsize=(6, 3))
for name, net in [("plain", plain), ("residual", resnet)]:
    plt.plot(train(net), label=f"{DEPTH} tanh layers, {name}")
plt.xlabel("step"); plt.ylabel("training loss"); plt.legend();
"""),
    md("""
## In the zoo

`models.BasicBlock` is the same idea with convolutions and BatchNorm:
`relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, where the shortcut is the identity, or a
1×1 convolution when the block changes the shape. `models.resnet18_cifar()` stacks eight of them.
`models.DenseBlock` goes further and *concatenates* every earlier output (DenseNet).
"""),
    code("""
block = models.BasicBlock(16, 16)
x = tn.randn(2, 16, 8, 8)
print("BasicBlock keeps the shape:", tuple(block(x).shape))
dense = models.DenseBlock(in_channels=16, growth_rate=8, num_layers=3)
print("DenseBlock adds 3 × 8 channels:", tuple(dense(x).shape))
"""),
]

# ----------------------------------------------------------------------------------------- 05
ATTENTION = [
    md("""
# 05 · Attention and the Transformer

Attention lets every position of a sequence look at every other and take a weighted
average of what it finds:

$$\\mathrm{Attention}(Q, K, V) = \\mathrm{softmax}\\left(\\frac{QK^\\top}{\\sqrt{d}} + M\\right) V$$

where `M` is a mask (−∞ where looking is forbidden). We compute it by hand, check it against
`tinynn.models.MultiheadAttention`, look at positional encodings, and train a small
encoder–decoder Transformer to reverse sequences.
"""),
    code("""
import math
import numpy as np
import matplotlib.pyplot as plt
import tinynn as tn
import tinynn.nn.functional as F
from tinynn import models, viz
from tinynn.optim import Adam

tn.manual_seed(0)
T, d = 5, 8
q, k, v = tn.randn(1, T, d), tn.randn(1, T, d), tn.randn(1, T, d)
scores = q @ k.transpose(-2, -1) / math.sqrt(d)
look_ahead = models.generate_square_subsequent_mask(T)      # True above the diagonal: the future
weights = tn.softmax(scores.masked_fill(look_ahead, float("-inf")), -1)
by_hand = weights @ v
print("each row sums to 1:", np.allclose(weights.numpy().sum(-1), 1))
viz.plot_attention(weights, title="causal attention: row i sees keys ≤ i");
"""),
    md("""
`MultiheadAttention` projects the input into `nhead` sets of queries, keys and values (its
`in_proj_weight` stacks $W_Q$, $W_K$, $W_V$ as in PyTorch), attends in each head and mixes the
heads with `out_proj`. With one head and identity projections it is exactly the formula above.
"""),
    code("""
attention = models.MultiheadAttention(d, num_heads=1)
with tn.no_grad():
    attention.in_proj_weight.data[...] = np.concatenate([np.eye(d)] * 3).astype(np.float32)
    attention.out_proj.weight.data[...] = np.eye(d, dtype=np.float32)
x = tn.randn(1, T, d)
out, w = attention(x, x, x, attn_mask=look_ahead, need_weights=True)
manual = tn.softmax((x @ x.transpose(-2, -1) / math.sqrt(d)).masked_fill(look_ahead, float("-inf")), -1) @ x
print("same as by hand:", np.allclose(out.numpy(), manual.numpy(), atol=1e-5))
"""),
    md("""
## Where is each token?

Attention by itself is blind to order. The original Transformer *adds* sines and cosines of
geometrically spaced frequencies to the embeddings; RoPE instead rotates queries and keys so
that $q\\cdot k$ depends only on the offset between positions; ALiBi adds $-m\\,|i-j|$ to the scores.
All three are options of the models here (`positional="sinusoidal" | "learned" | "rope" | "alibi"`).
"""),
    code("""
table = models.sinusoidal_table(64, 32)
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
axes[0].imshow(table.T, aspect="auto", cmap="RdBu"); axes[0].set_xlabel("position"); axes[0].set_ylabel("channel")
axes[0].set_title("sinusoidal encoding")
axes[1].imshow(models.alibi_bias(4, 12, 12)[0], cmap="viridis"); axes[1].set_title("ALiBi bias, head 0");
"""),
    md("""
## An encoder–decoder learns to reverse

Source `3 7 5 9 4` → target `4 9 5 7 3`. The decoder is fed the target shifted right
(starting with BOS) under the look-ahead mask — *teacher forcing* — and learns to predict
the next token. We train for a few hundred steps on random sequences (about half a minute).
"""),
    code("""
PAD, BOS, EOS, VOCAB, LENGTH = 0, 1, 2, 10, 5
rng = np.random.default_rng(0)

def batch(n):
    src = rng.integers(3, VOCAB, (n, LENGTH))
    rev = src[:, ::-1]
    tgt_in = np.concatenate([np.full((n, 1), BOS), rev], 1)
    tgt_out = np.concatenate([rev, np.full((n, 1), EOS)], 1)
    return tn.from_numpy(src), tn.from_numpy(tgt_in), tn.from_numpy(tgt_out)

model = models.Seq2SeqTransformer(VOCAB, VOCAB, d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                                  dim_feedforward=64, dropout=0.0, max_len=16, norm_first=True)
opt = Adam(model.parameters(), lr=3e-3)
losses = []
for step in range(250):
    src, tgt_in, tgt_out = batch(32)
    loss = F.cross_entropy(model(src, tgt_in).reshape(-1, VOCAB), tgt_out.reshape(-1))
    opt.zero_grad(); loss.backward(); opt.step()
    losses.append(loss.item())
plt.figure(figsize=(5, 2.5)); plt.plot(losses); plt.xlabel("step"); plt.ylabel("loss");
"""),
    md("""
## Decoding: greedy and beam search

Greedy decoding takes the most likely token at each step. Beam search keeps the `beam_size`
best partial sequences by total log-probability; it can recover when the best first token
is not the start of the best sequence.
"""),
    code("""
model.eval()
src, _, tgt_out = batch(200)
greedy = model.greedy_decode(src, max_len=LENGTH + 1).numpy()
print(f"token accuracy (greedy): {(greedy[:, :LENGTH] == tgt_out.numpy()[:, :LENGTH]).mean():.3f}")
example = src[:3]
for s, g, b in zip(example.numpy(), model.greedy_decode(example, LENGTH + 1).numpy(),
                   model.beam_search(example, beam_size=3, max_len=LENGTH + 1)):
    print("source", s, "| greedy", g, "| beam", b)
"""),
    md("""
## What the decoder looks at

The cross-attention of the last decoder layer: to write output position *i*, a model that
reverses should look at source position `LENGTH - 1 - i`, an anti-diagonal.
"""),
    code("""
src, tgt_in, _ = batch(1)
with tn.no_grad():
    model(src, tgt_in)
cross = model.decoder.layers[-1].multihead_attn.last_attention_weights.numpy()[0].mean(0)
viz.plot_attention(cross, x_labels=[str(t) for t in src.numpy()[0]],
                   y_labels=["BOS"] + [str(t) for t in tgt_in.numpy()[0, 1:]], title="cross-attention (mean of heads)");
"""),
]

# ----------------------------------------------------------------------------------------- 06
ZOO_TOUR = [
    md("""
# 06 · A tour of the zoo

`tinynn.models` holds the classic architectures with torchvision's names, structures and
`state_dict` keys, so weights move between the two by `load_state_dict`. Each also has a
`small_input=True` form for 28×28 / 32×32 images. Below: their sizes, the ideas they
introduced, and the reusable *patterns* (ensembles, early exit, multi-task) and compression
tools (int8 quantization, distillation).
"""),
    code("""
import numpy as np
import matplotlib.pyplot as plt
import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F
from tinynn import models
from tinynn.compress import distillation_loss, evaluate_quantization
from tinynn.datasets import embedded_fashion_mnist
from tinynn.optim import Adam

tn.manual_seed(0)
"""),
    md("""
## Small-input forms: the same families, sized for Fashion-MNIST

(The ImageNet forms have torchvision's exact parameter counts — resnet18 11,689,512,
vgg16 138,357,544, mobilenet_v2 3,504,872 … — the tests check them; building vgg16 takes
a few seconds, so we stay small here.)
"""),
    code("""
zoo = {
    "lenet5 (1998)": models.lenet5(),
    "alexnet (2012): ReLU, dropout": models.alexnet(10, in_channels=1, small_input=True),
    "vgg11 (2014): stacked 3×3": models.vgg11(10, in_channels=1, small_input=True),
    "googlenet (2014): inception": models.googlenet(10, in_channels=1, small_input=True),
    "resnet18 (2015): skips": models.resnet18(10, in_channels=1, small_input=True),
    "densenet (2016): concatenation": models.densenet_cifar(10, in_channels=1, growth_rate=8, block_config=(2, 2, 2)),
    "mobilenet_v2 (2018): depthwise": models.mobilenet_v2(10, width_mult=0.5, in_channels=1, small_input=True),
}
x = tn.randn(1, 1, 28, 28)
for name, model in zoo.items():
    model.eval()
    with tn.no_grad():
        out = model(x)
    print(f"{name:34s} {models.count_parameters(model):>11,d} parameters, output {tuple(out.shape)}")
"""),
    md("""
## torchvision keys

The ImageNet-sized ResNet-18's `state_dict` keys are torchvision's, in torchvision's order:
"""),
    code("""
keys = list(models.resnet18().state_dict())
print(len(keys), "entries;", keys[:6], "...", keys[-2:])
"""),
    md("""
## Patterns: train three small models, then combine them

We train three MLPs on different slices of a Fashion-MNIST subset, then
* **ensemble** them (average the probabilities, or majority vote),
* build an **early-exit** classifier that answers from a cheap first stage when confident,
* **distil** the ensemble into one small student, and
* **quantize** a model's weights to int8 and measure what that costs.
"""),
    code("""
train_set, test_set = embedded_fashion_mnist(True), embedded_fashion_mnist(False)
def as_batch(ds, start, n):
    x = np.asarray(ds.data[start:start + n], dtype=np.float32).reshape(n, -1) / 255.0
    return tn.from_numpy((x - 0.286) / 0.353), tn.from_numpy(np.asarray(ds.targets[start:start + n], dtype=np.int64))
x_test, y_test = as_batch(test_set, 0, 1000)

def fit(model, x, y, steps=150, lr=2e-3, loss_fn=None):
    opt = Adam(model.parameters(), lr=lr)
    for step in range(steps):
        i = tn.from_numpy(np.random.default_rng(step).integers(0, x.shape[0], 64))
        loss = loss_fn(model, x[i], y[i]) if loss_fn else F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad(); loss.backward(); opt.step()
    return model

def accuracy(predictions, y=y_test):
    return float((predictions.numpy() == y.numpy()).mean())

members = []
for k in range(3):
    x, y = as_batch(train_set, 2000 * k, 2000)
    members.append(fit(models.mlp(784, (64,), 10), x, y, steps=80).eval())
    with tn.no_grad():
        print(f"member {k}: {accuracy(members[-1](x_test).argmax(-1)):.3f}")
with tn.no_grad():
    print(f"ensemble, average: {accuracy(models.Ensemble(members, 'average')(x_test).argmax(-1)):.3f}")
    print(f"ensemble, vote:    {accuracy(models.Ensemble(members, 'vote')(x_test)):.3f}")
"""),
    md("""
### Early exit

Stage 1 is a small layer with its own classifier; stage 2 adds capacity. At inference a sample
leaves at the first exit whose softmax confidence reaches the threshold, so easy images
(trousers, bags) skip the second stage.
"""),
    code("""
x, y = as_batch(train_set, 0, 4000)
early = models.EarlyExitClassifier(
    stages=[nn.Sequential(nn.Linear(784, 32), nn.ReLU()), nn.Sequential(nn.Linear(32, 64), nn.ReLU())],
    exits=[nn.Linear(32, 10), nn.Linear(64, 10)], threshold=0.9)
fit(early, x, y, steps=120, loss_fn=lambda m, xb, yb: m.loss(m(xb), yb))
early.eval()
with tn.no_grad():
    logits, exit_index = early(x_test)
print(f"accuracy {accuracy(logits.argmax(-1)):.3f}; {np.mean(exit_index.numpy() == 0):.0%} of images left at exit 0")
"""),
    md("""
### Distillation and quantization

The student learns from the ensemble's temperature-softened probabilities
(`distillation_loss`: $\\alpha T^2 \\mathrm{KL}(p_T^{teacher} \\| p_T^{student}) + (1-\\alpha)\\,\\mathrm{CE}$).
Then its weights are rounded to int8 (one scale per output channel).
"""),
    code("""
teacher = models.Ensemble(members, "average")
def distil(model, xb, yb):
    with tn.no_grad():
        soft_targets = teacher(xb).clamp(min=1e-8).log()      # log-probabilities act as logits
    return distillation_loss(model(xb), soft_targets, yb, temperature=4.0, alpha=0.7)
student = fit(models.mlp(784, (16,), 10), x, y, steps=120, loss_fn=distil).eval()
with tn.no_grad():
    print(f"student (16 hidden units): {accuracy(student(x_test).argmax(-1)):.3f}")
report = evaluate_quantization(student, x_test, y_test.numpy(), per_channel=True)
print(f"int8: accuracy {report['float_accuracy']:.3f} -> {report['int8_accuracy']:.3f}, "
      f"{report['float_bytes']:,d} -> {report['int8_bytes']:,d} bytes")
"""),
]

# ----------------------------------------------------------------------------------------- 07
VAE_GAN = [
    md("""
# 07 · Generative models on Fashion-MNIST: a VAE and a DCGAN

Two ways to learn to *make* images.

* A **variational auto-encoder** encodes an image to a Gaussian $q(z|x) = \\mathcal N(\\mu, \\sigma^2)$,
  samples $z = \\mu + \\sigma\\,\\epsilon$ (the *reparameterisation trick*: the randomness is in $\\epsilon$,
  so gradients flow to $\\mu, \\sigma$), and decodes. It minimises the negative ELBO:
  reconstruction error + $\\mathrm{KL}(q(z|x)\\,\\|\\,\\mathcal N(0, I))$.
* A **GAN** trains a generator against a discriminator that tries to tell real from fake.

Both are trained for a few seconds here: the pictures are blurry and rough, but the mechanics are all
there. Longer training (more steps, the full sample) sharpens them.
"""),
    code(LOAD_FASHION + """
x_train, _ = as_batch(train_set, 2000)
"""),
    md("## The VAE"),
    code("""
vae = models.VAE(in_features=784, hidden=256, latent_dim=8)
opt = Adam(vae.parameters(), lr=2e-3)
losses = []
for epoch in range(2):
    order = np.random.default_rng(epoch).permutation(x_train.shape[0])
    for start in range(0, x_train.shape[0], 100):
        xb = x_train[tn.from_numpy(order[start:start + 100])]
        logits, mu, logvar = vae(xb)
        loss = models.vae_loss(logits, xb, mu, logvar)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
print(f"negative ELBO per image: {losses[0]:.1f} -> {losses[-1]:.1f}")

vae.eval()
with tn.no_grad():
    reconstructions = tn.sigmoid(vae(x_train[:8])[0]).numpy().reshape(8, 28, 28)
samples = vae.sample(8).numpy()[:, 0]
fig, axes = plt.subplots(3, 8, figsize=(10, 4))
for i in range(8):
    for row, image in enumerate([x_train.numpy()[i, 0], reconstructions[i], samples[i]]):
        axes[row, i].imshow(image, cmap="gray"); axes[row, i].axis("off")
axes[0, 0].set_title("input", fontsize=8, loc="left"); axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
axes[2, 0].set_title("sampled from the prior", fontsize=8, loc="left");
"""),
    md("""
### The latent space

Walking in a straight line between two images' means $\\mu$ and decoding each point morphs
one garment into the other — the decoder has learned a smooth map.
"""),
    code("""
with tn.no_grad():
    mu, _ = vae.encode(x_train[:2])
    steps = np.linspace(0, 1, 8, dtype=np.float32)[:, None]
    z = tn.from_numpy((1 - steps) * mu.numpy()[0] + steps * mu.numpy()[1])
    path = tn.sigmoid(vae.decode(z)).numpy().reshape(8, 28, 28)
fig, axes = plt.subplots(1, 8, figsize=(10, 1.5))
for ax, image in zip(axes, path):
    ax.imshow(image, cmap="gray"); ax.axis("off")
"""),
    md("""
## The DCGAN

The generator maps noise to a 28×28 image with transposed convolutions; the discriminator is a
strided CNN giving one logit. `models.train_dcgan` alternates their updates (discriminator on
real vs detached fakes, then generator with the non-saturating loss). Images are scaled to [-1, 1].
"""),
    code("""
generator = models.DCGANGenerator(latent_dim=16, channels=1, feature_maps=8, image_size=28)
discriminator = models.DCGANDiscriminator(channels=1, feature_maps=8, image_size=28)
real = x_train * 2 - 1
batches = (real[start:start + 32] for start in range(0, 32 * 30, 32))
history = models.train_dcgan(generator, discriminator, batches, steps=30)
fig, axes = plt.subplots(1, 2, figsize=(10, 2.5))
axes[0].plot(history["d_loss"], label="discriminator"); axes[0].plot(history["g_loss"], label="generator")
axes[0].legend(); axes[0].set_xlabel("step")
generator.eval()
with tn.no_grad():
    fakes = generator(tn.randn(8, 16)).numpy()[:, 0]
axes[1].imshow(np.concatenate(list(fakes), axis=1), cmap="gray"); axes[1].axis("off")
axes[1].set_title("samples after 30 steps (rough, as expected)");
"""),
    md("""
**Try:** more steps and `feature_maps=32` for the GAN; `latent_dim=2` for the VAE, then plot
`mu` coloured by class to see the garments cluster.
"""),
]


def write(name: str, cells: list) -> None:
    stem = name.split("_")[0]
    for index, cell in enumerate(cells):  # stable ids: regenerating gives no diff when nothing changed
        cell.id = f"nb{stem}-{index:02d}"
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nbformat.validate(notebook)
    nbformat.write(notebook, NOTEBOOKS / name)


def main() -> None:
    NOTEBOOKS.mkdir(exist_ok=True)
    write("03_cnn_fashion_mnist.ipynb", CNN_FASHION_MNIST)
    write("04_residual_connections.ipynb", RESIDUAL)
    write("05_attention_transformer.ipynb", ATTENTION)
    write("06_zoo_tour.ipynb", ZOO_TOUR)
    write("07_vae_gan_fashion_mnist.ipynb", VAE_GAN)


if __name__ == "__main__":
    main()
