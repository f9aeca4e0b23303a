"""
Reference implementation of am-ml's two-tower training step in Python Keras (TensorFlow backend), for the
side-by-side throughput comparison of issue 4. Not used by am-ml, its tests or CI.

It trains the same model (weighted embedding bags -> concat numerics -> Dense 256 ReLU -> Dense 128 ->
L2 normalisation, per tower), from the same initial weights, on the same batches, with the same loss (in-batch
sampled softmax, temperature, log-Q correction, accidental-hit masking, one explicit negative per row) and Adam,
as exported by `node dist/bench/train-batches.js <dir>`. It prints the loss of the first steps (to check that the
two implementations compute the same thing) and examples/s.

    python3 -m venv /tmp/keras-venv && /tmp/keras-venv/bin/pip install tensorflow-cpu
    node dist/bench/train-batches.js /tmp/tt-batches 12
    /tmp/keras-venv/bin/python scripts/keras-reference/two_tower_keras.py /tmp/tt-batches [--steps 30] [--xla]
"""
import argparse
import json
import os
import time

import numpy as np
import tensorflow as tf
import keras


def load(meta_dir, entry, rows_per_batch, batches):
    dtype = np.int32 if entry["dtype"] == "int32" else np.float32
    data = np.fromfile(os.path.join(meta_dir, entry["file"]), dtype="<i4" if dtype == np.int32 else "<f4")
    width = entry.get("width", 1)
    return data.reshape(batches, rows_per_batch, width) if width > 1 or "width" in entry else data.reshape(batches, rows_per_batch)


class WeightedSum(keras.layers.Layer):
    """sum_j w[b, j] * emb[b, j, :]"""

    def call(self, inputs):
        emb, w = inputs
        return tf.reduce_sum(emb * tf.expand_dims(w, -1), axis=1)


class L2Normalize(keras.layers.Layer):
    def call(self, x):
        return tf.math.l2_normalize(x, axis=-1, epsilon=1e-12)


def build_tower(name, spec, hidden, dim, meta_dir):
    inputs, parts, embeddings = [], [], []
    for i, bag in enumerate(spec["tables"]):
        idx_spec, w_spec = spec["inputs"][2 * i], spec["inputs"][2 * i + 1]
        idx = keras.Input(shape=(idx_spec["width"],), dtype="int32", name=idx_spec["name"])
        w = keras.Input(shape=(w_spec["width"],), dtype="float32", name=w_spec["name"])
        emb_layer = keras.layers.Embedding(bag["vocabularySize"], bag["embeddingDim"], name=f"{bag['name']}_bag")
        parts.append(WeightedSum()([emb_layer(idx), w]))
        inputs += [idx, w]
        embeddings.append((emb_layer, bag))
    numeric = keras.Input(shape=(spec["numericWidth"],), dtype="float32", name="numeric")
    inputs.append(numeric)
    x = keras.layers.Concatenate()(parts + [numeric])
    dense_layers = []
    for k, units in enumerate(hidden):
        layer = keras.layers.Dense(units, activation="relu", name=f"dense_{k + 1}")
        x = layer(x)
        dense_layers.append(layer)
    out_layer = keras.layers.Dense(dim, name="dense_out")
    x = out_layer(x)
    dense_layers.append(out_layer)
    model = keras.Model(inputs, L2Normalize()(x), name=f"{name}_tower")
    # Same initial weights as am-ml.
    for layer, bag in embeddings:
        table = np.fromfile(os.path.join(meta_dir, bag["file"]), dtype="<f4").reshape(bag["vocabularySize"], bag["embeddingDim"])
        layer.set_weights([table])
    for layer, d in zip(dense_layers, spec["dense"]):
        flat = np.fromfile(os.path.join(meta_dir, d["file"]), dtype="<f4")
        units = d["units"]
        kernel = flat[: flat.size - units].reshape(-1, units)
        layer.set_weights([kernel, flat[flat.size - units:]])
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--xla", action="store_true", help="compile the step with XLA (jit_compile=True)")
    ap.add_argument(
        "--dense-grads",
        action="store_true",
        help="convert embedding gradients (IndexedSlices) to dense tensors before Adam; Keras' sparse path squares "
        "each lookup's gradient before summing duplicates, so its second moments differ slightly from dense Adam",
    )
    args = ap.parse_args()
    meta = json.load(open(os.path.join(args.dir, "meta.json")))
    b, nb = meta["batchSize"], meta["batches"]
    tau = meta["temperature"]
    user_model = build_tower("user", meta["user"], meta["hidden"], meta["dim"], args.dir)
    item_model = build_tower("item", meta["item"], meta["hidden"], meta["dim"], args.dir)
    user_x = [load(args.dir, e, b, nb) for e in meta["user"]["inputs"]]
    item_x = [load(args.dir, e, 2 * b, nb) for e in meta["item"]["inputs"]]
    logq = load(args.dir, meta["side"]["logq"], b, nb)
    item_key = load(args.dir, meta["side"]["item_key"], b, nb)
    user_key = load(args.dir, meta["side"]["user_key"], b, nb)
    opt = keras.optimizers.Adam(learning_rate=meta["learningRate"], beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    variables = user_model.trainable_variables + item_model.trainable_variables
    labels = tf.range(b)
    eye = tf.eye(b, dtype=tf.bool)

    @tf.function(jit_compile=args.xla, reduce_retracing=True)
    def step(ux, ix, lq, ik, uk):
        with tf.GradientTape() as tape:
            u = user_model(ux, training=True)
            v_all = item_model(ix, training=True)
            v, n = v_all[:b], v_all[b:]
            s = tf.matmul(u, v, transpose_b=True) / tau - lq[None, :]
            accidental = tf.logical_and(
                tf.logical_or(tf.equal(ik[:, None], ik[None, :]), tf.equal(uk[:, None], uk[None, :])), tf.logical_not(eye)
            )
            s = tf.where(accidental, tf.constant(-1e9, tf.float32), s)
            h = tf.reduce_sum(u * n, axis=1, keepdims=True) / tau
            logits = tf.concat([s, h], axis=1)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        grads = tape.gradient(loss, variables)
        if args.dense_grads:
            grads = [tf.convert_to_tensor(g) for g in grads]
        opt.apply_gradients(zip(grads, variables))
        return loss

    def run(k):
        i = k % nb
        return step([x[i] for x in user_x], [x[i] for x in item_x], logq[i], item_key[i], user_key[i])

    losses = []
    for k in range(args.warmup):
        losses.append(float(run(k)))
    t0 = time.perf_counter()
    for k in range(args.warmup, args.warmup + args.steps):
        loss = run(k)
    loss = float(loss)
    seconds = time.perf_counter() - t0
    result = {
        "implementation": f"keras {keras.__version__} / tensorflow {tf.__version__}"
        + (" (XLA)" if args.xla else "")
        + (" (dense gradients)" if args.dense_grads else ""),
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(), "cpus": os.cpu_count()},
        "batchSize": b,
        "steps": args.steps,
        "examplesPerSec": b * args.steps / seconds,
        "msPerStep": 1000 * seconds / args.steps,
        "firstLosses": losses,
        "lastLoss": loss,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
