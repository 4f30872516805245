"""Op audit of an exported SavedModel: only core TensorFlow ops may appear.

TensorFlow Serving runs a SavedModel with the ops compiled into its binary:
core TensorFlow. A graph that holds a Python callback (`tf.py_function`,
`tf.numpy_function`: the ops `PyFunc`, `PyFuncStateless`, `EagerPyFunc`) or an
op of a custom-op library (tensorflow-io, tensorflow-text, ...: ops outside
core, often in a namespace such as `IO>AudioDecodeWav`) loads here but fails
in the server. `audit_ops` reads the graph and names every such op.

Example:

>>> problems = audit_ops("exports/ser/1")       # doctest: +SKIP
>>> problems
[]
"""

import os

PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})


def _read_saved_model(path):
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = os.path.join(os.fspath(path), "saved_model.pb")
    if not os.path.isfile(pb_path):
        raise FileNotFoundError(f"No SavedModel at {os.fspath(path)!r}: {pb_path} does not exist")
    saved_model = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as handle:
        saved_model.ParseFromString(handle.read())
    return saved_model


def saved_model_ops(path):
    """Every op type used by a SavedModel (graph nodes and function bodies).

    Args:
        path: str. The SavedModel directory (the one holding `saved_model.pb`).

    Returns:
        dict `op name -> sorted list of the functions/graph using it`.
    """
    ops = {}
    for meta_graph in _read_saved_model(path).meta_graphs:
        for node in meta_graph.graph_def.node:
            ops.setdefault(node.op, set()).add("<graph>")
        for function in meta_graph.graph_def.library.function:
            for node in function.node_def:
                ops.setdefault(node.op, set()).add(function.signature.name)
    return {op: sorted(where) for op, where in sorted(ops.items())}


def _core_ops():
    import tensorflow as tf
    from tensorflow.python.framework import op_def_registry

    # `tf.raw_ops` is generated when TensorFlow is built: it lists core ops
    # only, never the ops of libraries loaded later with tf.load_op_library.
    raw = set(dir(tf.raw_ops))
    return lambda op: op in raw and op_def_registry.get(op) is not None


def audit_ops(path):
    """Lists the ops of a SavedModel that stock TensorFlow Serving cannot run.

    An op is reported when it is a Python callback (`PyFunc`,
    `PyFuncStateless`, `EagerPyFunc`), sits in a custom-op namespace (its
    name holds `>`), or is not a registered core TensorFlow op.

    Args:
        path: str. The SavedModel directory.

    Returns:
        list of str, one line per offending op (empty when the graph is clean).
    """
    is_core = _core_ops()
    problems = []
    for op, where in saved_model_ops(path).items():
        places = ", ".join(where[:3]) + (" ..." if len(where) > 3 else "")
        if op in PYTHON_OPS:
            problems.append(f"{op}: a Python callback (tf.py_function / numpy_function), used in {places}")
        elif ">" in op:
            problems.append(f"{op}: an op of a custom-op namespace ({op.split('>')[0]}), used in {places}")
        elif not is_core(op):
            problems.append(f"{op}: not a registered core TensorFlow op, used in {places}")
    return problems


def check_ops(path):
    """Raises `ValueError` naming every op `audit_ops` reports."""
    problems = audit_ops(path)
    if problems:
        raise ValueError(
            f"The SavedModel at {os.fspath(path)!r} uses ops that TensorFlow Serving cannot run:\n  "
            + "\n  ".join(problems)
        )
