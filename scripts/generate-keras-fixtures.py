#!/usr/bin/env python3
"""Write the generated Keras fixtures of fixtures/keras/ with real Keras, plus golden outputs.

am-ml never needs Python: this script only (re)creates small committed test data. Run it from the repository root
in an environment with the local index's packages:

    python3 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install tensorflow-cpu keras h5py numpy
    /tmp/kvenv/bin/python scripts/generate-keras-fixtures.py [--lambda-pythons /path/python3.10 ...] [--only graph ...]

Outputs (all under fixtures/keras/generated/):

* seed-shaped two-tower models, each as .keras (Keras 3 zip) and .h5 (legacy HDF5 written by Keras 3):
  user_tower_768 (Embedding + multi-hot + numerics -> Dense -> BatchNormalization -> Dropout -> Dense 768 ->
  UnitNormalization), item_tower_768 (Embedding + multi-hot -> a nested Sequential MLP with LayerNormalization ->
  Dense 768 -> UnitNormalization) and full_model_768 (both towers nested in a Functional model, Dot head);
* kitchen_sink: every other layer am-ml converts, in one Functional model (.keras and .h5);
* nested_sequential: a Sequential containing a Sequential (.keras and .h5);
* topology JSON + Keras 3 weights file (model.to_json() + save_weights("*.weights.h5"));
* graph shapes: shared_layer (one Embedding called twice, Dot(normalize=True)), siamese (a nested tower called
  twice), scalar_id (an Input(shape=()) id), each as .keras and .h5;
* Lambda models: lambda_l2 (recognisable L2 normalisation), lambda_named (a named function, needs --map-lambda),
  lambda_unknown (x * 2, refused); masked_pooling (Embedding(mask_zero=True) -> GlobalAveragePooling1D, refused);
* <name>.golden.json for every convertible model: {"inputs", "input_order", "outputs", "output_names", ...}
  from Keras' own predict(); goldens for the public fixtures in fixtures/keras/ where Keras 3 can load them;
* lambda-bytecode.json: marshalled lambda code objects from every Python given with --lambda-pythons.

All weights are set from a fixed seed (BatchNormalization statistics included, so they are not the trivial 0/1).
"""
import argparse
import base64
import json
import marshal
import os
import subprocess
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "keras", "generated")
PUBLIC = os.path.join(ROOT, "fixtures", "keras")
GOLDEN_BATCH = 8
SEED = 20261122


