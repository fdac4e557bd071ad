#!/usr/bin/python3
"""ROS round trip: a real roscore on the loopback interface, the rill node, and a driver that publishes
a recorded input sequence. Every reply must equal what `rill run --greedy` prints for the same text:
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


def vector_round_trip(a, env, procs, logs):
    """The node with a vector (sensor) model: Float32MultiArray rows in, outputs out, a reset in the
    middle; every output must equal, bit for bit, `rill stream` over the same rows."""
    import numpy as np
    model = os.path.join(a.work, "s4d.rill")
    ckpt = os.path.join(a.src, "tests/golden/s4d_prenorm_mean")
    subprocess.run([a.rill, "convert", ckpt, "-o", model, "--force"], stdout=subprocess.DEVNULL, check=True,
                   timeout=120)
    x = np.load(os.path.join(ckpt, "inputs.npy")).astype(np.float32)
    split = 20
    want = []
    for part in (x[:split], x[split:]):  # the reset starts a new stream
        np.save(os.path.join(a.work, "part.npy"), part)
        subprocess.run([a.rill, "stream", model, "-i", os.path.join(a.work, "part.npy"), "-o",
                        os.path.join(a.work, "part_out.npy")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, timeout=60)
        want.append(np.load(os.path.join(a.work, "part_out.npy")))
    want = np.concatenate(want)
    logs["sensor"] = open(os.path.join(a.work, "sensor_node.log"), "wb")
    procs.append(start([a.node, "__name:=rill_sensor", f"_model:={model}", "_input_topic:=/rill_test/vin",
                        "_output_topic:=/rill_test/vout"], env, logs["sensor"]))
    rows = [" ".join(f"{v:.9g}" for v in r).encode() for r in x]
    inputs = os.path.join(a.work, "vector_inputs.bin")
    with open(inputs, "wb") as f:
        f.write(b"\0".join(rows[:split] + [b"\x01reset"] + rows[split:]) + b"\0")
    replies_file = os.path.join(a.work, "vector_replies.bin")
    subprocess.run([a.driver, "/rill_test/vin", "/rill_test/vout", "/rill_sensor/reset", inputs, replies_file,
                    "vector"], env=env, check=True, timeout=180)
    with open(replies_file, "rb") as f:
        got = np.array([[float(v) for v in r.split()] for r in f.read().split(b"\0")[:-1]], dtype=np.float32)
    if got.shape != want.shape or not np.array_equal(got, want):
        print(f"vector replies differ from rill stream: shapes {got.shape} {want.shape}, "
              f"max diff {np.abs(got - want).max() if got.shape == want.shape else 'n/a'}")
        return 1
    print(f"ros vector round trip: {len(got)} Float32MultiArray outputs (a reset after {split}) equal rill stream")
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
        print(f"ros round trip: {len(got)} replies over a real roscore (port {port}) equal rill run --greedy")
        return vector_round_trip(a, env, procs, logs)
    finally:
        for p in reversed(procs):
            stop(p)
        for f in logs.values():
            f.close()


if __name__ == "__main__":
    sys.exit(main())
