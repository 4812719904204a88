"""Write the tiny SimCLRv2 checkpoint that tests/test_simclrv2.py converts (run once, needs
TensorFlow).

Not run by CI. It builds the SimCLRv2 authors' own TF1 ResNet (``resnet.py`` and
``model_util.py`` of google-research/simclr, passed by path, not copied here) at depth 50 with
width multiplier 1/16 (so the fixture is ~1 MB), fills every variable, BN statistics included,
with seeded random values, saves it the way the released checkpoints are laid out
(``ema_model/base_model/...``, ``ema_model/head_contrastive/...``, plus non-EMA copies with other
values, a few ``/Momentum`` slots and ``global_step``), and records TensorFlow's own outputs
(backbone features and projection) for a fixed 40x40 input (odd sizes after the stem, so TF's SAME
max-pool padding matters), inference mode::

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tf_keras absl-py
    /tmp/tfvenv/bin/python tests/data/make_simclrv2_fixture.py /path/to/google-research/simclr

Optional arguments ``OUT WIDTH SIZE`` write a full-size check instead (e.g. ``/tmp/r50_2x 2 224``:
a random-weight ResNet-50 2x with 224x224 inputs; not committed).
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.compat.v1.layers needs Keras 2 (tf_keras)

import numpy as np
import tensorflow.compat.v1 as tf
from absl import flags

sys.path.insert(0, sys.argv[1])
import model_util  # noqa: E402  (the authors' code)
import resnet  # noqa: E402

OUT = (
    sys.argv[2]
    if len(sys.argv) > 2
    else os.path.join(os.path.dirname(os.path.abspath(__file__)), "simclrv2_tiny")
)
WIDTH = float(sys.argv[3]) if len(sys.argv) > 3 else 1 / 16  # 64 * WIDTH = 4 channels in the stem
SIZE = int(sys.argv[4]) if len(sys.argv) > 4 else 40

FLAGS = flags.FLAGS
for name, value in dict(
    sk_ratio=0.0,
    se_ratio=0.0,
    global_bn=False,
    batch_norm_decay=0.9,
    train_mode="pretrain",
    fine_tune_after_block=-1,
    proj_head_mode="nonlinear",
    num_proj_layers=3,
    proj_out_dim=8 if WIDTH < 1 else 128,
    ft_proj_selector=0,
).items():
    if isinstance(value, bool):
        flags.DEFINE_bool(name, value, "")
    elif isinstance(value, float):
        flags.DEFINE_float(name, value, "")
    elif isinstance(value, int):
        flags.DEFINE_integer(name, value, "")
    else:
        flags.DEFINE_string(name, value, "")
FLAGS(["fixture"])


def main() -> None:
    tf.disable_eager_execution()
    rng = np.random.default_rng(0)
    x_nchw = rng.uniform(0, 1, size=(2, 3, SIZE, SIZE)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.constant(x_nchw.transpose(0, 2, 3, 1))
        with tf.variable_scope("base_model"):
            net = resnet.resnet_v1(resnet_depth=50, width_multiplier=WIDTH)
            hiddens = net(images, is_training=False)
        proj = model_util.projection_head(hiddens, is_training=False)
        variables = tf.global_variables()
        assigns = []
        values = {}
        for v in variables:
            shape = v.shape.as_list()
            if "moving_variance" in v.name:
                val = rng.uniform(0.5, 2.0, size=shape)
            elif "gamma" in v.name:
                val = rng.uniform(0.5, 1.5, size=shape)
            elif "kernel" in v.name:  # He-scaled, so activations stay O(1) through 50 layers
                val = rng.normal(0, np.sqrt(2.0 / np.prod(shape[:-1])), size=shape)
            else:
                val = rng.normal(0, 0.1, size=shape)
            val = val.astype(np.float32)
            values[v.op.name] = val
            assigns.append(v.assign(val))
        with tf.Session() as sess:
            sess.run(assigns)
            h, p = sess.run([hiddens, proj])
            # the released layout: EMA weights under ema_model/, raw weights (here: other values),
            # optimizer slots and the step counter beside them
            saved = {}
            for name, val in values.items():
                saved["ema_model/" + name] = tf.Variable(val, name="s%d" % len(saved))
                saved[name] = tf.Variable(val + 1.0, name="s%d" % len(saved))
                if len(saved) < 10:
                    saved[name + "/Momentum"] = tf.Variable(
                        np.zeros_like(val), name="s%d" % len(saved)
                    )
            saved["global_step"] = tf.Variable(np.int64(250228), name="gs")
            sess.run(tf.variables_initializer(list(saved.values())))
            os.makedirs(OUT, exist_ok=True)
            tf.train.Saver(var_list=saved).save(
                sess, os.path.join(OUT, "model.ckpt-250228"), write_meta_graph=False
            )
    for f in os.listdir(OUT):
        if f == "checkpoint":
            os.remove(
                os.path.join(OUT, f)
            )  # holds absolute paths; the index and data files suffice
    np.savez(os.path.join(OUT, "expected.npz"), images=x_nchw, hiddens=h, projection=p)
    print("variables:", len(values), "hiddens", h.shape, "projection", p.shape)
    print(sorted(values)[:5])


if __name__ == "__main__":
    main()