def randomize_weights(model, rng):
    """Give every variable seeded, non-trivial values (moving variances positive)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        new = []
        for w in layer.weights:
            shape = tuple(w.shape)
            name = w.path.split("/")[-1]
            if name == "moving_variance":
                v = rng.uniform(0.5, 1.5, shape)
            elif name == "gamma":
                v = 1.0 + 0.2 * rng.standard_normal(shape)
            elif name in ("moving_mean", "beta", "bias"):
                v = 0.1 * rng.standard_normal(shape)
            else:
                fan_in = shape[0] if len(shape) > 1 else 1
                v = rng.standard_normal(shape) / np.sqrt(max(1, fan_in))
            new.append(v.astype("float32"))
        if new:
            layer.set_weights(new)


def golden_inputs(model, rng, id_ranges):
    """One batch per input: ids (covering 0 and the top id) for Embedding inputs, 0/1 multi-hot, normal numerics."""
    inputs = {}
    for t in model.inputs:
        name = input_name(t)
        shape = (GOLDEN_BATCH,) + tuple(d if d is not None else 4 for d in t.shape[1:])
        if name in id_ranges:
            v = rng.integers(0, id_ranges[name], size=shape)
            flat = v.reshape(-1)
            flat[0] = 0
            flat[1] = id_ranges[name] - 1
            v = flat.reshape(shape)
            inputs[name] = v.astype("int32" if "int" in str(t.dtype) else "float32")
        elif "tags" in name or "performers" in name:
            inputs[name] = (rng.random(shape) < 0.2).astype("float32")
        else:
            inputs[name] = rng.standard_normal(shape).astype("float32")
    return inputs


def input_name(t):
    """The InputLayer's name (what model.json calls the input), not the KerasTensor's auto name."""
    return t._keras_history[0].name


def write_golden(path, model, inputs, note):
    order = [input_name(t) for t in model.inputs]
    outs = model.predict([inputs[n] for n in order] if len(order) > 1 else inputs[order[0]], verbose=0)
    if isinstance(outs, dict):
        outs = [outs[k] for k in sorted(outs)]  # model.outputs order: keras.tree.flatten sorts dict keys
    elif not isinstance(outs, (list, tuple)):
        outs = [outs]
    doc = {
        "inputs": {n: inputs[n].tolist() for n in order},
        "input_order": order,
        "outputs": [np.asarray(o, dtype="float64").tolist() for o in outs],
        # Keras output tensors carry auto names; name each output after the layer that produces it.
        "output_names": [o._keras_history[0].name for o in model.outputs],
        "generator": "scripts/generate-keras-fixtures.py",
        "keras_version": keras.__version__,
        "note": note,
    }
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def save_both(model, name):
    model.save(os.path.join(OUT, f"{name}.keras"))
    model.save(os.path.join(OUT, f"{name}.h5"))


# ---------------------------------------------------------------------------------------------------------------
# Seed-shaped towers
# ---------------------------------------------------------------------------------------------------------------

USER_IDS = 500
ITEM_MAKERS = 300


def user_tower():
    uid = keras.Input((1,), name="user_id", dtype="int32")
    tags = keras.Input((64,), name="user_tags")
    numeric = keras.Input((3,), name="user_numeric")
    e = layers.Flatten(name="user_id_flat")(layers.Embedding(USER_IDS, 16, name="user_id_embedding")(uid))
    x = layers.Concatenate(name="user_features")([e, tags, numeric])
    x = layers.Dense(64, activation="relu", name="user_hidden")(x)
    x = layers.BatchNormalization(name="user_bn")(x)
    x = layers.Dropout(0.1, name="user_dropout")(x)
    x = layers.Dense(768, name="user_projection")(x)
    x = layers.UnitNormalization(name="user_embedding")(x)
    return keras.Model([uid, tags, numeric], x, name="user_tower")


def item_tower():
    maker = keras.Input((1,), name="item_maker", dtype="int32")
    tags = keras.Input((64,), name="item_tags")
    performers = keras.Input((32,), name="item_performers")
    e = layers.Flatten(name="item_maker_flat")(layers.Embedding(ITEM_MAKERS, 16, name="item_maker_embedding")(maker))
    x = layers.Concatenate(name="item_features")([e, tags, performers])
    mlp = keras.Sequential(
        [layers.Dense(64, activation="relu", name="item_hidden"), layers.LayerNormalization(name="item_ln"), layers.Dense(768, name="item_projection")],
        name="item_mlp",
    )
    x = mlp(x)
    x = layers.UnitNormalization(name="item_embedding")(x)
    return keras.Model([maker, tags, performers], x, name="item_tower")


def full_model(u, i):
    ins = [keras.Input(tuple(t.shape[1:]), name=input_name(t), dtype=t.dtype) for t in u.inputs + i.inputs]
    score = layers.Dot(axes=1, name="score")([u(ins[:3]), i(ins[3:])])
    return keras.Model(ins, score, name="two_tower")


# ---------------------------------------------------------------------------------------------------------------
# Coverage models
# ---------------------------------------------------------------------------------------------------------------


def kitchen_sink():
    seq = keras.Input((6, 5), name="sequence")
    ids = keras.Input((4,), name="token_ids", dtype="int32")
    vec = keras.Input((12,), name="features")
    s = layers.Permute((2, 1), name="permute")(seq)
    s = layers.Reshape((6, 5), name="reshape")(s)
    s = layers.Dense(8, activation="gelu", name="seq_dense")(s)
    s = layers.GlobalAveragePooling1D(name="gap")(s)
    t = layers.Embedding(50, 8, name="token_embedding")(ids)
    t = layers.GlobalMaxPooling1D(name="gmp")(t)
    v = layers.Rescaling(0.5, offset=0.1, name="rescale")(vec)
    v = layers.Dense(8, name="vec_dense")(v)
    v = layers.PReLU(name="prelu")(v)
    a = layers.Add(name="add")([s, t])
    b = layers.Subtract(name="subtract")([v, t])
    c = layers.Multiply(name="multiply")([a, b])
    d = layers.Average(name="average")([a, b, c])
    m1 = layers.Maximum(name="maximum")([a, d])
    m2 = layers.Minimum(name="minimum")([b, d])
    x = layers.Concatenate(name="concat")([m1, m2, layers.LeakyReLU(negative_slope=0.2, name="leaky")(c)])
    x = layers.ELU(name="elu")(x)
    x = layers.Dense(16, activation="silu", name="silu_dense")(x)
    x = layers.Activation("mish", name="mish")(x)
    x = layers.ReLU(max_value=3.0, name="relu6ish")(x)
    r = layers.RepeatVector(2, name="repeat")(x)
    r = layers.Flatten(name="flatten")(r)
    x = layers.Dense(10, activation="tanh", name="tanh_dense")(r)
    x = layers.LayerNormalization(name="ln")(x)
    logits = layers.Dense(4, name="logits")(x)
    probs = layers.Softmax(name="softmax")(logits)
    sig = layers.Dense(3, activation="sigmoid", name="sigmoid_out")(x)
    return keras.Model([seq, ids, vec], [probs, sig], name="kitchen_sink")


def nested_sequential():
    inner = keras.Sequential([layers.Dense(6, activation="relu", name="inner_a"), layers.BatchNormalization(name="inner_bn")], name="inner")
    return keras.Sequential([keras.Input((5,), name="x"), layers.Dense(7, activation="tanh", name="outer_a"), inner, layers.Dense(3, name="outer_b")], name="outer")


def lambda_models():
    l2 = keras.Sequential([keras.Input((8,), name="x"), layers.Dense(6, name="proj"), layers.Lambda(lambda x: ops.normalize(x, axis=-1), name="l2")], name="lambda_l2")
    named = keras.Sequential([keras.Input((8,), name="x"), layers.Dense(6, name="proj"), layers.Lambda(ops.normalize, arguments={"axis": -1}, name="l2_named")], name="lambda_named")
    unknown = keras.Sequential([keras.Input((8,), name="x"), layers.Dense(6, name="proj"), layers.Lambda(lambda x: x * 2.0, name="times_two")], name="lambda_unknown")
    return l2, named, unknown


def graph_models():
    """Graph shapes that tripped the converter once: a layer called twice, a tower called twice, a scalar id input."""
    a = keras.Input((3,), name="a_ids", dtype="int32")
    b = keras.Input((3,), name="b_ids", dtype="int32")
    emb = layers.Embedding(40, 6, name="shared_emb")
    pa = layers.GlobalAveragePooling1D(name="pool_a")(emb(a))
    pb = layers.GlobalAveragePooling1D(name="pool_b")(emb(b))
    shared = keras.Model([a, b], layers.Dot(axes=1, normalize=True, name="cosine")([pa, pb]), name="shared_layer")

    tin = keras.Input((5,), name="t_in")
    tower = keras.Model(tin, layers.UnitNormalization(name="t_norm")(layers.Dense(8, activation="relu", name="t_dense")(tin)), name="tower")
    x1 = keras.Input((5,), name="x1")
    x2 = keras.Input((5,), name="x2")
    siamese = keras.Model([x1, x2], layers.Dot(axes=1, name="similarity")([tower(x1), tower(x2)]), name="siamese")

    sid = keras.Input((), name="sid", dtype="int32")
    scalar = keras.Model(sid, layers.Dense(3, name="out")(layers.Embedding(30, 4, name="sid_embedding")(sid)), name="scalar_id")
    return [(shared, "shared_layer", {"a_ids": 40, "b_ids": 40}), (siamese, "siamese", {}), (scalar, "scalar_id", {"sid": 30})]


def masked_pooling():
    ids = keras.Input((5,), name="ids", dtype="int32")
    x = layers.Embedding(20, 4, mask_zero=True, name="masked_embedding")(ids)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(ids, layers.Dense(2, name="out")(x), name="masked_pooling")


# ---------------------------------------------------------------------------------------------------------------
# Marshalled lambdas from several CPython versions
# ---------------------------------------------------------------------------------------------------------------

LAMBDA_CASES = {
    # name: (source, expected) with expected = [axis, maxInverseNorm] or None (must be refused)
    "tf_math_axis_kw": ("lambda x: tf.math.l2_normalize(x, axis=1)", [1, 1e6]),
    "tf_nn_axis_eps": ("lambda x: tf.nn.l2_normalize(x, axis=-1, epsilon=1e-10)", [-1, 1e5]),
    "tf_math_axis_positional": ("lambda x: tf.math.l2_normalize(x, 1)", [1, 1e6]),
    "backend_K": ("lambda x: K.l2_normalize(x, axis=-1)", [-1, 1e6]),
    "keras_ops": ("lambda x: keras.ops.normalize(x, axis=-1)", [-1, 1e7]),
    "ops_default_axis": ("lambda x: ops.normalize(x)", [-1, 1e7]),
    "ops_order_2": ("lambda x: ops.normalize(x, axis=1, order=2)", [1, 1e7]),
    "times_two": ("lambda x: x * 2", None),
    "scaled_input": ("lambda x: tf.math.l2_normalize(x * 2, axis=1)", None),
    "no_axis": ("lambda x: tf.math.l2_normalize(x)", None),
    "plus_one": ("lambda x: tf.math.l2_normalize(x, axis=1) + 1", None),
    "order_1": ("lambda x: ops.normalize(x, axis=-1, order=1)", None),
    "other_function": ("lambda x: tf.math.reduce_sum(x, axis=1)", None),
    "two_args": ("lambda x, y: tf.math.l2_normalize(x, axis=1)", None),
    "negated": ("lambda x: tf.math.l2_normalize(-x, axis=1)", None),
}

LAMBDA_DUMPER = r"""
import base64, json, marshal, sys
cases = json.loads(sys.stdin.read())
out = {}
for name, src in cases.items():
    f = eval(src)
    out[name] = base64.b64encode(marshal.dumps(f.__code__)).decode("ascii")
