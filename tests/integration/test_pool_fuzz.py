"""The pool's message parsers, fuzzed from both ends (seeded, bounded).

Worker end: this test plays the kernel to a real `ferry-kernel --worker`
process over a socketpair in ferry's framing (kernel/pool/wire.h) and sends
it well-framed tasks with garbage payloads, tasks with too few or oversized
frames, cancels of every shape and unknown verbs.  The worker must answer
each well-framed task exactly once, with an error, and stay alive; a
malformed header ends it (the link is unusable), without a hang.

Kernel end: a task writes junk messages of every shape into its own
worker's socket, as a rogue worker would; the pool must drop them and go on
returning correct results.  A task that breaks the framing itself gets its
worker killed: it fails with WorkerCrashed and the pool goes on.
"""

import os
import random
import socket
import struct
import subprocess

import pytest
import zmq

import harness

pytestmark = pytest.mark.ferry_only("ferry's pool")

SEED = int(os.environ.get("FERRY_FUZZ_SEED", "14"))
VERBS = [b"task", b"cancel", b"done", b"out", b"ready", b"", b"tas", b"task\x00", b"x" * 300]


def junk(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return b""
    if kind == 1:
        return struct.pack("<Q", rng.getrandbits(64))
    if kind == 2:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
    if kind == 3:
        return b"\x80\x05" + bytes(rng.getrandbits(8) for _ in range(rng.randrange(40)))
    if kind == 4:
        return b"\x00" * rng.choice([1, 7, 9, 100_000])
    return rng.choice(VERBS)


def kernel_exe():
    argv = harness.kernel_argv()
    if "ferry" not in os.path.basename(argv[0]):
        pytest.skip("needs the ferry-kernel binary")
    return argv[0]


def frame(parts):
    """One message in ferry's framing: "FRY1", the count, the sizes, the bytes."""
    head = b"FRY1" + struct.pack("=I", len(parts))
    return head + b"".join(struct.pack("=Q", len(p)) for p in parts) + b"".join(parts)


def read_message(sock):
    """The next message from sock (blocking, with the socket's timeout)."""
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            assert chunk, "the worker closed its socket"
            buf += chunk
        return buf
    magic, n = struct.unpack("=4sI", exactly(8))
    assert magic == b"FRY1"
    sizes = struct.unpack("=%dQ" % n, exactly(8 * n))
    return [exactly(size) for size in sizes]


def test_a_worker_answers_garbage_tasks_with_errors_and_lives(tmp_path):
    rng = random.Random(SEED)
    kernel_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    kernel_end.settimeout(60)
    status = os.memfd_create("status")
    os.ftruncate(status, 4096)
    log = open(tmp_path / "worker.log", "wb")
    # A garbage pickle may ask for an absurd allocation: Python turns the
    # NULL into MemoryError; ASan's default aborts the process instead.
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
               ":allocator_may_return_null=1")
    conn = worker_end.fileno()
    worker = subprocess.Popen([kernel_exe(), "--worker", "--conn-fd", str(conn),
                               "--runtime-dir", str(tmp_path), "--status-fd",
                               str(status)], pass_fds=(status, conn), stdout=log,
                              stderr=log, process_group=0, env=env)  # as the pool starts it
    os.close(status)
    worker_end.close()
    try:
        assert read_message(kernel_end) == [b"ready"]
        sent = {}
        for i in range(300):
            r = rng.random()
            if r < 0.5:  # a well-framed task: ["task", id, payload, buffers...]
                task_id = 1000 + i
                frames = [b"task", struct.pack("<Q", task_id)] + \
                    [junk(rng) for _ in range(rng.randrange(1, 4))]
                sent[task_id] = 0
            elif r < 0.7:
                frames = [b"cancel", junk(rng), junk(rng)]
            else:
                frames = [junk(rng) for _ in range(rng.randrange(1, 6))]
            kernel_end.sendall(frame(frames))
        answered = {}
        while len(answered) < len(sent):
            msg = read_message(kernel_end)
            if msg[0] == b"done":
                task_id = struct.unpack("<Q", msg[1])[0]
                assert task_id in sent, task_id
                assert task_id not in answered, f"task {task_id} answered twice"
                answered[task_id] = msg[2]
        assert set(answered.values()) <= {b"error", b"cancelled"}, set(answered.values())
        assert worker.poll() is None, "the worker died"
        # A header that is not ferry's framing: the link is unusable, the
        # worker ends (it must not wait forever for a message).
        kernel_end.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert worker.wait(timeout=60) is not None
    finally:
        worker.kill()
        worker.wait()
        log.close()
        kernel_end.close()


# Runs in a worker: writes junk messages, well framed, into the worker's own
# socket to the kernel (its fd is on the worker's command line), then
# returns; with broken=True, a header that is not ferry's framing.
ROGUE = """
import os, random, struct
def _frame(parts):
    head = b"FRY1" + struct.pack("=I", len(parts))
    return head + b"".join(struct.pack("=Q", len(p)) for p in parts) + b"".join(parts)
def rogue(seed, broken=False):
    args = open("/proc/self/cmdline", "rb").read().split(b"\\0")
    fd = int(args[args.index(b"--conn-fd") + 1])
    rng = random.Random(seed)
    verbs = %r
    def junk():
        return rng.choice([b"", struct.pack("<Q", rng.getrandbits(64)),
                           bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64))),
                           b"\\0" * rng.choice([1, 7, 9, 100000]), rng.choice(verbs)])
    if broken:
        os.write(fd, b"FRY1" + struct.pack("=I", 0))
        return "sent"
    for _ in range(100):
        msg = _frame([rng.choice(verbs)] + [junk() for _ in range(rng.randrange(0, 6))])
        while msg:
            msg = msg[os.write(fd, msg):]
    return "sent"
""" % (VERBS[:5],)


def test_rogue_messages_from_a_worker_change_nothing(kernel):
    kernel.execute(ROGUE, timeout=30).ok()
    x = kernel.execute("import ferry\nferry.workers(2)\n"
                       "[ferry.submit(rogue, s).result(timeout=60) for s in range(4)]",
                       timeout=120).ok()
    assert eval(x.text) == ["sent"] * 4
    y = kernel.execute("sorted(ferry.map(abs, range(-50, 0), chunksize=1)), "
                       "ferry.submit(pow, 3, 4).result(timeout=30)", timeout=120).ok()
    assert eval(y.text) == (sorted(range(1, 51)), 81)


def test_a_worker_that_breaks_the_framing_is_replaced(kernel):
    kernel.execute(ROGUE, timeout=30).ok()
    x = kernel.execute("import ferry\n"
                       "try:\n"
                       "    ferry.submit(rogue, 0, True).result(timeout=60)\n"
                       "except ferry.WorkerCrashed as e:\n"
                       "    print('crashed:', e)\n", timeout=120).ok()
    assert "crashed:" in x.stdout and "SIGKILL" in x.stdout, x.stdout
    y = kernel.execute("ferry.submit(pow, 3, 4).result(timeout=30)", timeout=120).ok()
    assert y.text == "81"
