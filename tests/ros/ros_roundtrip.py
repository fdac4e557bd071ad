#!/usr/bin/python3
"""ROS round trip: a real roscore on the loopback interface, rill nodes (a text model and three sensor
nodes of a vector model, all in one graph), and a driver that publishes recorded input sequences. Every reply must equal what `rill run --greedy` prints for the same text:
the node keeps one stream, so reply i continues from all inputs and replies since the last reset,
which for the demo's byte tokenizer is `rill run --greedy` on their concatenation. Everything started
here is stopped at the end, pass or fail.

  ros_roundtrip.py --rill RILL --node RILL_NODE --driver DRIVER --src SRC --work WORK
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client

MAX_TOKENS = 48
INPUTS = ["ROMEO:", "\nJULIET:\nO Romeo, ", None, "KING HENRY:", "\n\n"]  # None: call the reset service


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, env, log):
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(p):
    if p and p.poll() is None:
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def expected_replies(rill, model):
    out, context = [], b""
    for text in INPUTS:
        if text is None:
            context = b""
            continue
        prompt = context + text.encode()
        r = subprocess.run([rill, "run", model, "--prompt", prompt.decode(), "-n", str(MAX_TOKENS), "--greedy"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True, timeout=120)
        assert r.stdout.startswith(prompt) and r.stdout.endswith(b"\n"), r.stdout
        reply = r.stdout[len(prompt):-1]
        out.append(reply)
        context = prompt + reply
    return out


def stream_reference(a, model, parts):
    """`rill stream` over each part from the empty state (a reset between parts), concatenated."""
    import numpy as np
    want = []
    for part in parts:
        np.save(os.path.join(a.work, "part.npy"), part)
        subprocess.run([a.rill, "stream", model, "-i", os.path.join(a.work, "part.npy"), "-o",
                        os.path.join(a.work, "part_out.npy")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, timeout=60)
        want.append(np.load(os.path.join(a.work, "part_out.npy")))
    return np.concatenate(want)


def run_driver(a, env, topics, records, mode):
    """Writes the records, runs the driver, returns its replies (NUL-separated records)."""
    inputs = os.path.join(a.work, f"{mode[0]}_inputs.bin")
    with open(inputs, "wb") as f:
        f.write(b"\0".join(records) + b"\0")
    replies_file = os.path.join(a.work, f"{mode[0]}_replies.bin")
    subprocess.run([a.driver, *topics, inputs, replies_file, *mode], env=env, check=True, timeout=180)
    with open(replies_file, "rb") as f:
        return f.read()


def row(r):
    return " ".join(f"{v:.9g}" for v in r).encode()


def sensor_tests(a, env, procs, logs, model, x):
    """The sensor nodes: stamped messages with bad ones and a reset; Float32MultiArray for compatibility;
    a burst larger than the subscriber queue."""
    import numpy as np
    split = 20
    want = stream_reference(a, model, [x[:split], x[split:]])

    # 1. rill_msgs/VectorStamped: every output equals rill stream bit for bit and carries its input's
    # header; a wrong-size and a NaN message are refused (no output) and change nothing.
    records, seqs, seq = [], [], 0
    for i, r in enumerate(x):
        if i == split:
            records.append(b"\x01reset")
        if i == 5:
            records.append(b"\x03" + row(r[:-1]))  # wrong size
            seq += 1
        if i == 30:
            bad = r.copy()
            bad[0] = np.nan
            records.append(b"\x03" + row(bad))  # NaN
            seq += 1
        records.append(row(r))
        seq += 1
        seqs.append(seq)
    out = run_driver(a, env, ["/rill_test/sin", "/rill_test/sout", "/rill_sensor/reset"], records, ["stamped"])
    replies = out.split(b"\0")[:-1]
    got_stamp = [int(r.split(b" | ")[0].split()[1]) for r in replies]
    got = np.array([[float(v) for v in r.split(b" | ")[1].split()] for r in replies], dtype=np.float32)
    if got.shape != want.shape or not np.array_equal(got, want):
        print(f"stamped outputs differ from rill stream: shapes {got.shape} {want.shape}")
        return 1
    # roscpp numbers header.seq per publisher itself; the stamp is what an output carries over.
    if any(abs(st - (1000_000_000_000 + q * 1_000_000)) > 1000 for st, q in zip(got_stamp, seqs)):
        print(f"output stamps are not their inputs': {got_stamp[:6]}..., inputs' {seqs[:6]}... ms after 1000 s")
        return 1
    print(f"ros stamped: {len(got)} VectorStamped outputs (2 bad inputs refused, a reset after {split}) equal rill "
          f"stream and carry their inputs' stamps")

    # 2. std_msgs/Float32MultiArray, as before (_input_type:=multiarray).
    records = [row(r) for r in x[:split]] + [b"\x01reset"] + [row(r) for r in x[split:]]
    out = run_driver(a, env, ["/rill_test/vin", "/rill_test/vout", "/rill_multiarray/reset"], records, ["vector"])
    got = np.array([[float(v) for v in r.split()] for r in out.split(b"\0")[:-1]], dtype=np.float32)
    if got.shape != want.shape or not np.array_equal(got, want):
        print(f"Float32MultiArray outputs differ from rill stream: shapes {got.shape} {want.shape}")
        return 1
    print(f"ros multiarray: {len(got)} Float32MultiArray outputs equal rill stream")

    # 3. A burst of 3000 into a node with queue_size 1: what the queue drops is counted as missing.
    out = run_driver(a, env, ["/rill_test/bin", "/rill_test/bout", "/rill_burst/reset"], [row(x[0])], ["burst", "3000"])
    line = out.decode().strip()
    kv = dict(item.split("=") for item in line.split())
    published, replies, missing = int(kv["published"]), int(kv["replies"]), int(kv["missing"])
    steps = int(kv["steps"])
    if not (missing > 0 and steps + missing == published and replies <= steps):
        print(f"burst: {line}: every sample must be stepped or counted missing, and some must be missing")
        return 1
    print(f"ros burst: {published} published into a queue of 1: {steps} stepped ({replies} outputs reached the "
          f"driver through the output queue of 1), {missing} counted missing in {kv['gaps']} gaps on /diagnostics")
    return 0


def main():
    ap = argparse.ArgumentParser()
    for a in ("--rill", "--node", "--driver", "--src", "--work"):
        ap.add_argument(a, required=True)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    model = os.path.join(a.work, "demo.rill")
    subprocess.run([a.rill, "convert", os.path.join(a.src, "examples/demo_model/checkpoint"), "-o", model, "--force"],
                   stdout=subprocess.DEVNULL, check=True, timeout=300)
    want = expected_replies(a.rill, model)

    port = free_port()
    env = dict(os.environ, ROS_MASTER_URI=f"http://127.0.0.1:{port}", ROS_IP="127.0.0.1", ROS_HOSTNAME="127.0.0.1",
               ROS_HOME=os.path.join(a.work, "ros_home"), ROS_LOG_DIR=os.path.join(a.work, "ros_log"))
    env.pop("ROS_NAMESPACE", None)
    procs, logs = [], {}
    try:
        for name in ("roscore", "node"):
            logs[name] = open(os.path.join(a.work, name + ".log"), "wb")
        procs.append(start(["roscore", "-p", str(port)], env, logs["roscore"]))
        master = xmlrpc.client.ServerProxy(env["ROS_MASTER_URI"])
        for _ in range(300):
            try:
                master.getSystemState("/rill_test")
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("roscore did not come up within 30 s")
        procs.append(start([a.node, f"_model:={model}", f"_max_tokens:={MAX_TOKENS}", "_threads:=1",
                            "_input_topic:=/rill_test/in", "_output_topic:=/rill_test/out", "_queue_size:=10"],
                           env, logs["node"]))
        # The sensor nodes, up at the same time as the text node: one graph, one node per model.
        import numpy as np
        s4d = os.path.join(a.work, "s4d.rill")
        ckpt = os.path.join(a.src, "tests/golden/s4d_prenorm_mean")
        subprocess.run([a.rill, "convert", ckpt, "-o", s4d, "--force"], stdout=subprocess.DEVNULL, check=True,
                       timeout=120)
        x = np.load(os.path.join(ckpt, "inputs.npy")).astype(np.float32)
        for name, args in (("rill_sensor", ["_input_topic:=/rill_test/sin", "_output_topic:=/rill_test/sout",
                                            "_period:=0.001"]),
                           ("rill_multiarray", ["_input_topic:=/rill_test/vin", "_output_topic:=/rill_test/vout",
                                                "_input_type:=multiarray"]),
                           ("rill_burst", ["_input_topic:=/rill_test/bin", "_output_topic:=/rill_test/bout",
                                           "_queue_size:=1", "_gap_policy:=ignore"])):
            logs[name] = open(os.path.join(a.work, name + ".log"), "wb")
            procs.append(start([a.node, f"__name:={name}", f"_model:={s4d}", *args], env, logs[name]))
        inputs = os.path.join(a.work, "inputs.bin")
        with open(inputs, "wb") as f:
            f.write(b"\0".join(b"\x01reset" if t is None else t.encode() for t in INPUTS) + b"\0")
        replies_file = os.path.join(a.work, "replies.bin")
        subprocess.run([a.driver, "/rill_test/in", "/rill_test/out", "/rill_node/reset", inputs, replies_file],
                       env=env, check=True, timeout=180)
        with open(replies_file, "rb") as f:
            got = f.read().split(b"\0")[:-1]
        if got != want:
            for i, (g, w) in enumerate(zip(got, want)):
                print(f"reply {i}: {'ok' if g == w else 'DIFFERS'}\n  node:     {g!r}\n  rill run: {w!r}")
            print(f"{len(got)} replies, {len(want)} expected")
            return 1
        print(f"ros round trip: {len(got)} replies over a real roscore (port {port}) equal rill run --greedy, "
              f"with three sensor nodes of another model in the same graph")
        return sensor_tests(a, env, procs, logs, s4d, x)
    finally:
        for p in reversed(procs):
            stop(p)
        for f in logs.values():
            f.close()


if __name__ == "__main__":
    sys.exit(main())