print(json.dumps({"python": "%d.%d" % sys.version_info[:2], "codes": out}))
"""


def lambda_bytecode(pythons):
    results = []
    sources = {k: v[0] for k, v in LAMBDA_CASES.items()}
    for exe in [sys.executable] + list(pythons):
        proc = subprocess.run([exe, "-c", LAMBDA_DUMPER], input=json.dumps(sources), capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout))
    doc = {
        "generator": "scripts/generate-keras-fixtures.py",
        "expected": {k: v[1] for k, v in LAMBDA_CASES.items()},
        "sources": sources,
        "pythons": results,
    }
    with open(os.path.join(OUT, "lambda-bytecode.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------------------------------------------------------


def public_goldens(rng):
    """Goldens for the public fixtures, computed by Keras 3 itself."""
    cases = [
        ("joehigton__slfcc__bz_extractor.keras", {"input_gender": 3, "input_race": 8, "input_educ": 8, "input_income": 17, "input_party": 5}),
        ("joehigton__slfcc__two_tower_model.keras", {"input_gender": 3, "input_race": 8, "input_educ": 8, "input_income": 17, "input_party": 5}),
        ("nudge-deploy__NudgeCronjob__two_tower_model.h5", {}),
    ]
    for name, ids in cases:
        path = os.path.join(PUBLIC, name)
        model = keras.saving.load_model(path, compile=False)
        write_golden(os.path.join(OUT, f"{name}.golden.json"), model, golden_inputs(model, rng, ids), f"Keras {keras.__version__} predict() on the public fixture {name}")
    # Keras 2.0 topology JSON + weights-only h5: Keras 3 cannot read the 2.0-era config; rebuild the same
    # Dense 16-64-32-32-5 stack and load the weights by layer name from the h5 with h5py instead.
    import h5py

    with open(os.path.join(PUBLIC, "fastmachinelearning__example-models__KERAS_3layer.json")) as f:
        topo = json.load(f)
    x = inp = keras.Input((16,), name="input_1")
    for lc in topo["config"]["layers"][1:]:
        c = lc["config"]
        x = layers.Dense(c["units"], activation=c["activation"], name=c["name"])(x)
    model = keras.Model(inp, x, name="model_1")
    with h5py.File(os.path.join(PUBLIC, "fastmachinelearning__example-models__KERAS_3layer_weights.h5"), "r") as h:
        for layer in model.layers[1:]:
            g = h[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            layer.set_weights([np.asarray(g[n]) for n in names])
    write_golden(
        os.path.join(OUT, "fastmachinelearning__example-models__KERAS_3layer.golden.json"),
        model,
        golden_inputs(model, rng, {}),
        "Keras 3 rebuild of the Keras 2.0 topology with the weights read by h5py",
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lambda-pythons", nargs="*", default=[], help="other CPython executables for lambda-bytecode.json")
    ap.add_argument("--only", nargs="*", default=None, help="regenerate only these groups: towers coverage lambda graph public bytecode")
    args = ap.parse_args()
    want = lambda group: args.only is None or group in args.only  # noqa: E731
    os.makedirs(OUT, exist_ok=True)
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)

    if want("towers"):
        u = user_tower()
        i = item_tower()
        full = full_model(u, i)
        randomize_weights(full, rng)
        user_ids = {"user_id": USER_IDS}
        item_ids = {"item_maker": ITEM_MAKERS}
        for model, name, ids in [(u, "user_tower_768", user_ids), (i, "item_tower_768", item_ids), (full, "full_model_768", {**user_ids, **item_ids})]:
            save_both(model, name)
            write_golden(os.path.join(OUT, f"{name}.golden.json"), model, golden_inputs(model, rng, ids), f"Keras {keras.__version__} predict()")
    if want("coverage"):
        coverage(rng)
    if want("lambda"):
        lambdas(rng)
    if want("graph"):
        graph_rng = np.random.default_rng(SEED + 1)
        for model, name, ids in graph_models():
            randomize_weights(model, graph_rng)
            save_both(model, name)
            write_golden(os.path.join(OUT, f"{name}.golden.json"), model, golden_inputs(model, graph_rng, ids), f"Keras {keras.__version__} predict()")
    if want("public"):
        public_goldens(rng)
    if want("bytecode"):
        lambda_bytecode(args.lambda_pythons)

    # Record the exact files for SOURCES.md.
    for n in sorted(os.listdir(OUT)):
        p = os.path.join(OUT, n)
        print(f"{n}\t{os.path.getsize(p)}")


def coverage(rng):
    ks = kitchen_sink()
    randomize_weights(ks, rng)
    save_both(ks, "kitchen_sink")
    write_golden(os.path.join(OUT, "kitchen_sink.golden.json"), ks, golden_inputs(ks, rng, {"token_ids": 50}), f"Keras {keras.__version__} predict()")

    ns = nested_sequential()
    randomize_weights(ns, rng)
    save_both(ns, "nested_sequential")
    write_golden(os.path.join(OUT, "nested_sequential.golden.json"), ns, golden_inputs(ns, rng, {}), f"Keras {keras.__version__} predict()")
    # Topology JSON + Keras 3 weights file (the saving_lib layout, not the legacy layer_names one).
    with open(os.path.join(OUT, "nested_sequential.json"), "w") as f:
        f.write(ns.to_json())
    ns.save_weights(os.path.join(OUT, "nested_sequential.weights.h5"))


def lambdas(rng):
    l2, named, unknown = lambda_models()
    for m, name in [(l2, "lambda_l2"), (named, "lambda_named"), (unknown, "lambda_unknown")]:
        randomize_weights(m, rng)
        m.save(os.path.join(OUT, f"{name}.keras"))
    l2.save(os.path.join(OUT, "lambda_l2.h5"))
    write_golden(os.path.join(OUT, "lambda_l2.golden.json"), l2, golden_inputs(l2, rng, {}), f"Keras {keras.__version__} predict()")
    write_golden(os.path.join(OUT, "lambda_named.golden.json"), named, golden_inputs(named, rng, {}), f"Keras {keras.__version__} predict()")

    mp = masked_pooling()
    randomize_weights(mp, rng)
    mp.save(os.path.join(OUT, "masked_pooling.keras"))


if __name__ == "__main__":
    main()
